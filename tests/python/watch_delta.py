"""Reads a Delta table over and over with delta-rs while skein publishes, until the file
STOP exists (then once more) or 120 s pass. Writes READY after its first read.

usage: watch_delta.py TABLE_URI READY STOP
Prints one JSON object: {"reads": N, "seen": [[rows...], ...]} with each distinct result
(rows as [id, name] sorted by id), in the order first seen."""
import json
import os
import sys
import time

import deltalake

uri, ready, stop = sys.argv[1:4]
seen, reads = [], 0
deadline = time.monotonic() + 120
last = False
while True:
    stopping = os.path.exists(stop)
    rows = deltalake.DeltaTable(uri).to_pyarrow_table(columns=["id", "name"]).to_pylist()
    result = sorted([int(r["id"]), r["name"]] for r in rows)
    reads += 1
    if result not in seen:
        seen.append(result)
    if reads == 1:
        open(ready, "w").close()
    if stopping or time.monotonic() > deadline:
        break
print(json.dumps({"reads": reads, "seen": seen}), flush=True)
os._exit(0)  # delta-rs' runtime threads can abort a normal interpreter exit
