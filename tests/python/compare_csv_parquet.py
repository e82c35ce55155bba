"""Compares a CSV read by pyarrow with the Parquet files skein published, row for row.

    compare_csv_parquet.py SOURCE.csv PARQUET_DIR

The CSV is read with pyarrow's own reader (quoted newlines allowed, empty values null);
timestamps are compared as UTC instants. Prints `equal: N rows` and exits 0, or prints
the first difference and exits 1.
"""

import glob
import sys

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

source, target = sys.argv[1], sys.argv[2]
expected = pcsv.read_csv(
    source,
    parse_options=pcsv.ParseOptions(newlines_in_values=True),
    convert_options=pcsv.ConvertOptions(
        strings_can_be_null=True,
        column_types={"id": pa.int64(), "customer": pa.string(), "amount": pa.float64(),
                      "ts": pa.timestamp("s", tz="UTC"), "note": pa.string()},
    ),
)
files = sorted(glob.glob(f"{target}/*.parquet"))
actual = pa.concat_tables([pq.read_table(f) for f in files])
if actual.column_names != expected.column_names:
    sys.exit(f"columns differ: skein {actual.column_names}, pyarrow {expected.column_names}")


def rows(table):
    table = table.sort_by("id")
    ts = table.column("ts")
    if ts.type.tz is None:
        ts = pc.assume_timezone(ts, "UTC")
    table = table.set_column(table.column_names.index("ts"), "ts", ts.cast(pa.timestamp("s", tz="UTC")))
    return table.to_pylist()


want, got = rows(expected), rows(actual)
if len(want) != len(got):
    sys.exit(f"rows differ: skein {len(got)}, pyarrow {len(want)}")
for w, g in zip(want, got):
    if w != g:
        sys.exit(f"first difference at id {w['id']}:\n  pyarrow {w!r}\n  skein   {g!r}")
print(f"equal: {len(want)} rows")
