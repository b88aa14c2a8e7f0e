"""Prep's words, many texts at once: exactly ``re.findall(r"\\w+", text.lower())`` of each text
(:func:`synpref.curate.prep.words`), computed on the texts' UTF-8 bytes with numpy.

A text is cut at ASCII white space into pieces. A piece of ASCII bytes only is lower-cased and
split into runs of ``[0-9A-Za-z_]`` (for ASCII, exactly Python's ``\\w`` and ``str.lower``) by
array operations; a piece holding any other byte goes through Python's ``lower`` and ``findall``
as it is (white space bounds the context of ``lower``'s one contextual rule, the final sigma, so a
piece lowers as it would in its text). The tokens come back as one Arrow string array, in order.
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa

_WORD = re.compile(r"\w+")
_PIECE = re.compile(r"\w+|\n")  # the words of pieces joined by new lines, and the new lines
def string_bytes(strings: pa.Array):
    """(the UTF-8 bytes of all strings, one uint8 array; each string's start in it, and the end)."""
    strings = strings.cast(pa.large_string())
    n = len(strings)
    _, off_buf, data_buf = strings.buffers()
    offsets = np.frombuffer(off_buf, dtype=np.int64)[strings.offset : strings.offset + n + 1] if n else np.zeros(1, np.int64)
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    return data[offsets[0] : offsets[-1]], offsets - offsets[0]


def tokenize(strings: pa.Array, text_of=None, n_texts: int | None = None):
    """(tokens, counts): every token of ``strings`` in order (a large_string array) and the
    tokens per text. ``text_of``: the text each string belongs to, non-decreasing (None: one text
    per string); a text's strings are read as if joined by white space."""
    b, starts = string_bytes(strings)
    n = len(b)
    text_of = np.arange(len(strings)) if text_of is None else np.asarray(text_of, dtype=np.int64)
    n_texts = len(strings) if n_texts is None else n_texts
    first = np.zeros(n + 1, dtype=bool)
    first[starts[:-1]] = True  # a string's first byte (an empty string's start is the next one's)
    # ASCII word bytes ([0-9A-Za-z_]; uint8 arithmetic wraps, so one comparison tests a range)
    word = ((b | 32) - 97 < 26) | (b - 48 < 10) | (b == 95)
    joined = word[1:] & word[:-1] & ~first[1:n]  # byte i+1 continues the run of byte i
    t_start = np.flatnonzero(word & ~np.r_[False, joined])
    t_end = np.flatnonzero(word & ~np.r_[joined, False]) + 1
    lengths = t_end - t_start
    offsets = np.zeros(len(t_start) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    lower = np.compress(word, b)
    lower += (lower - 65 < 26).view(np.uint8) * np.uint8(32)
    tokens = pa.LargeStringArray.from_buffers(len(t_start), pa.py_buffer(offsets), pa.py_buffer(lower))
    pos = t_start
    high = np.flatnonzero(b >= 0x80)
    if len(high):  # the pieces (runs of non-space bytes in one string) holding another byte: Python's way
        space = np.r_[-1, np.flatnonzero((b == 32) | (b - 9 < 5)), n]  # with a space before and after all
        at = np.searchsorted(space, high)
        string = np.searchsorted(starts, high, side="right")
        lo, index = np.unique(np.maximum(space[at - 1] + 1, starts[string - 1]), return_index=True)
        hi = np.minimum(space[at], starts[string])[index]
        raw = b.tobytes()
        found = _PIECE.findall(b"\n".join([raw[s:e] for s, e in zip(lo.tolist(), hi.tolist())]).decode("utf-8", "surrogatepass").lower())
        mark = np.fromiter((t == "\n" for t in found), dtype=bool, count=len(found))
        p_pos = lo[np.cumsum(mark)[~mark]]  # each token's piece start
        piece = np.searchsorted(lo, t_start, side="right") - 1  # ASCII runs inside those pieces are theirs
        keep = np.flatnonzero(~((piece >= 0) & (t_start < hi[np.maximum(piece, 0)])))
        # merge two position-sorted sequences (no position is in both)
        p_at = np.searchsorted(t_start[keep], p_pos) + np.arange(len(p_pos))
        order = np.empty(len(keep) + len(p_pos), dtype=np.int64)
        is_p = np.zeros(len(order), dtype=bool)
        is_p[p_at] = True
        order[p_at] = len(t_start) + np.arange(len(p_pos))
        order[~is_p] = keep
        py = pa.array(found, pa.large_string()).filter(pa.array(~mark))
        tokens = pa.concat_arrays([tokens, py]).take(pa.array(order))
        pos = np.concatenate([t_start, p_pos])[order]
    per_string = np.diff(np.searchsorted(pos, starts))  # tokens per string (positions ascend)
    counts = np.bincount(text_of, weights=per_string, minlength=n_texts).astype(np.int64) if len(strings) else np.zeros(n_texts, dtype=np.int64)
    return tokens, counts


def tokens_of_lists(token_lists: list[list[str]]):
    """(tokens, counts) of texts already split into words (:func:`tokenize`'s result for them)."""
    flat = [t for toks in token_lists for t in toks]
    return pa.array(flat, pa.large_string()), np.fromiter((len(t) for t in token_lists), np.int64, len(token_lists))


def split_tokens(tokens: pa.Array, counts) -> list[list[str]]:
    """The tokens as one list per text."""
    flat = tokens.to_pylist()
    ends = np.cumsum(counts).tolist()
    return [flat[a:b] for a, b in zip([0, *ends[:-1]], ends)]
