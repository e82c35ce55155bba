"""A migration script in Python for skein's command transform.

stdin: the source as an Arrow IPC stream; stdout: the output as an Arrow IPC stream.
Batch by batch, so memory stays bounded whatever the size: each payment's amount becomes
whole cents (an integer, rounded half away from zero), the country code is upper-cased
and trimmed, and the currency comes from the spec's params (SKEIN_PARAM_CURRENCY).
Anything on stderr is kept by skein for its error message if this script fails.
"""

import os
import sys

import pyarrow as pa
import pyarrow.compute as pc

currency = os.environ.get("SKEIN_PARAM_CURRENCY", "EUR")
reader = pa.ipc.open_stream(sys.stdin.buffer)
out_schema = pa.schema([
    ("id", pa.int64()),
    ("country", pa.string()),
    ("amount_cents", pa.int64()),
    ("currency", pa.string()),
])
with pa.ipc.new_stream(sys.stdout.buffer, out_schema) as writer:
    for batch in reader:
        amount = pc.cast(batch.column("amount"), pa.float64())
        cents = pc.cast(pc.round(pc.multiply(amount, 100.0), round_mode="half_towards_infinity"), pa.int64())
        country = pc.utf8_upper(pc.utf8_trim_whitespace(pc.cast(batch.column("country"), pa.string())))
        writer.write_batch(pa.record_batch([
            pc.cast(batch.column("id"), pa.int64()),
            country,
            cents,
            pa.array([currency] * batch.num_rows, pa.string()),
        ], schema=out_schema))
