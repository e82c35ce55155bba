"""Reads a Delta table that skein wrote with three engines that share no code with skein:
the `deltalake` package (delta-rs), Polars and DuckDB's delta extension (loaded offline
from the `duckdb-extension-delta` package).

usage: read_delta.py TABLE_URI VERSION|latest
S3: AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION from the
environment (moto on 127.0.0.1).

Prints one JSON object: per engine the rows as [id, name, amount, ts] sorted by id (amount
as decimal text, ts ISO 8601), the table version read, and the files of that version
(paths relative to the table), so the caller compares them with what skein verified."""
import glob
import json
import os
import sys

import deltalake
import duckdb
import polars as pl

uri, version = sys.argv[1], sys.argv[2]
version = None if version == "latest" else int(version)
endpoint = os.environ.get("AWS_ENDPOINT_URL")
options = {}
if uri.startswith("s3://"):
    options = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"],
        "AWS_REGION": os.environ.get("AWS_REGION", "us-east-1"),
        "AWS_ALLOW_HTTP": "true",
        "AWS_S3_ALLOW_UNSAFE_RENAME": "true",
    }


def canon(rows):
    out = []
    for r in rows:
        ts = r["ts"]
        out.append([int(r["id"]), r["name"], str(r["amount"]), ts.isoformat() if ts is not None else None])
    return sorted(out)


dt = deltalake.DeltaTable(uri, version=version, storage_options=options or None)
root = dt.table_uri.rstrip("/") + "/"
files = sorted(u[len(root):] if u.startswith(root) else u for u in dt.file_uris())
result = {"version": dt.version(), "files": files}
result["deltalake"] = canon(dt.to_pyarrow_table().to_pylist())
result["polars"] = canon(pl.read_delta(uri, version=version, storage_options=options or None).to_dicts())

con = duckdb.connect()
site = os.path.dirname(duckdb.__file__)
for ext in ("httpfs", "delta"):
    found = glob.glob(os.path.join(os.path.dirname(site), f"duckdb_extension_{ext}", "extensions", "v*", f"{ext}.duckdb_extension"))
    if not found:
        sys.exit(f"the duckdb-extension-{ext} package is not installed; run scripts/setup")
    con.execute(f"INSTALL '{found[0]}'")
    con.execute(f"LOAD {ext}")
if uri.startswith("s3://"):
    host = endpoint.split("://", 1)[1]
    con.execute(
        f"CREATE SECRET moto (TYPE S3, KEY_ID '{options['AWS_ACCESS_KEY_ID']}', SECRET '{options['AWS_SECRET_ACCESS_KEY']}', "
        f"REGION '{options['AWS_REGION']}', ENDPOINT '{host}', URL_STYLE 'path', USE_SSL false)"
    )
if version is None:
    cur = con.execute("SELECT id, name, amount, ts FROM delta_scan(?)", [uri])
    cols = [d[0] for d in cur.description]
    result["duckdb"] = canon([dict(zip(cols, row)) for row in cur.fetchall()])
print(json.dumps(result), flush=True)
os._exit(0)  # delta-rs' runtime threads can abort a normal interpreter exit
