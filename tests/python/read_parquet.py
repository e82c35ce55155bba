"""Reads a directory of Parquet files the way engines over a Hive/Glue table do, with three
engines that share no code with skein: pyarrow's datasets (which skip `_`- and
`.`-prefixed names, the Hive rule Athena follows), DuckDB and Polars, each with Hive
partitioning (`col=value/` directories become columns).

usage: read_parquet.py LOCATION COLUMNS
LOCATION is a directory (local) or an `s3://bucket/prefix/` (the location of a Glue
table); COLUMNS is a comma-separated list of the columns to print, in order.
S3: AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION from the
environment (moto on 127.0.0.1).

Prints one JSON object: per engine the rows as lists in COLUMNS order, sorted (integers
as numbers, everything else as text, times in ISO 8601)."""
import datetime
import glob
import json
import os
import sys

import duckdb
import polars as pl
import pyarrow.dataset as ds
import pyarrow.fs as pafs

location, columns = sys.argv[1].rstrip("/") + "/", sys.argv[2].split(",")
s3 = location.startswith("s3://")
endpoint = os.environ.get("AWS_ENDPOINT_URL")


def canon(value):
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    return str(value)


def rows(dicts):
    return sorted([[canon(d[c]) for c in columns] for d in dicts], key=json.dumps)


result = {}
if s3:
    fs = pafs.S3FileSystem(
        access_key=os.environ["AWS_ACCESS_KEY_ID"],
        secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        region=os.environ.get("AWS_REGION", "us-east-1"),
        endpoint_override=endpoint,
        scheme="http",
    )
    dataset = ds.dataset(location[len("s3://"):], format="parquet", partitioning="hive", filesystem=fs)
else:
    dataset = ds.dataset(location, format="parquet", partitioning="hive")
result["files"] = sorted(os.path.relpath(f, location[len("s3://"):] if s3 else location) for f in dataset.files)
result["pyarrow"] = rows(dataset.to_table().to_pylist())

options = None
if s3:
    options = {
        "aws_endpoint_url": endpoint,
        "aws_access_key_id": os.environ["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": os.environ["AWS_SECRET_ACCESS_KEY"],
        "aws_region": os.environ.get("AWS_REGION", "us-east-1"),
        "aws_allow_http": "true",
    }
result["polars"] = rows(
    pl.scan_parquet(location + "**/*.parquet", hive_partitioning=True, storage_options=options).collect().to_dicts()
)

con = duckdb.connect()
if s3:
    site = os.path.dirname(duckdb.__file__)
    found = glob.glob(os.path.join(os.path.dirname(site), "duckdb_extension_httpfs", "extensions", "v*", "httpfs.duckdb_extension"))
    if not found:
        sys.exit("the duckdb-extension-httpfs package is not installed; run scripts/setup")
    con.execute(f"INSTALL '{found[0]}'")
    con.execute("LOAD httpfs")
    host = endpoint.split("://", 1)[1]
    con.execute(
        f"CREATE SECRET moto (TYPE S3, KEY_ID '{options['aws_access_key_id']}', SECRET '{options['aws_secret_access_key']}', "
        f"REGION '{options['aws_region']}', ENDPOINT '{host}', URL_STYLE 'path', USE_SSL false)"
    )
cur = con.execute("SELECT * FROM read_parquet(?, hive_partitioning = true)", [location + "**/*.parquet"])
names = [d[0] for d in cur.description]
result["duckdb"] = rows([dict(zip(names, row)) for row in cur.fetchall()])
print(json.dumps(result), flush=True)
