"""``synpref.curate.json_arrow``: Arrow values to JSON column by column, byte for byte ``json.dumps``."""

from __future__ import annotations

import json
import math
import random

import pyarrow as pa
import pytest

from synpref.curate.json_arrow import json_rows, json_values
from synpref.curate.prep import removed_row_line, removed_rows_bytes
from synpref.schema import Message, Record
from synpref.store.pool import RECORD_SCHEMA, record_to_row

TRICKY = ["", "a", '"', "\\", "\\\"", "".join(map(chr, range(128))), "über\nnaïve 日本語 \u2028\u2029 😀 \x7f\x80",
          "end\x1f", "\x00start", "\r\n\t\b\f", "ends with a backslash \\", "x" * 300]


def _dumps(values):
    return [json.dumps(v, ensure_ascii=False) for v in values]


@pytest.mark.parametrize("type_", [pa.string(), pa.large_string()])
def test_strings_are_escaped_as_json_escapes_them(type_):
    values = TRICKY + [None] + TRICKY[::-1]
    arr = pa.array(values, type_)
    assert json_values(arr).to_pylist() == _dumps(values)
    assert json_values(arr.slice(3, 9)).to_pylist() == _dumps(values[3:12])  # an offset into the buffers
    assert json_values(arr.slice(0, 0)).to_pylist() == []


def test_random_nested_values_equal_json_dumps():
    rng = random.Random(7)
    chars = "ab \"\\\n\t\x01\x1fü日😀,:[]{}"

    def text():
        return None if rng.random() < 0.1 else "".join(rng.choice(chars) for _ in range(rng.randint(0, 12)))

    def number():
        return rng.choice([None, 0.0, -0.0, 1.0, 0.1, 1e-5, 1e300, 2.5e-308, math.inf, -math.inf, rng.random() * 1e6])

    rows = [{"s": text(), "i": rng.choice([None, 0, -1, 2**62]), "f": number(), "b": rng.choice([None, True, False]),
             "ls": None if rng.random() < 0.1 else [text() for _ in range(rng.randint(0, 4))],
             "lf": [number() for _ in range(rng.randint(0, 3))],
             "conv": [[{"role": text(), "content": text()} for _ in range(rng.randint(0, 3))] for _ in range(rng.randint(0, 3))]}
            for _ in range(300)]
    table = pa.Table.from_pylist(rows)
    batch = table.to_batches()[0]
    assert json_rows(batch).to_pylist() == _dumps(batch.to_pylist())
    assert json_rows(batch.slice(17, 100)).to_pylist() == _dumps(batch.slice(17, 100).to_pylist())
    nan = pa.array([math.nan, None, 1.5])
    assert json_values(nan).to_pylist() == ["NaN", "null", "1.5"]


def test_removed_rows_bytes_equal_the_lines_one_by_one():
    recs = [Record(context=(Message("user", t),), candidates=((Message("assistant", t + " yes"),), (Message("assistant", "no"),)),
                   kind="pair", margin=[None, 0.25, 3.0][k % 3], meta={"k": k, "t": t} if k % 2 else {})
            for k, t in enumerate(TRICKY)]
    rows = pa.Table.from_pylist([record_to_row(r) for r in recs], schema=RECORD_SCHEMA).to_batches()[0]
    reasons = ["near_duplicate", "contaminated", "duplicate"] * 4
    details = [recs[0].id, "rewardbench", None] * 4
    want = "".join(removed_row_line(row, reason, detail) for row, reason, detail in zip(rows.to_pylist(), reasons, details))
    assert removed_rows_bytes(rows, reasons, details) == want.encode()
