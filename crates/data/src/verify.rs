//! Verification: the written target against the transformed source.
//!
//! Checks, each reported with expected and actual values:
//! - `rows`: row count of the target equals the source-side count;
//! - `checksum`: the order-independent content checksum of the target (see
//!   [`crate::checksum`]) equals the one computed on the transformed source stream;
//! - `schema`: the target's columns and (canonical) types equal the transform's output;
//! - one check per rule (`notNull`, `unique`, `range`, `regex`, `acceptedValues`),
//!   counting violating rows on the target;
//! - one check per sample query, run on the transformed source and on the target.
//!
//! A version staged in chunks (`verified_chunks` in its staged manifest) had each chunk's
//! files read back when the chunk was staged; its total is then verified without reading
//! a row again: the directory must hold exactly the manifest's files at their sizes, their
//! footers' row counts must add up to the rows, and the checksum is the sum of the chunks'
//! verified ones; the row-wise rules' counts are the chunks' too. A `unique` rule and
//! sample queries still read what they need (see [`verify_dir`]).

use std::collections::BTreeMap;

use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use futures::StreamExt;
use serde::Serialize;
use skein_core::load::SpecFile;
use skein_core::manifest::{ContentChecksum, Manifest};
use skein_core::spec::Rule;

use crate::checksum::{Checksum, canonical_schema, combine};
use crate::error::{Error, Result};
use crate::layout::DataDir;
use crate::session::{Settings, list_source, register_source};
use crate::sqlguard::sample_query;
use crate::transform::{plan_transform, query_only};

/// Table name of the target inside verification sessions.
const TARGET: &str = "target";
/// Table name of the transformed source inside verification sessions.
const TRANSFORMED: &str = "transformed";

/// One check of a verification.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// `rows`, `checksum`, `schema`, `rule notNull(id)`, `sample[0]`, …
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// What the source side (or the rule) expects.
    pub expected: String,
    /// What the target has.
    pub actual: String,
}

/// The outcome of verifying one dataset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifyReport {
    /// Dataset name.
    pub dataset: String,
    /// True when every check passed.
    pub passed: bool,
    /// Every check, in order.
    pub checks: Vec<Check>,
}

impl VerifyReport {
    /// The checks that failed.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.passed)
    }

    /// One line: `passed (N checks)` or `failed: name (expected …, got …); …`.
    pub fn summary(&self) -> String {
        if self.passed {
            format!("passed ({} checks)", self.checks.len())
        } else {
            let failed: Vec<String> = self
                .failures()
                .map(|c| format!("{} (expected {}, got {})", c.name, c.expected, c.actual))
                .collect();
            format!("failed: {}", failed.join("; "))
        }
    }
}

