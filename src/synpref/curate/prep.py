"""Preparation: a pool in, a clean pool out, every removed pair kept in a side file with its reason.

Steps, in order, for each record streamed from the input pool:

1. ``not_a_pair``: ties are removed (they carry no preference); rankings and
   ratings are first expanded to pairs by :func:`synpref.schema.expand_to_pairs`.
2. ``empty_response``: a candidate whose scored turn is empty or white space.
3. ``duplicate``: the same content id (``Record.id``) was already kept (global, on-disk id set).
4. ``contaminated``: the pair (context and both responses) shares a word 13-gram
   with a first-turn prompt of a benchmark synpref evaluates or of an extra prompt
   file. Benchmarks are found under ``data_dir``, or, when none is given, under the
   default data folders (``synpref.evaluate.loading.default_data_dirs``: $SYNPREF_DATA_DIR,
   else ./data and ../shared/data); the report lists the benchmarks checked (with their
   folders) and those not checked (with the reason). Text is lower-cased and split on
   ``\\w+``; prompts shorter than n words are matched as a whole word sequence.
5. ``near_duplicate`` (optional): MinHash LSH over word 5-gram shingles of the whole
   pair, Jaccard >= ``near_dup_threshold`` with a kept pair. The MinHash scheme is
   synpref's own and pinned (``MINHASH_SCHEME``, "synpref-1"; :func:`shingle_hashes`,
   :func:`minhash_permutations`, :func:`minhash_signatures`), and so is the band layout for the
   threshold (:func:`lsh_bands`: the (bands, rows) of least 0.5 false-positive + 0.5
   false-negative area, integrated exactly by Gauss-Legendre quadrature; the choice datasketch's
   ``MinHashLSH`` makes, which a test checks): neither changes with datasketch's version, and prep
   does not import datasketch. Signatures changed with the scheme: earlier preps computed
   datasketch's default MinHash (SHA-1 of each shingle), so a few near-duplicate decisions differ from theirs.

Memory: records stream through in batches; the exact-duplicate id set is on disk
(SQLite); the benchmark n-gram set is proportional to the benchmarks (not the
pool); the optional MinHash LSH index holds one small signature per kept pair.
"""

from __future__ import annotations

import bisect
import collections
import functools
import hashlib
import itertools
import json
import os
import re
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import OutputExistsError
from ..evaluate.constants import BENCHMARK_ORDER
from ..schema import Record
from ..store.pool import PoolWriter, pool_files, record_to_row
from .prep_batches import pair_batches
from .tokens import tokens_of_lists, tokenize
from .util import atomic_write_json, atomic_write_text

_WORD = re.compile(r"\w+")
REMOVED = "removed.jsonl"
REPORT = "prep_report.json"


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def benchmark_prompts(data_dir, benches=BENCHMARK_ORDER) -> dict[str, list[str]]:
    """First-turn prompts of every benchmark found under ``data_dir`` (None: the default data folders; no hub)."""
    return gather_benchmark_prompts(data_dir, benches)[0]


def gather_benchmark_prompts(data_dir=None, benches=BENCHMARK_ORDER) -> tuple[dict[str, list[str]], dict[str, str], dict[str, str]]:
    """(prompts by benchmark, folder of each benchmark checked, reason each other benchmark was not checked).

    ``data_dir`` None searches :func:`~synpref.evaluate.loading.default_data_dirs` in
    order, each benchmark in the first folder that holds it. The hub is never used.
    """
    from ..evaluate.loading import DATA_DIR_VARIABLE, default_data_dirs, find_folder

    roots = [Path(data_dir)] if data_dir is not None else default_data_dirs()
    prompts, checked, unchecked = {}, {}, {}
    for name in benches:
        folder = next((f for f in (find_folder(name, root) for root in roots) if f is not None), None)
        if folder is None:
            where = ", ".join(map(str, roots)) if roots else f"no data folder (none of ${DATA_DIR_VARIABLE}, ./data, ../shared/data exists)"
            unchecked[name] = f"no local folder for it under {where}"
            continue
        found = _folder_prompts(name, str(folder.resolve()))
        if found:
            prompts[name], checked[name] = list(found), str(folder)
        else:
            unchecked[name] = f"{folder}: no prompts could be read"
    return prompts, checked, unchecked


PROMPTS_CACHE = "prep-prompts"  # under synpref.cache.cache_dir()
_PROMPTS_CACHE_VERSION = 1  # raise when the prompts read from a folder change


