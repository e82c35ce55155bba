"""Runs one SQL query in DuckDB (which shares no code with skein) and prints its rows as
one JSON list of lists (numbers as numbers, everything else as text).

usage: duckdb_query.py SQL   (relative paths in the query are the working directory's)
"""
import json
import sys

import duckdb

rows = duckdb.sql(sys.argv[1]).fetchall()
print(json.dumps([[v if isinstance(v, (int, float)) or v is None else str(v) for v in r] for r in rows]))