/// Verifies a staged (or published) version in `dir` (local or S3) against the source-side figures in
/// its manifest.
///
/// What it reads: the files' footers always; every row of the target for the row count
/// and checksum, and again for the row-wise rules (one scan), except for a staged version
/// whose chunks were verified one by one (then the listing and footers only, and the
/// chunks' rule counts); the whole target for a `unique` rule (a grouped query); and the
/// whole source through the transform, and the target, for sample queries.
pub async fn verify_dir(
    settings: &Settings,
    file: &SpecFile,
    dir: &DataDir,
    manifest: &Manifest,
) -> Result<VerifyReport> {
    let ctx = settings.session()?;
    crate::command::for_run(&ctx, &manifest.run_id);
    crate::footer::check_dir(file.name(), dir, None).await?;
    register_target(&ctx, file, dir, manifest).await?;
    let mut checks = Vec::new();
    let (target_checksum, target_schema) = match manifest.verified_chunks {
        Some(_) if manifest.version == 0 => {
            let (files, rows) = staged_files(file.name(), dir, manifest).await?;
            // each chunk's read-back checksum equalled its source-side one (see
            // `chunk::stage_chunk`), so their sum is the files' checksum, if the files
            // are the chunks' files
            let sum = if files.passed {
                manifest.checksum.sum.clone()
            } else {
                "unknown: the files are not the chunks' files".to_string()
            };
            checks.push(files);
            let checksum = ContentChecksum { rows, sum };
            (checksum, table_schema(&ctx, TARGET).await?)
        }
        _ => table_checksum(&ctx, TARGET).await?,
    };
    checks.push(Check {
        name: "rows".into(),
        passed: target_checksum.rows == manifest.checksum.rows,
        expected: manifest.checksum.rows.to_string(),
        actual: target_checksum.rows.to_string(),
    });
    let verify = file
        .spec
        .spec
        .verify
        .clone()
        .unwrap_or(skein_core::spec::Verify {
            key: None,
            checksum: true,
            sample_queries: Vec::new(),
            rules: Vec::new(),
        });
    if verify.checksum {
        checks.push(Check {
            name: "checksum".into(),
            passed: target_checksum == manifest.checksum,
            expected: manifest.checksum.sum.clone(),
            actual: target_checksum.sum.clone(),
        });
    }
    checks.push(Check {
        name: "schema".into(),
        passed: target_schema == manifest.schema,
        expected: manifest.schema.join(", "),
        actual: target_schema.join(", "),
    });
    let counted = match manifest.verified_chunks {
        Some(_) if manifest.version == 0 => manifest.rule_violations.as_ref(),
        _ => None,
    };
    checks.extend(rule_checks(&ctx, file, &verify.rules, counted).await?);
    if !verify.sample_queries.is_empty() {
        let source = list_source(settings, file).await?;
        register_source(&ctx, file, &source).await?;
        let df = plan_transform(&ctx, file).await?;
        ctx.register_table(TRANSFORMED, df.into_view())
            .map_err(Error::engine("register the transformed source"))?;
        for (i, q) in verify.sample_queries.iter().enumerate() {
            let expected = query_text(&ctx, file, &sample_query(q, TRANSFORMED)).await?;
            let actual = query_text(&ctx, file, &sample_query(q, TARGET)).await?;
            checks.push(Check {
                name: format!("sample[{i}] {q}"),
                passed: expected == actual,
                expected,
                actual,
            });
        }
    }
    Ok(VerifyReport {
        dataset: file.name().to_string(),
        passed: checks.iter().all(|c| c.passed),
        checks,
    })
}

/// Recomputes the source-side checksum by running the transform without writing.
pub async fn source_checksum(
    settings: &Settings,
    file: &SpecFile,
) -> Result<(ContentChecksum, Vec<String>)> {
    let ctx = settings.session()?;
    let source = list_source(settings, file).await?;
    register_source(&ctx, file, &source).await?;
    let df = plan_transform(&ctx, file).await?;
    ctx.register_table(TRANSFORMED, df.into_view())
        .map_err(Error::engine("register the transformed source"))?;
    match table_checksum(&ctx, TRANSFORMED).await {
        Ok(ok) => Ok(ok),
        Err(Error::Engine { source: e, .. }) => {
            Err(crate::transform::classify_failure(&ctx, file, &source, *e).await)
        }
        Err(e) => Err(e),
    }
}

/// What reading back a chunk's files found: checksum, schema, and the violations of the
/// spec's row-wise rules.
pub(crate) struct ReadBack {
    pub checksum: ContentChecksum,
    pub schema: Vec<String>,
    pub rule_violations: BTreeMap<String, u64>,
}

impl ReadBack {
    /// The first way the files read back differ from what `manifest` says was written:
    /// the check (`rows`, `checksum`, `schema`), the expected and the actual value.
    pub(crate) fn differs_from(
        &self,
        manifest: &Manifest,
    ) -> Option<(&'static str, String, String)> {
        let want = &manifest.checksum;
        if self.checksum.rows != want.rows {
            return Some((
                "rows",
                want.rows.to_string(),
                self.checksum.rows.to_string(),
            ));
        }
        if self.checksum != *want {
            return Some(("checksum", want.sum.clone(), self.checksum.sum.clone()));
        }
        if self.schema != manifest.schema {
            return Some(("schema", manifest.schema.join(", "), self.schema.join(", ")));
        }
        None
    }
}