def _folder_fingerprint(name: str, folder: Path) -> str:
    """A hash of the benchmark's name, its folder and every file under it (path, size, mtime)."""
    from .. import __version__

    h = hashlib.sha256(f"{_PROMPTS_CACHE_VERSION}\0{__version__}\0{name}\0{folder}".encode())
    files = [folder] if folder.is_file() else sorted(p for p in folder.rglob("*") if p.is_file())
    for p in files:
        st = p.stat()
        h.update(f"\0{p.relative_to(folder)}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return h.hexdigest()[:32]


@functools.lru_cache(maxsize=32)
def _folder_prompts(name: str, folder: str) -> tuple[str, ...]:
    """The distinct first-turn prompts of benchmark ``name`` read from ``folder``: read once per
    process, and kept in the user cache (:data:`PROMPTS_CACHE`) until a file under the folder changes."""
    from ..cache import cache_dir
    from ..evaluate.loading import load_benchmark

    cached = cache_dir() / PROMPTS_CACHE / f"{name}-{_folder_fingerprint(name, Path(folder))}.json"
    try:
        return tuple(json.loads(cached.read_text(encoding="utf-8")))
    except (OSError, ValueError):  # absent or unreadable: read the benchmark
        pass
    lb = load_benchmark(name, {name: folder}, use_hub=False)
    firsts = (next((m.content for m in it.context if m.role == "user"), None) for it in lb.items)
    found = tuple(dict.fromkeys(p for p in firsts if p))
    try:
        atomic_write_text(cached, json.dumps(found, ensure_ascii=False))
    except (OSError, UnicodeError):  # a cache that cannot be written only costs the next process a read
        pass
    return found


def read_prompt_file(path) -> list[str]:
    """Prompts from a .txt (one per line) or .jsonl (field prompt/question/instruction or a messages list) file."""
    path = Path(path)
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            if path.suffix == ".jsonl":
                obj = json.loads(line)
                if isinstance(obj, str):
                    out.append(obj)
                    continue
                for k in ("prompt", "question", "instruction", "input"):
                    if isinstance(obj.get(k), str):
                        out.append(obj[k])
                        break
                else:
                    msgs = obj.get("messages") or obj.get("context") or []
                    first = next((m.get("content") for m in msgs if isinstance(m, dict) and m.get("role") == "user"), None)
                    if first:
                        out.append(first)
            else:
                out.append(line)
    return out


# -- word n-gram matching (deterministic: the same in every process) -----------------------------------
_KEY_SEED = 0x5EED13  # fixed: a Decontaminator's keys are the same in the driver and in every Ray worker
_MAX_WINDOW = 64
_PREFIX = 4  # words: every table entry is at least this long (or n is shorter)


class _Windows:
    """The word ids of many texts in one int32 array, a 0 after each text, and the 64-bit keys of
    its windows: the key of the L-word window at i is sum(ids[i + k] * C[k] for k < L) mod 2**64,
    grown one word at a time (:meth:`grow`), so lengths 4, 5, ..., 13 cost one multiply-add each.
    A window holding a 0 (a word no benchmark prompt has, or the end of a text) matches nothing.
    """

    def __init__(self, ids, lengths, coef):
        """``ids``: every text's word ids followed by a 0; ``lengths``: each text's words + 1."""
        self.ids = ids
        self.starts = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=self.starts[1:])
        self.text = np.repeat(np.arange(len(lengths)), lengths)  # the text of each position
        self.zeros = np.concatenate([[0], np.cumsum(self.ids == 0)])  # 0s before each position
        self.coef = coef
        self.length = 0
        self.keys = np.zeros(len(self.ids), dtype=np.uint64)

    @classmethod
    def of_texts(cls, ids, lengths, coef) -> "_Windows":
        """``ids``: the texts' word ids one after another; ``lengths``: the words of each text."""
        lengths = np.asarray(lengths, dtype=np.int64)
        flat = np.zeros(len(ids) + len(lengths), dtype=np.int32)
        flat[np.arange(len(ids)) + np.repeat(np.arange(len(lengths)), lengths)] = ids
        return cls(flat, lengths + 1, coef)

    def grow(self, to: int):
        n = len(self.ids)
        with np.errstate(over="ignore"):
            while self.length < to:
                k = self.length
                if k < n:
                    self.keys[: n - k] += self.ids[k:].astype(np.uint64) * self.coef[k]
                self.length += 1
        return self.keys

    def whole(self):
        """Start positions of the windows (of the current length) that hold no 0."""
        L, n = self.length, len(self.ids) - self.length + 1
        if n <= 0:
            return np.zeros(0, dtype=np.int64)
        return np.flatnonzero(self.zeros[L : L + n] == self.zeros[:n])


class _WindowTable:
    """The benchmark windows of one length, sorted by key; each distinct window once, from its first prompt."""

    def __init__(self, win: _Windows, positions, source_of_text, length: int):
        pos = positions[np.argsort(win.keys[positions], kind="stable")]  # equal keys stay in prompt order
        keys = win.keys[pos]
        if len(keys) > 1:  # a window equal word for word to the one before it: only the first is kept
            later = np.flatnonzero(keys[1:] == keys[:-1]) + 1
            span = np.arange(length)
            equal = (win.ids[pos[later, None] + span] == win.ids[pos[later - 1, None] + span]).all(axis=1)
            keep = np.ones(len(keys), dtype=bool)
            keep[later[equal]] = False
            pos, keys = pos[keep], keys[keep]
        self.keys, self.pos, self.length = keys, pos, length
        self.filter = None
        self.source = source_of_text[win.text[pos]] if len(pos) else np.zeros(0, dtype=np.int64)

    def lookup(self, keys, windows, ids, bench_ids):
        """For each candidate window start (``windows``, keys ``keys``) of ``ids``: its entry, or -1."""
        entry = np.full(len(windows), -1, dtype=np.int64)
        if not len(self.keys) or not len(windows):
            return entry
        if self.filter is None:  # a flag per value of the keys' top bits: most windows are ruled out by one lookup
            self.bits = max(10, min(30, int(len(self.keys) * 16).bit_length()))
            self.filter = np.zeros(1 << self.bits, dtype=bool)
            self.filter[self.keys >> np.uint64(64 - self.bits)] = True
        maybe = np.flatnonzero(self.filter[keys >> np.uint64(64 - self.bits)])
        at = np.minimum(np.searchsorted(self.keys, keys[maybe]), len(self.keys) - 1)
        proposed = maybe[self.keys[at] == keys[maybe]]
        at = at[self.keys[at] == keys[maybe]]
        if not len(proposed):
            return entry
        span = np.arange(self.length)
        w, e = windows[proposed], at
        equal = (ids[w[:, None] + span] == bench_ids[self.pos[e][:, None] + span]).all(axis=1)
        entry[proposed[equal]] = e[equal]
        for j, e in zip(proposed[~equal], at[~equal] + 1):  # two different windows, one key (rare): the others
            while e < len(self.keys) and self.keys[e] == keys[j]:
                if (ids[windows[j] : windows[j] + self.length] == bench_ids[self.pos[e] : self.pos[e] + self.length]).all():
                    entry[j] = e
                    break
                e += 1
        return entry


