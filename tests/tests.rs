//! skein's integration tests: one test binary, one module per area (ripgrep style).
//! Everything runs on real parts: real files, real SQLite, the real `skein` binary.

// helpers: temp workspaces, spec files, running the `skein` binary
mod util;
// a moto server on 127.0.0.1 for the AWS adapter tests, started once per test process
mod moto;

// dataset specs: strict parsing, validation errors naming file, line and field
mod specs;
// the data plane on real files: CSV quirks, NDJSON, Parquet, publish, rollback, checksums
mod data;
// the `skein` binary end to end: samples, exit codes, JSON output, catalog commands
mod cli;
// the CLI as a person meets it: pipes, colour, widths, messages, cleanup, path policy
mod usability;
// the embedded SQLite catalog against the shared catalog conformance suite
mod catalog;
// the ASL engine through `skein states`
mod states;
// `skein run`: the migration state machines end to end on the embedded engine
mod run;
// `skein diff`: localising differences by bisecting key buckets
mod diff;
// reading sources: an RFC 4180 export compared with pyarrow, CSV type sampling, unreadable
// sources (empty, cut off, bad lines, corrupt Parquet) named by file and line
mod sources;
// source formats: gzip/zstd/xz/bzip2 CSV and NDJSON, Avro, read back by pyarrow and DuckDB
mod formats;
// command transforms: a Python script between the source and the target, and its failures
mod command;
// Incremental sources: a growing directory, one version per run (issue 23).
mod incremental;
// durable at every instant: kills at each crash point, two runs at once, rollback in a run
mod durability;
// fencing: a superseded worker's attempt neither moves the dataset nor mixes its files in
mod fencing;
// chunked migrations: file groups and Parquet row groups, one job per chunk, retries
mod chunks;
// one large CSV or NDJSON file in byte-range chunks: record boundaries, row-for-row reads
mod chunk_ranges;
// the data plane on S3 (moto): s3:// sources, current.json publish, rollback, stale publishers
mod s3;
// Delta Lake targets read by delta-rs, Polars and DuckDB: v1, v2, rollback, locally and on S3
mod delta;
// target.partitionBy: Hive directories for Parquet, Delta partition columns, read back by
// pyarrow, DuckDB, Polars and delta-rs, verified with the values from the paths
mod partition;
// YAML in every loader: aliases, and errors with lines instead of panics
mod yaml;
// Backstage catalog entities: the spec round trip, `skein catalog import` and `export`
mod backstage;
// the state machines inside AWS's limits: execution names, run ids, Lambda throttles retried
mod limits;
// the AWS adapters and the Lambda binaries against a moto server on 127.0.0.1
mod aws;
// `skein ui` in a real browser, `/metrics` as Prometheus text, `skein report`, JSON logs
mod ui;
// the job queue contract: no timeout while queued, staged once, dead letters answered
mod queue;