/// Checksum, schema and row-wise rule violations of some Parquet files of a directory (a
/// chunk's files in staging).
pub(crate) async fn files_checksum(
    settings: &Settings,
    file: &SpecFile,
    dir: &DataDir,
    names: &[String],
) -> Result<ReadBack> {
    let dataset = file.name();
    crate::footer::check_dir(dataset, dir, Some(names)).await?;
    let ctx = settings.session()?;
    dir.register(&ctx)?;
    let urls: Vec<String> = names.iter().map(|n| format!("{}{n}", dir.url())).collect();
    let df = ctx
        .read_parquet(urls, ParquetReadOptions::default())
        .await
        .map_err(Error::engine(format!("read the staged files in {dir}")))?;
    ctx.register_table(TARGET, df.into_view())
        .map_err(Error::engine("register the staged files"))?;
    read_back(&ctx, file).await
}

/// [`files_checksum`] of every Parquet file of a directory, read as `manifest`'s version
/// (partition columns from the paths, in the output's order): an incremental run's new
/// files, alone in its staging when they are read back.
pub(crate) async fn dir_checksum(
    settings: &Settings,
    file: &SpecFile,
    dir: &DataDir,
    manifest: &Manifest,
) -> Result<ReadBack> {
    crate::footer::check_dir(file.name(), dir, None).await?;
    let ctx = settings.session()?;
    register_target(&ctx, file, dir, manifest).await?;
    read_back(&ctx, file).await
}

/// Checksum, schema and row-wise rule violations of the registered [`TARGET`].
async fn read_back(ctx: &SessionContext, file: &SpecFile) -> Result<ReadBack> {
    let (checksum, schema) = table_checksum(ctx, TARGET).await?;
    let rules = file
        .spec
        .spec
        .verify
        .as_ref()
        .map(|v| v.rules.as_slice())
        .unwrap_or_default();
    let rule_violations = row_rule_violations(ctx, file, rules).await?;
    Ok(ReadBack {
        checksum,
        schema,
        rule_violations,
    })
}

/// Registers the version in `dir` as [`TARGET`], partition columns read from the paths
/// and put back in the output's order (the manifest's schema).
async fn register_target(
    ctx: &SessionContext,
    file: &SpecFile,
    dir: &DataDir,
    manifest: &Manifest,
) -> Result<()> {
    let partitions = crate::partition::columns_of(file, &manifest.schema)?;
    let order: Vec<String> = manifest
        .schema
        .iter()
        .map(|l| {
            l.split_once(": ")
                .map_or(l.as_str(), |(name, _)| name)
                .to_string()
        })
        .collect();
    let df = crate::partition::read_dir(ctx, dir, &partitions, &order).await?;
    ctx.register_table(TARGET, df.into_view())
        .map_err(Error::engine(format!("register the target files in {dir}")))
        .map(|_| ())
}

/// The `files` check of a staged version, from a listing and the footers (no row read):
/// the directory holds exactly the manifest's files, at their sizes; and the rows the
/// footers count.
async fn staged_files(dataset: &str, dir: &DataDir, manifest: &Manifest) -> Result<(Check, u64)> {
    let listed = crate::footer::list_with_rows(dataset, dir).await?;
    let rows = listed.iter().map(|l| l.rows).sum();
    let mut expected: Vec<(String, u64)> = manifest
        .files
        .iter()
        .map(|f| (f.name.clone(), f.size))
        .collect();
    expected.sort();
    let actual: Vec<(String, u64)> = listed.iter().map(|l| (l.name.clone(), l.size)).collect();
    let show = |files: &[(String, u64)], other: &[(String, u64)]| {
        let odd: Vec<String> = files
            .iter()
            .filter(|f| !other.contains(f))
            .map(|(n, s)| format!("{n} ({s} bytes)"))
            .collect();
        if odd.is_empty() {
            format!("{} files", files.len())
        } else {
            format!(
                "{} files; not on the other side: {}",
                files.len(),
                odd.join(", ")
            )
        }
    };
    let check = Check {
        name: "files".into(),
        passed: expected == actual,
        expected: show(&expected, &actual),
        actual: show(&actual, &expected),
    };
    Ok((check, rows))
}

