"""Writes the same rows in the formats skein reads, with writers that share no code with it.

    write_sources.py DIR ROWS

DIR/export.csv: an RFC 4180 export (BOM, quoted line breaks, commas, quotes, unicode,
nulls) by rfc4180_export.py; then the same bytes compressed: export.csv.gz (gzip),
export.csv.zst (zstd, pyarrow), export.csv.xz (xz, lzma), export.csv.bz2 (bzip2, bz2);
DIR/events.ndjson.gz: NDJSON lines (unicode, nulls, nested text with quotes), gzip;
DIR/avro/part-N.avro: Avro object container files by fastavro, one uncompressed and two
with the deflate codec, a union with null, a timestamp-millis logical type.
"""
import bz2
import datetime
import gzip
import json
import lzma
import os
import random
import subprocess
import sys

import fastavro
import pyarrow as pa

out, rows = sys.argv[1], int(sys.argv[2])
here = os.path.dirname(os.path.abspath(__file__))
os.makedirs(out, exist_ok=True)
csv = os.path.join(out, "export.csv")
subprocess.run([sys.executable, os.path.join(here, "rfc4180_export.py"), csv, str(rows)], check=True)
data = open(csv, "rb").read()
open(csv + ".gz", "wb").write(gzip.compress(data))
open(csv + ".xz", "wb").write(lzma.compress(data))
open(csv + ".bz2", "wb").write(bz2.compress(data))
with pa.CompressedOutputStream(csv + ".zst", "zstd") as s:
    s.write(data)

rng = random.Random(11)
words = ["Zoë", "李雷", 'say "hi"', "a,b", "🚚", None]
lines = []
for i in range(rows):
    lines.append(json.dumps({"id": i, "note": rng.choice(words), "amount": None if i % 11 == 0 else i * 0.25,
                             "ok": i % 3 == 0}, ensure_ascii=False))
open(os.path.join(out, "events.ndjson.gz"), "wb").write(gzip.compress(("\n".join(lines) + "\n").encode()))

schema = {"type": "record", "name": "Payment", "fields": [
    {"name": "id", "type": "long"},
    {"name": "name", "type": ["null", "string"]},
    {"name": "amount", "type": ["null", "double"]},
    {"name": "paid", "type": "boolean"},
    {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
]}
os.makedirs(os.path.join(out, "avro"), exist_ok=True)
start = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
per = rows // 3 + 1
for f in range(3):
    recs = [{"id": i, "name": rng.choice(words), "amount": None if i % 9 == 0 else round(rng.random() * 100, 2),
             "paid": i % 2 == 0, "at": start + datetime.timedelta(minutes=i)}
            for i in range(f * per, min(rows, (f + 1) * per))]
    with open(os.path.join(out, "avro", f"part-{f}.avro"), "wb") as o:
        fastavro.writer(o, schema, recs, codec="null" if f == 0 else "deflate")