class _KeySet:
    """Sorted unique 64-bit keys, with a flag per value of their top bits (most misses cost one lookup)."""

    def __init__(self, keys):
        self.keys = keys
        self.bits = max(10, min(30, int(len(keys) * 16).bit_length()))
        self.filter = np.zeros(1 << self.bits, dtype=bool)
        self.filter[keys >> np.uint64(64 - self.bits)] = True

    def has(self, keys):
        """For each key, whether it is in the set."""
        out = self.filter[keys >> np.uint64(64 - self.bits)]
        maybe = np.flatnonzero(out)
        if len(self.keys) and len(maybe):
            at = np.minimum(np.searchsorted(self.keys, keys[maybe]), len(self.keys) - 1)
            out[maybe] = self.keys[at] == keys[maybe]
        return out


class Decontaminator:
    """Benchmark n-grams (and whole short prompts) -> the benchmark they come from.

    Words are numbered in the order the prompts hold them, so the index is the same in every
    process: it pickles as it is and matches in a Ray worker exactly as in the driver.
    :meth:`match_tokens` checks a batch of texts with a few array operations per window length; a
    window a key proposes is confirmed word by word, so a match is exactly "these n words, in this
    order, are in that prompt". The benchmark named is the one of the pair's first matching n-gram,
    else of its shortest (then first) matching short prompt; a window in several prompts names the
    first prompt's benchmark.
    """

    def __init__(self, prompts: dict[str, list[str]], n: int = 13):
        if not 1 <= n <= _MAX_WINDOW:
            raise ValueError(f"ngram must be between 1 and {_MAX_WINDOW}, got {n}")
        self.prompts = prompts
        self.n = n
        self.counts = {src: len(ps) for src, ps in prompts.items()}
        self.names = list(prompts)
        flat = [p for ps in prompts.values() for p in ps]
        source = np.repeat(np.arange(len(prompts)), [len(ps) for ps in prompts.values()])
        try:
            tokens, counts = tokenize(pa.array(flat, pa.large_string()))  # each prompt's words (:func:`words`)
        except (pa.ArrowException, UnicodeError):  # a prompt Arrow cannot hold (a lone surrogate): Python's way
            tokens, counts = tokens_of_lists([words(p) for p in flat])
        # shorter than 4 words: everyday phrases, not indexed
        kind = np.where(counts >= n, 1, np.where(counts >= 4, 2, 0))  # 1: long, 2: short
        used = np.repeat(kind > 0, counts)
        # words are numbered from 1 in the order the indexed prompts hold them (a dictionary's order)
        coded = pc.dictionary_encode(tokens.filter(pa.array(used))) if used.any() else None
        self.vocab_words = coded.dictionary if coded is not None else pa.array([], pa.large_string())
        all_ids = np.zeros(len(tokens), dtype=np.int32)
        if coded is not None:
            all_ids[used] = coded.indices.to_numpy(zero_copy_only=False).astype(np.int32) + 1
        seqs = {which: (all_ids[np.repeat(kind == k, counts)], counts[kind == k], source[kind == k])
                for which, k in (("long", 1), ("short", 2))}
        self.coef = np.random.default_rng(_KEY_SEED).integers(0, 2**63, size=_MAX_WINDOW, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        self.tables: dict[int, _WindowTable] = {}  # n: the n-grams; -L: the whole short prompts of L words
        self.bench_ids = {}
        self.prefix_length = min(_PREFIX, n)
        prefixes = []  # the keys of every table entry's first prefix_length words
        for which, (ids, lengths, srcs) in seqs.items():
            win = _Windows.of_texts(ids, lengths, self.coef)
            self.bench_ids[which] = win.ids
            source_of_text = np.asarray(srcs, dtype=np.int64)
            prefix = win.grow(self.prefix_length).copy()
            if which == "long":
                win.grow(n)
                if len(lengths):
                    self.tables[n] = _WindowTable(win, win.whole(), source_of_text, n)
                    prefixes.append(prefix[self.tables[n].pos])
                continue
            lengths = np.diff(win.starts) - 1
            prefixes.append(prefix[win.starts[:-1]])
            for L in sorted(set(lengths.tolist())):
                win.grow(L)
                self.tables[-L] = _WindowTable(win, win.starts[:-1][lengths == L], source_of_text, L)
        self.short_lengths = sorted(-k for k in self.tables if k < 0)
        self.prefixes = _KeySet(np.unique(np.concatenate(prefixes))) if prefixes else _KeySet(np.zeros(0, np.uint64))

    def match(self, text: str) -> str | None:
        return self.match_tokens([words(text)])[0]

    def word_ids(self, tokens, counts):
        """Every text's word ids (0: a word no prompt has) followed by a 0, as one int32 array
        (``tokens``, ``counts``: :func:`synpref.curate.tokens.tokenize`'s result)."""
        found = pc.index_in(tokens.cast(pa.large_string()), value_set=self.vocab_words)  # index + 1 is the id
        out = np.zeros(len(tokens) + len(counts), dtype=np.int32)
        out[np.arange(len(tokens)) + np.repeat(np.arange(len(counts)), counts)] = pc.fill_null(found, -1).to_numpy(zero_copy_only=False) + 1
        return out

    def match_many(self, texts: list[str]) -> list[str | None]:
        return self.match_tokens([words(t) for t in texts])

    def match_tokens(self, token_lists: list[list[str]]) -> list[str | None]:
        """For each text's words (:func:`words`), the benchmark it is contaminated by, or None."""
        return self.match_words(*tokens_of_lists(token_lists))

    def match_words(self, tokens, counts) -> list[str | None]:
        """:meth:`match_tokens` of texts' words as :func:`synpref.curate.tokens.tokenize` gives them."""
        out: list[str | None] = [None] * len(counts)
        if not len(counts) or not self.tables:
            return out
        win = _Windows(self.word_ids(tokens, counts), np.asarray(counts, dtype=np.int64) + 1, self.coef)
        short = np.full(len(counts), -1, dtype=np.int64)  # the short prompt's source, shortest first
        long = np.full(len(counts), -1, dtype=np.int64)  # the first n-gram's source
        # only windows whose first words begin some table entry can match: their keys grow from there
        win.grow(self.prefix_length)
        at = win.whole()
        at = at[self.prefixes.has(win.keys[at])]
        keys = win.keys[at]
        ids = np.concatenate([win.ids, np.zeros(_MAX_WINDOW, dtype=win.ids.dtype)])
        size, grown = len(win.ids), self.prefix_length
        with np.errstate(over="ignore"):
            for key in [-L for L in self.short_lengths] + [self.n]:  # ascending lengths: the keys only grow
                table = self.tables.get(key)
                if table is None:
                    continue
                while grown < table.length:
                    keys = keys + ids[at + grown].astype(np.uint64) * self.coef[grown]
                    grown += 1
                L = table.length
                whole = (at + L <= size) & (win.zeros[np.minimum(at + L, size)] == win.zeros[at])
                cand, cand_keys = at[whole], keys[whole]
                if key < 0:
                    todo = short[win.text[cand]] < 0
                    cand, cand_keys = cand[todo], cand_keys[todo]
                entry = table.lookup(cand_keys, cand, win.ids, self.bench_ids["long" if key > 0 else "short"])
                found = entry >= 0
                texts, first = np.unique(win.text[cand[found]], return_index=True)  # windows ascend: each text's first
                (long if key > 0 else short)[texts] = table.source[entry[found][first]]
        for t in np.flatnonzero((long >= 0) | (short >= 0)).tolist():
            out[t] = self.names[int(long[t] if long[t] >= 0 else short[t])]
        return out


def pair_full_text(rec: Record) -> str:
    return "\n".join([m.content for m in rec.context] + [m.content for c in rec.candidates for m in c])


def has_empty_response(rec: Record) -> bool:
    """A candidate with no turn, or whose scored (last) turn is empty or white space."""
    return any(not c or not c[-1].content.strip() for c in rec.candidates)


def removed_line(rec: Record, reason: str, detail=None) -> str:
    """One line of ``removed.jsonl``: the reason, its detail, the id and the whole record."""
    return removed_row_line(record_to_row(rec), reason, detail)


def removed_row_line(row: dict, reason: str, detail=None) -> str:
    """:func:`removed_line` of a record's pool row (``record_to_row``)."""
    return json.dumps({"reason": reason, "detail": detail, "id": row["id"], "record": row}, ensure_ascii=False) + "\n"


def removed_rows_bytes(rows: pa.RecordBatch, reasons: list[str], details: list) -> bytes:
    """:func:`removed_row_line` of every row of ``rows`` (pool rows, as read), joined: the same bytes,
    computed column by column (:func:`synpref.curate.json_arrow.json_values`)."""
    from .json_arrow import join_strings, json_rows, json_values
    from .tokens import string_bytes

    lines = join_strings('{"reason": ', json_values(pa.array(reasons, pa.large_string())), ', "detail": ',
                         json_values(pa.array(details, pa.large_string())), ', "id": ', json_values(rows.column("id")),
                         ', "record": ', json_rows(rows), "}\n")
    return string_bytes(lines)[0].tobytes()


# -- near duplicates: synpref's own MinHash scheme, computed for many shingles at once ---------------------
SHINGLE = 5  # words per shingle
# The MinHash scheme is synpref's and pinned (it does not follow datasketch's version): a change to any
# constant below changes every signature, so it gets a new name here and a line in docs/curation.md.
MINHASH_SCHEME = "synpref-1"
_POLY_BASE = 0x9FB21C651E98DF25  # odd, so invertible mod 2**64
_POLY_INV = pow(_POLY_BASE, -1, 1 << 64)
_GAMMA = 0x9E3779B97F4A7C15  # splitmix64's increment; also the weight of a shingle's byte length in its hash
_PERM_SEED = 0x5EED0005
_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix(z):
    """splitmix64's finaliser, on an array."""
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@functools.lru_cache(maxsize=8)
def minhash_permutations(num_perm: int):
    """(a, b): the parameters of the ``num_perm`` permutations, (1, num_perm) uint32 rows. They are
    the outputs of splitmix64 seeded with ``_PERM_SEED`` (output ``2k + 1`` is
    ``_mix(_PERM_SEED + (2k + 1) * _GAMMA)``), top 32 bits: ``a[k]`` from output ``2k + 1`` made
    odd, ``b[k]`` from output ``2k + 2``."""
    k = np.arange(1, 2 * num_perm + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        out = (_mix(np.uint64(_PERM_SEED) + k * np.uint64(_GAMMA)) >> np.uint64(32)).astype(np.uint32)
    return (out[0::2] | np.uint32(1))[None, :], out[1::2][None, :]


def shingles(toks: list[str]) -> list[bytes]:
    """The word 5-grams of a text (one shingle of all its words when it has fewer than 5); what
    :func:`shingle_hashes` hashes, written out plainly."""
    return [" ".join(toks[i : i + SHINGLE]).encode() for i in range(max(1, len(toks) - SHINGLE + 1))]


_POWERS = [np.ones(1, np.uint64), np.ones(1, np.uint64)]  # B**k and B**-k mod 2**64, k < their length
_POWERS_KEPT = 1 << 23  # at most 128 MB of powers stay between batches; a larger batch computes its own


def _powers(n: int):
    """(B**k, B**-k) mod 2**64 for k < n at least (grown by doubling and kept for the next batch,
    up to ``_POWERS_KEPT``)."""
    if len(_POWERS[0]) >= n:
        return _POWERS[0], _POWERS[1]
    size = max(n, min(2 * len(_POWERS[0]), _POWERS_KEPT))
    out = []
    for base in (_POLY_BASE, _POLY_INV):
        p = np.full(size, base, dtype=np.uint64)
        p[0] = 1
        out.append(np.cumprod(p, out=p))  # integer products wrap: mod 2**64
    if size <= _POWERS_KEPT:
        _POWERS[:] = out
    return out[0], out[1]


def shingle_hashes(tokens, counts):
    """(hashes, text of each): the 32-bit hash of every shingle (:func:`shingles`) of every text,
    texts in order. A shingle's bytes ``s`` hash to the top 32 bits of
    ``_mix((sum(s[k] * B**k) + len(s) * _GAMMA) mod 2**64)``, B = ``_POLY_BASE``.

    Computed from prefix sums: with the tokens' bytes laid out one after another, a space after
    each (token j starting at ``p[j] = off[j] + j``), a shingle of tokens [i, e) is that layout's
    slice from ``p[i]``, so its polynomial is ``(sum of U[j], i <= j < e, plus V[j], i <= j < e-1)
    * B**-p[i]``, where ``U[j]`` is token j's bytes weighted by B**(their position in the layout)
    and ``V[j] = 32 * B**(position of the space after token j)``."""
    tokens = tokens.cast(pa.large_string())
    counts = np.asarray(counts, dtype=np.int64)
    n_tok = len(tokens)
    _, off_buf, data_buf = tokens.buffers()
    off = np.frombuffer(off_buf, dtype=np.int64)[tokens.offset : tokens.offset + n_tok + 1] if n_tok else np.zeros(1, np.int64)
    data = np.frombuffer(data_buf, dtype=np.uint8)[off[0] : off[-1]] if data_buf is not None else np.zeros(0, np.uint8)
    off = off - off[0]
    # a text of more than 5 words: one shingle per 5-word window; else one of all its words (b"" for none)
    first = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=first[1:])
    per_text = np.maximum(counts - (SHINGLE - 1), 1)
    texts = np.repeat(np.arange(len(counts)), per_text)
    shingle_start = np.zeros(len(counts), dtype=np.int64)
    np.cumsum(per_text[:-1], out=shingle_start[1:])
    i = np.arange(len(texts)) - (shingle_start - first[:-1])[texts]  # each shingle's first token
    e = np.minimum(i + SHINGLE, first[1:][texts])  # and its end
    power, inverse = _powers(len(data) + n_tok + 1)
    pos = off + np.arange(n_tok + 1)  # of each token in the layout (and of the end)
    qd = np.zeros(len(data) + 1, dtype=np.uint64)
    qu = np.zeros(n_tok + 1, dtype=np.uint64)
    qv = np.zeros(n_tok + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        np.multiply(data, power[: len(data)], out=qd[1:])  # the bytes weighted by B**(position in data)
        np.cumsum(qd[1:], out=qd[1:])  # mod 2**64
        # token j's bytes sit j places further on in the layout than in data
        np.cumsum((qd[off[1:]] - qd[off[:-1]]) * power[:n_tok], out=qu[1:])
        np.cumsum(np.uint64(32) * power[pos[1:] - 1], out=qv[1:])  # the space after token j: layout position pos[j+1] - 1
        last = np.maximum(e - 1, i)
        h = (qu[e] - qu[i] + qv[last] - qv[i]) * inverse[pos[i]]
        length = np.where(e > i, pos[e] - 1 - pos[i], 0)
        h += length.astype(np.uint64) * np.uint64(_GAMMA)
    return (_mix(h) >> np.uint64(32)).astype(np.uint32), texts


def _fmix32(h):
    """MurmurHash3's 32-bit finaliser: the pre-mix of the affine permutations (as datasketch's
    ``affine32`` scheme applies it)."""
    with np.errstate(over="ignore"):
        h = (h ^ (h >> np.uint32(16))) * np.uint32(0x85EBCA6B)
        h = (h ^ (h >> np.uint32(13))) * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def minhash_signatures(token_lists, num_perm: int, *, chunk: int = 1 << 13):
    """(texts, num_perm) uint32: each text's MinHash signature in synpref's scheme (``MINHASH_SCHEME``):
    for permutation k, the least ``a[k] * fmix32(h) + b[k] mod 2**32`` over its shingles' hashes h
    (:func:`shingle_hashes`, :func:`minhash_permutations`); 2**32 - 1 for none. ``token_lists``: a
    list of word lists, or (tokens, counts) as :func:`synpref.curate.tokens.tokenize` gives them."""
    a, b = minhash_permutations(num_perm)
    tokens, counts = token_lists if isinstance(token_lists, tuple) else tokens_of_lists(token_lists)
    out = np.full((len(counts), num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)
    if not len(counts):
        return out
    hv, text_of = shingle_hashes(tokens, counts)
    hv = _fmix32(hv)
    with np.errstate(over="ignore"):
        for s in range(0, len(hv), chunk):  # bounded temporaries: num_perm x chunk
            x = np.multiply(hv[None, s : s + chunk], a.T)  # (permutations, shingles): a text's values are contiguous
            x += b.T
            t = text_of[s : s + chunk]
            cut = np.flatnonzero(np.r_[True, t[1:] != t[:-1]])
            np.minimum.at(out, t[cut], np.minimum.reduceat(x, cut, axis=1).T)
    return out


LSH_WEIGHTS = (0.5, 0.5)  # of the false-positive and false-negative areas in lsh_bands' error


@functools.lru_cache(maxsize=16)
def lsh_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) of the LSH for Jaccard ``threshold`` over ``num_perm`` permutations, pinned in
    synpref (the standard MinHash-LSH choice): two texts of Jaccard s share one of b bands of r
    rows with probability P(s) = 1 - (1 - s**r)**b; the pick is the (b, r), b * r <= num_perm,
    of least 0.5 * (false-positive area, the integral of P over [0, threshold]) + 0.5 *
    (false-negative area, of 1 - P over [threshold, 1]); the first in (b, r) order on a tie.

    P is a polynomial of degree b * r <= num_perm, so Gauss-Legendre quadrature with
    num_perm // 2 + 1 nodes on each side of the threshold integrates it exactly (up to rounding)."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"near_dup_threshold {threshold}: a Jaccard similarity is in [0, 1]")
    if num_perm < 1:
        raise ValueError(f"num_perm {num_perm}: MinHash needs at least one permutation")
    x, w = np.polynomial.legendre.leggauss(num_perm // 2 + 1)
    x, w = (x + 1) / 2, w / 2  # on [0, 1]
    b = np.repeat(np.arange(1, num_perm + 1), num_perm // np.arange(1, num_perm + 1))
    r = np.concatenate([np.arange(1, num_perm // k + 1) for k in range(1, num_perm + 1)])
    error = np.zeros(len(b))
    for lo, hi, weight, miss in ((0.0, threshold, LSH_WEIGHTS[0], False), (threshold, 1.0, LSH_WEIGHTS[1], True)):
        s = lo + (hi - lo) * x
        for c in range(0, len(b), 4096):  # bounded temporaries: 4096 x nodes
            with np.errstate(divide="ignore"):  # s == 1 (a threshold of 1): log 0 = -inf, and P = 1 exactly
                log_none = b[c : c + 4096, None] * np.log1p(-s[None, :] ** r[c : c + 4096, None])  # log (1 - s**r)**b
            p = np.exp(log_none) if miss else -np.expm1(log_none)  # 1 - P or P
            error[c : c + 4096] += weight * (hi - lo) * (p @ w)
    k = int(np.argmin(error))  # the first least: b ascending, then r
    return int(b[k]), int(r[k])


def lsh_ranges(threshold: float, num_perm: int) -> list[tuple[int, int]]:
    """The LSH bands as (start, end) slices of a signature (:func:`lsh_bands`); two pairs are near
    duplicates when one of their bands is equal in both."""
    bands, rows = lsh_bands(threshold, num_perm)
    return [(i * rows, (i + 1) * rows) for i in range(bands)]


def band_keys(signatures, ranges, seed: int):
    """(pairs, bands) uint64: a 64-bit hash of each band's values (and of its index)."""
    starts = np.array([s for s, _ in ranges], dtype=np.int64)
    width = ranges[0][1] - ranges[0][0]
    with np.errstate(over="ignore"):
        h = np.broadcast_to(_mix(np.arange(len(ranges), dtype=np.uint64) + np.uint64(seed) * _MIX2), (len(signatures), len(ranges))).copy()
        for k in range(width):
            h = _mix(h ^ signatures[:, starts + k].astype(np.uint64))
    return h


def pair_band_keys(token_lists: list[list[str]], ranges, num_perm: int):
    """(k1, k2): two independent 64-bit keys of each LSH band of each text's MinHash, (texts, bands) each."""
    sig = minhash_signatures(token_lists, num_perm)
    return band_keys(sig, ranges, 1), band_keys(sig, ranges, 2)


class NearDuplicates:
    """The kept pairs' LSH bands, streaming: :meth:`check` decides a batch in order, as datasketch's
    ``MinHashLSH`` queried then inserted pair by pair would (a pair sharing a band with a kept pair
    is a near duplicate of the earliest such pair; else it is kept and its bands join the index).

    A band is keyed by two independent 64-bit hashes of its values (a false match needs both to
    collide: about 2**-128 per comparison). The index is a few sorted arrays (merged as they
    grow, as an LSM tree does): 20 bytes per kept pair and band, ids 32 bytes per kept pair.
    """

    def __init__(self, threshold: float, num_perm: int):
        self.num_perm = num_perm
        self.ranges = lsh_ranges(threshold, num_perm)
        self.runs: list[tuple] = []  # (k1 sorted, k2, kept order)
        self.id_chunks: list = []  # kept ids, in kept order, one array per batch
        self.chunk_starts: list[int] = []
        self.kept = 0

    def _id(self, order: int) -> str:
        c = bisect.bisect_right(self.chunk_starts, order) - 1
        return self.id_chunks[c][order - self.chunk_starts[c]].decode()

    def _lookup(self, k1, k2):
        """Kept order of each key's pair, or -1 (keys are unique in the index)."""
        found = np.full(k1.shape, -1, dtype=np.int64)
        for r1, r2, order in self.runs:
            at = np.minimum(np.searchsorted(r1, k1), len(r1) - 1)
            same = r1[at] == k1
            hit = same & (r2[at] == k2)
            found[hit] = order[at[hit]]
            for j in np.flatnonzero(same & ~hit):  # one k1, two k2 (rare): the others with that k1
                e = at[j] + 1
                while e < len(r1) and r1[e] == k1[j]:
                    if r2[e] == k2[j]:
                        found[j] = order[e]
                        break
                    e += 1
        return found

    def keys(self, token_lists: list[list[str]]):
        """The band keys (k1, k2) of texts' words: (texts, bands) uint64 each."""
        return pair_band_keys(token_lists, self.ranges, self.num_perm)

    def check(self, token_lists: list[list[str]], ids: list[str]) -> list[str | None]:
        """For each pair in order: the id of the kept pair it nearly duplicates, or None (it is kept)."""
        return self.decide(*self.keys(token_lists), ids)

    def decide(self, k1, k2, ids: list[str]) -> list[str | None]:
        """:meth:`check` from the pairs' band keys (:meth:`keys`)."""
        if not ids:
            return []
        earlier = self._lookup(k1.ravel(), k2.ravel()).reshape(k1.shape)
        none = np.iinfo(np.int64).max
        earliest = np.where(earlier >= 0, earlier, none).min(axis=1).tolist()
        here: dict[tuple[int, int], int] = {}  # this batch's kept bands -> kept order
        out: list[str | None] = []
        new_ids, new_rows = [], []
        for j, (row1, row2) in enumerate(zip(k1.tolist(), k2.tolist())):
            if earliest[j] != none:  # an earlier batch's kept pair comes before any of this batch's
                out.append(self._id(earliest[j]))
                continue
            hits = [here[k] for k in zip(row1, row2) if k in here]
            if hits:
                out.append(new_ids[min(hits) - self.kept])
                continue
            for k in zip(row1, row2):
                here[k] = self.kept + len(new_ids)
            new_ids.append(ids[j])
            new_rows.append(j)
            out.append(None)
        if new_ids:
            self._insert(k1[new_rows].ravel(), k2[new_rows].ravel(),
                         np.repeat(np.arange(self.kept, self.kept + len(new_ids)), len(self.ranges)), new_ids)
        return out

    def _insert(self, k1, k2, order, new_ids):
        self.id_chunks.append(np.array([i.encode() for i in new_ids]))
        self.chunk_starts.append(self.kept)
        self.kept += len(new_ids)
        sort = np.lexsort((k2, k1))
        self.runs.append((k1[sort], k2[sort], order[sort].astype(np.int32 if self.kept < 2**31 else np.int64)))
        while len(self.runs) > 1 and len(self.runs[-2][0]) <= 2 * len(self.runs[-1][0]):
            (a1, a2, ao), (b1, b2, bo) = self.runs.pop(), self.runs.pop()
            m1, m2, mo = np.concatenate([a1, b1]), np.concatenate([a2, b2]), np.concatenate([ao, bo])
            sort = np.lexsort((m2, m1))
            self.runs.append((m1[sort], m2[sort], mo[sort]))


# -- the local engine ------------------------------------------------------------------------------------
BATCH = 1000  # pairs per batch


class _Features:
    """What prep computes from a pair's text alone: the benchmark it is contaminated by and its LSH
    band keys. Run in this process, or in worker processes (``workers`` > 0) while this one reads,
    deduplicates and writes: each gets the (picklable, deterministic) Decontaminator once."""

    def __init__(self, deco, ranges, num_perm: int):
        self.deco, self.ranges, self.num_perm = deco, ranges, num_perm
        if ranges is not None:
            minhash_permutations(num_perm)  # computed once here (and cached for a worker)

    def __call__(self, segments):
        """``segments``: (strings, the text of each, number of texts), as :func:`tokenize` reads them."""
        n = segments[2]
        if self.deco is None and self.ranges is None:
            return [None] * n, None
        tokens, counts = tokenize(*segments)
        contaminated = self.deco.match_words(tokens, counts) if self.deco is not None else [None] * n
        if self.ranges is None:
            return contaminated, None
        clean = np.array([not c for c in contaminated], dtype=bool)  # a contaminated pair never enters the index
        if not clean.all():
            tokens, counts = tokens.filter(pa.array(np.repeat(clean, counts))), counts[clean]
        return contaminated, pair_band_keys((tokens, counts), self.ranges, self.num_perm)


_WORKER_FEATURES: _Features | None = None


def _init_worker(features: _Features) -> None:
    global _WORKER_FEATURES
    _WORKER_FEATURES = features


def _worker_features(texts: list[str]):
    return _WORKER_FEATURES(texts)


def _clean_locally(pool, out_dir: Path, deco, near_dup: bool, near_dup_threshold: float, num_perm: int,
                   counts: Counter, contaminated_by: Counter, progress: bool = False, workers: int = 0) -> None:
    """The steps, streaming: writes the pool and removed.jsonl, fills ``counts``. This process reads,
    deduplicates (an on-disk id set), decides near duplicates in pool order and writes; ``workers``
    processes (0: this one) tokenise, decontaminate and hash batches ahead of it."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from ..ingest import _SeenIds  # the on-disk id set of ingest (flat memory)
    from ..store.pool import count_pool

    near = NearDuplicates(near_dup_threshold, num_perm) if near_dup else None
    features = _Features(deco, near.ranges if near else None, num_perm)
    executor = None
    if workers > 0 and (deco is not None or near is not None):
        # spawn, not fork: this process holds Arrow's thread pools and an SQLite connection
        executor = ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_worker, initargs=(features,))
    seen = _SeenIds(out_dir)
    writer = PoolWriter(out_dir)
    removed = open(out_dir / REMOVED, "wb")
    from ..progress import progress as progress_bar

    bar = progress_bar(total=count_pool(pool), desc="prep", unit="record", enabled=progress)
    pending: collections.deque = collections.deque()  # batches whose features are being computed, in pool order

    def submit(batch):
        fresh = seen.add_batch(batch.ids)
        segments = batch.texts([k for k, new in enumerate(fresh) if new])
        if executor is None:
            done = features(segments)
            pending.append((batch, fresh, lambda: done))
        else:
            pending.append((batch, fresh, executor.submit(_worker_features, segments).result))
        while len(pending) > 2 * workers:
            finish(*pending.popleft())

    def finish(batch, fresh, result):
        """The batch's decisions, written in pool order."""
        contaminated, keys = result()
        todo = [k for k, new in enumerate(fresh) if new]
        source = dict(zip(todo, contaminated))
        clean = [k for k in todo if not source[k]]
        near_of = dict(zip(clean, near.decide(*keys, [batch.ids[k] for k in clean]))) if near is not None else {}
        kept_rows, lines = [], []  # lines: (item, reason, detail) removed, in order
        k = -1
        for item, reason, detail in batch.items:
            if reason is None:
                k += 1
                if not fresh[k]:
                    reason = "duplicate"
                elif source[k]:
                    reason, detail = "contaminated", source[k]
                    contaminated_by[detail] += 1
                elif near_of.get(k):
                    reason, detail = "near_duplicate", near_of[k]
            if reason is not None:
                counts[reason] += 1
                lines.append((item, reason, detail))
            elif isinstance(item, int):
                kept_rows.append(item)
            else:
                writer.write(item)
            counts["kept"] += reason is None
        removed.write(batch.removed_bytes(lines))
        if kept_rows:
            writer.write_table(batch.rows.take(pa.array(kept_rows, pa.int64())))

    try:
        for batch in pair_batches(pool, BATCH):
            counts["read"] += batch.read
            bar.update(batch.read)
            submit(batch)
        while pending:
            finish(*pending.popleft())
    finally:
        if executor is not None:
            executor.shutdown(cancel_futures=True)
        writer.close()
        removed.close()
        seen.close()
        bar.close()


def prep(pool, out_dir, *, data_dir=None, benches=BENCHMARK_ORDER, extra_prompts=(), decontaminate: bool = True,
         ngram: int = 13, near_dup: bool = False, near_dup_threshold: float = 0.9, num_perm: int = 64,
         overwrite: bool = False, progress: bool = False, engine=None, workers: int = 0) -> dict:
    """Clean ``pool`` into ``out_dir`` (a pool plus ``removed.jsonl`` and ``prep_report.json``); return the report.

    ``engine``: None (this process) or a started :class:`~synpref.engine.ray_cluster.RayCluster`
    (the same steps as Ray Data stages over the pool's shards; the same outputs).
    ``workers``: processes that tokenise, decontaminate and hash for the local engine (0: all in
    this process; ``synpref curate prep --workers``); the outputs do not depend on it.
    They are spawned: a script calling this with workers > 0 needs the ``if __name__ == "__main__":`` guard.
    """

    pool_files(pool)  # a missing or empty input pool fails here, before anything is written
    if near_dup:
        lsh_bands(near_dup_threshold, num_perm)  # and so does a threshold out of [0, 1]
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.glob("part-*.parquet")):
        if not overwrite:
            raise OutputExistsError(f"{out_dir} already holds a pool")
        for p in out_dir.glob("part-*.parquet"):
            p.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)

    deco = None
    sources, checked, unchecked = {}, {}, {}
    if decontaminate:
        started = time.monotonic()
        if progress:
            print("prep: reading the benchmark prompts to decontaminate against", file=sys.stderr, flush=True)
        prompts, checked, unchecked = gather_benchmark_prompts(data_dir, benches)
        for f in extra_prompts:
            prompts[f"file:{Path(f).name}"] = read_prompt_file(f)
        deco = Decontaminator(prompts, ngram)
        sources = deco.counts
        if progress:
            print(f"prep: {sum(len(v) for v in prompts.values()):,} prompts of {len(prompts)} sources indexed "
                  f"({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)
    counts = Counter()
    contaminated_by = Counter()
    if engine is None:
        _clean_locally(pool, out_dir, deco, near_dup, near_dup_threshold, num_perm, counts, contaminated_by, progress, workers)
    else:
        from ..engine.ray_prep import clean_on_ray

        clean_on_ray(engine, pool, out_dir, deco, near_dup, near_dup_threshold, num_perm, counts, contaminated_by)
    report = {
        "input": str(pool),
        "output": str(out_dir),
        "read": counts.pop("read", 0),
        "kept": counts.pop("kept", 0),
        "removed": dict(sorted(counts.items())),
        "contaminated_by": dict(contaminated_by),
        "decontamination_sources": sources,
        "benchmarks_checked": checked,
        "benchmarks_not_checked": unchecked,
        "settings": {"ngram": ngram, "near_dup": near_dup, "near_dup_threshold": near_dup_threshold, "decontaminate": decontaminate},
        "removed_file": str(out_dir / REMOVED),
    }
    atomic_write_json(out_dir / REPORT, report)
    return report