/// The canonical schema of a registered table (from its metadata: no row read).
async fn table_schema(ctx: &SessionContext, table: &str) -> Result<Vec<String>> {
    let df = ctx
        .table(table)
        .await
        .map_err(Error::engine(format!("open table {table}")))?;
    Ok(canonical_schema(df.schema().as_arrow()))
}

/// Checksum and canonical schema of a registered table, reading its partitions in parallel.
async fn table_checksum(
    ctx: &SessionContext,
    table: &str,
) -> Result<(ContentChecksum, Vec<String>)> {
    let df = ctx
        .table(table)
        .await
        .map_err(Error::engine(format!("open table {table}")))?;
    let schema = std::sync::Arc::new(df.schema().as_arrow().clone());
    let streams = df
        .execute_stream_partitioned()
        .await
        .map_err(Error::engine(format!("scan {table}")))?;
    let parts = futures::future::join_all(streams.into_iter().map(|mut stream| {
        let schema = schema.clone();
        async move {
            let mut c = Checksum::new(&schema)?;
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(Error::engine(format!("scan {table}")))?;
                c.update(&batch)?;
            }
            Ok::<_, Error>(c.value())
        }
    }))
    .await;
    let parts: Vec<ContentChecksum> = parts.into_iter().collect::<Result<_>>()?;
    Ok((combine(&parts), canonical_schema(&schema)))
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn literal(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => format!("'{}'", s.replace('\'', "''")),
        serde_json::Value::Null => "NULL".into(),
        other => other.to_string(),
    }
}

/// The name of a rule's check (`rule notNull(id)`), also the key of its count in a
/// manifest's `rule_violations`.
fn rule_name(rule: &Rule) -> String {
    format!("rule {}({})", rule.kind(), rule.column())
}

/// Violations of the row-wise rules (all but `unique`) on [`TARGET`], by check name, in
/// one scan; empty without such rules (and then nothing is read).
async fn row_rule_violations(
    ctx: &SessionContext,
    file: &SpecFile,
    rules: &[Rule],
) -> Result<BTreeMap<String, u64>> {
    let counts = row_rule_counts(ctx, file, rules).await?;
    Ok(rules
        .iter()
        .zip(counts)
        .filter_map(|(rule, n)| Some((rule_name(rule), n?)))
        .collect())
}

/// Counts violations of each rule on the target. All but `unique` share one scan (unless
/// `counted` holds their counts already: a version staged in chunks, whose chunks counted
/// them on their own files); `unique` is a grouped query (which spills when it must).
async fn rule_checks(
    ctx: &SessionContext,
    file: &SpecFile,
    rules: &[Rule],
    counted: Option<&BTreeMap<String, u64>>,
) -> Result<Vec<Check>> {
    let row_wise = |r: &&Rule| !matches!(r, Rule::Unique(_));
    let mut counts: Vec<Option<u64>> = match counted {
        Some(known)
            if rules
                .iter()
                .filter(row_wise)
                .all(|r| known.contains_key(&rule_name(r))) =>
        {
            rules
                .iter()
                .map(|r| known.get(&rule_name(r)).copied())
                .collect()
        }
        _ => row_rule_counts(ctx, file, rules).await?,
    };
    for (i, rule) in rules.iter().enumerate() {
        if let Rule::Unique(col) = rule {
            let c = quote_ident(col);
            let sql = format!(
                "SELECT CAST(count(*) AS BIGINT) FROM (SELECT {c} FROM {TARGET} WHERE {c} IS NOT NULL GROUP BY {c} HAVING count(*) > 1)"
            );
            counts[i] = scalar_row(ctx, file, &sql).await?.into_iter().next();
        }
    }
    Ok(rules
        .iter()
        .zip(counts)
        .map(|(rule, n)| {
            let n = n.unwrap_or(0);
            let what = if matches!(rule, Rule::Unique(_)) {
                "duplicated values"
            } else {
                "violating rows"
            };
            Check {
                name: rule_name(rule),
                passed: n == 0,
                expected: format!("0 {what}"),
                actual: format!("{n} {what}"),
            }
        })
        .collect())
}

