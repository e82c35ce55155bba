"""Compares an NDJSON file read line by line with Python's json module with the Parquet
files skein published, row for row.

    compare_ndjson_parquet.py SOURCE.ndjson PARQUET_DIR KEY

Rows are matched by KEY; a key missing from a line is null, as in the reader. Prints
`equal: N rows` and exits 0, or prints the first difference and exits 1.
"""

import glob
import json
import sys

import pyarrow as pa
import pyarrow.parquet as pq

source, target, key = sys.argv[1], sys.argv[2], sys.argv[3]
with open(source, encoding="utf-8") as f:
    expected = [json.loads(line) for line in f if line.strip()]
files = sorted(glob.glob(f"{target}/*.parquet"))
actual = pa.concat_tables([pq.read_table(f) for f in files]).to_pylist()
columns = list(actual[0].keys()) if actual else []
want = sorted(({c: row.get(c) for c in columns} for row in expected), key=lambda r: r[key])
got = sorted(actual, key=lambda r: r[key])
if len(want) != len(got):
    sys.exit(f"rows differ: skein {len(got)}, json {len(want)}")
for w, g in zip(want, got):
    if w != g:
        sys.exit(f"first difference at {key} {w[key]}:\n  json  {w!r}\n  skein {g!r}")
print(f"equal: {len(want)} rows")
