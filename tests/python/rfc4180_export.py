"""Writes a CSV the way real exports look, with Python's csv module (RFC 4180 quoting).

    rfc4180_export.py OUT.csv ROWS [flat]

A UTF-8 BOM, `\\r\\n` record ends (the csv module's default), and a free-text `note`
column with line breaks (`\\n` and `\\r\\n`), commas, doubled quotes and unicode in
quoted values all through the file; empty values (nulls) in every nullable column;
timestamps with `Z` and with UTC offsets. Deterministic: the same ROWS give the same file.
With `flat`, no value holds a line break (everything else stays: a file that may be read
in byte ranges, `newlinesInValues: false`).
"""

import csv
import random
import sys

out, rows = sys.argv[1], int(sys.argv[2])
flat = sys.argv[3:] == ["flat"]
rng = random.Random(20)
words = ["order", "late", "box", "Zoë", "Ångström", "李雷", "naïve", "café", "🚚", "gift",
         "wrapped", "said", "refund", "O'Brien", "München", "x" * 40]
pieces = ["", "\n", "\r\n", ", ", '"', '""', "\t", " -- "]
if flat:
    pieces = [p for p in pieces if "\n" not in p]


def note(i):
    kind = rng.random()
    if kind < 0.1:
        return ""  # null
    parts = []
    for _ in range(rng.randint(3, 60)):
        parts.append(rng.choice(words))
        parts.append(rng.choice(pieces) or " ")
    text = "".join(parts)
    if i % 97 == 0:
        text = "line one\nline two, with comma\r\nline \"three\""
        if flat:
            text = text.replace("\r\n", " ").replace("\n", " ")
    return text


def ts(i):
    base = f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}"
    zone = ["Z", "+02:00", "-05:30", "+00:00"][i % 4]
    return "" if i % 53 == 0 else base + zone


with open(out, "w", newline="", encoding="utf-8-sig") as f:
    w = csv.writer(f)
    w.writerow(["id", "customer", "amount", "ts", "note"])
    for i in range(rows):
        amount = "" if i % 41 == 0 else f"{rng.randint(0, 10**7) / 100:.2f}"
        customer = rng.choice(words) + ", " + rng.choice(words)
        w.writerow([i, customer, amount, ts(i), note(i)])