/// Violations of each row-wise rule on [`TARGET`], in one scan (`None` for `unique`).
async fn row_rule_counts(
    ctx: &SessionContext,
    file: &SpecFile,
    rules: &[Rule],
) -> Result<Vec<Option<u64>>> {
    let mut filters = Vec::new();
    for rule in rules {
        let c = quote_ident(rule.column());
        let cond = match rule {
            Rule::NotNull(_) => Some(format!("{c} IS NULL")),
            Rule::Unique(_) => None,
            Rule::Range { min, max, .. } => {
                let mut parts = Vec::new();
                if let Some(m) = min {
                    parts.push(format!("{c} < {}", literal(m)));
                }
                if let Some(m) = max {
                    parts.push(format!("{c} > {}", literal(m)));
                }
                Some(parts.join(" OR "))
            }
            Rule::Regex { pattern, .. } => Some(format!(
                "{c} IS NOT NULL AND NOT regexp_like(CAST({c} AS VARCHAR), '{}')",
                pattern.replace('\'', "''")
            )),
            Rule::AcceptedValues { values, .. } => Some(format!(
                "{c} IS NOT NULL AND {c} NOT IN ({})",
                values.iter().map(literal).collect::<Vec<_>>().join(", ")
            )),
        };
        filters.push(cond);
    }
    let mut counts: Vec<Option<u64>> = vec![None; rules.len()];
    let scan: Vec<String> = filters
        .iter()
        .enumerate()
        .filter_map(|(i, f)| {
            f.as_ref()
                .map(|f| format!("count(*) FILTER (WHERE {f}) AS r{i}"))
        })
        .collect();
    if !scan.is_empty() {
        let sql = format!("SELECT {} FROM {TARGET}", scan.join(", "));
        let values = scalar_row(ctx, file, &sql).await?;
        let mut it = values.into_iter();
        for (i, f) in filters.iter().enumerate() {
            if f.is_some() {
                counts[i] = Some(it.next().unwrap_or(0));
            }
        }
    }
    Ok(counts)
}

/// Runs a query that returns one row of integer counts.
async fn scalar_row(ctx: &SessionContext, file: &SpecFile, sql: &str) -> Result<Vec<u64>> {
    let rule_error = |e: datafusion::error::DataFusionError| Error::Transform {
        dataset: file.name().to_string(),
        message: format!("verify rule query failed: {}", e.strip_backtrace()),
    };
    let df = ctx
        .sql_with_options(sql, query_only())
        .await
        .map_err(rule_error)?;
    let batches = df.collect().await.map_err(rule_error)?;
    let mut out = Vec::new();
    if let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) {
        for col in batch.columns() {
            let col = datafusion::arrow::compute::cast(
                col,
                &datafusion::arrow::datatypes::DataType::UInt64,
            )
            .map_err(|e| Error::Internal(format!("rule count is not an integer: {e}")))?;
            let col = col
                .as_any()
                .downcast_ref::<datafusion::arrow::array::UInt64Array>()
                .ok_or_else(|| Error::Internal("rule count column".into()))?;
            out.push(col.value(0));
        }
    }
    Ok(out)
}

/// A query's result as text with rows sorted, so row order does not matter.
async fn query_text(ctx: &SessionContext, file: &SpecFile, sql: &str) -> Result<String> {
    let fail = |e: datafusion::error::DataFusionError| Error::Transform {
        dataset: file.name().to_string(),
        message: format!("sample query `{sql}` failed: {}", e.strip_backtrace()),
    };
    let df = ctx
        .sql_with_options(sql, query_only())
        .await
        .map_err(fail)?;
    let batches = df.collect().await.map_err(fail)?;
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for batch in &batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Internal(format!("format sample result: {e}")))?;
        for i in 0..batch.num_rows() {
            let values: Vec<String> = formatters.iter().map(|f| f.value(i).to_string()).collect();
            rows.push(values.join(" | "));
        }
    }
    rows.sort();
    Ok(rows.join("\n"))
}
