"""``json.dumps(value, ensure_ascii=False)`` of every element of an Arrow array, computed column by
column with Arrow kernels (no Python object per value), byte for byte what ``json.dumps`` writes
of the element's ``as_py()``: a struct is an object of its fields in order, a list an array, a null
``null``; strings are escaped as ``json`` escapes them without ``ensure_ascii`` (``\\"``, ``\\\\``,
``\\n`` ``\\r`` ``\\t`` ``\\b`` ``\\f``, any other character below U+0020 as ``\\u00XX``; on
the UTF-8 bytes, with numpy); numbers are formatted by ``json`` itself (one call per column)."""

from __future__ import annotations

import json
from json.encoder import encode_basestring

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .tokens import string_bytes

_STRING = pa.large_string()
# each byte's escape: json's short ones, else \u00XX below 0x20; other bytes are themselves. An
# ASCII byte never occurs inside a multi-byte UTF-8 sequence, so escaping the bytes escapes the text.
_ESCAPE = {c: ("\\u%04x" % c).encode() for c in range(0x20)}
_ESCAPE.update({ord(k): v.encode() for k, v in (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"),
                                                 ("\t", "\\t"), ("\b", "\\b"), ("\f", "\\f"))})
_EXTRA = np.zeros(256, np.int64)  # bytes each escape adds
_TAIL = np.zeros((256, 5), np.uint8)  # the escape's bytes after its backslash
for _c, _e in _ESCAPE.items():
    _EXTRA[_c] = len(_e) - 1
    _TAIL[_c, : len(_e) - 1] = np.frombuffer(_e[1:], np.uint8)


def join_strings(*pieces) -> pa.Array:
    """The pieces (arrays, or strings repeated) concatenated element by element."""
    typed = [pa.scalar(x, _STRING) if isinstance(x, str) else x for x in pieces]
    return pc.binary_join_element_wise(*typed, pa.scalar("", _STRING))


def _or_null(values: pa.Array, arr: pa.Array) -> pa.Array:
    """``values``, with ``null`` where ``arr`` is null."""
    return pc.if_else(pc.is_valid(arr), values, pa.scalar("null", _STRING)) if arr.null_count else values


def _strings(arr: pa.Array) -> pa.Array:
    """Each string escaped and quoted: in one ``np.insert`` into the UTF-8 bytes, the escapes' bytes
    after their backslash, then a quote at each string's start and end."""
    data, off = string_bytes(arr)
    at = np.flatnonzero((data < 0x20) | (data == 0x22) | (data == 0x5C))  # the bytes to escape
    byte = data[at]
    extra = _EXTRA[byte]
    if len(at):
        data = data.copy()
        data[at] = 0x5C  # each escape starts with a backslash
    tail = _TAIL[byte][np.arange(5) < extra[:, None]]  # row by row: the bytes after each backslash
    # at a string's end: an escape's tail, then its closing quote, then the next one's opening quote
    where = np.concatenate([np.repeat(at + 1, extra), off[1:], off[:-1]])
    data = np.insert(data, where, np.concatenate([tail, np.full(2 * len(arr), 0x22, np.uint8)]))
    added = np.concatenate([[0], np.cumsum(extra)])
    off = off + added[np.searchsorted(at, off)] + 2 * np.arange(len(off))
    quoted = pa.LargeStringArray.from_buffers(len(arr), pa.py_buffer(off), pa.py_buffer(data))
    return _or_null(quoted, arr)


def _numbers(arr: pa.Array) -> pa.Array:
    """Numbers and booleans (and nulls) as ``json`` formats them (a float's repr, NaN, Infinity)."""
    if not len(arr):
        return pa.array([], _STRING)
    return pa.array(json.dumps(arr.to_pylist())[1:-1].split(", "), _STRING)  # a number's text holds no ", "


def _list(arr: pa.Array) -> pa.Array:
    offsets = arr.offsets
    first = offsets[0].as_py()
    values = arr.values.slice(first, offsets[-1].as_py() - first)
    items = pa.LargeListArray.from_arrays(pc.subtract(offsets.cast(pa.int64()), first), json_values(values))
    joined = join_strings("[", pc.binary_join(items, pa.scalar(", ", _STRING)), "]")
    return _or_null(joined, arr)


def _struct(arr: pa.StructArray) -> pa.Array:
    if not arr.type.num_fields:
        return _or_null(pa.array(["{}"] * len(arr), _STRING), arr)
    pieces = []
    for k, (field, values) in enumerate(zip(arr.type, arr.flatten())):
        pieces += [("{" if k == 0 else ", ") + encode_basestring(field.name) + ": ", json_values(values)]
    return _or_null(join_strings(*pieces, "}"), arr)


def json_values(arr: pa.Array) -> pa.Array:
    """The JSON text of each element of ``arr`` (large strings, none null)."""
    t = arr.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return _strings(arr)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return _list(arr)
    if pa.types.is_struct(t):
        return _struct(arr)
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_null(t):
        return _numbers(arr)
    raise TypeError(f"no JSON form for Arrow type {t}")


def json_rows(batch: pa.RecordBatch) -> pa.Array:
    """``json.dumps(row, ensure_ascii=False)`` of each row of ``batch`` (its columns in order)."""
    return json_values(batch.to_struct_array())

