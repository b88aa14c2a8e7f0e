"""The first implementation of prep's matching, kept as the reference the fast one is checked against.

Slow and plain: one string per word n-gram looked up in a dict, a datasketch ``MinHash``
fed one shingle at a time (with synpref's shingle hash, written out byte by byte, and its
permutations), datasketch's ``MinHashLSH``. :func:`clean_reference` runs the
same streaming loop as :func:`synpref.curate.prep._clean_locally` did before it was
vectorised and writes the same outputs (the pool's shards and ``removed.jsonl``), so
``tests/test_prep_golden.py`` can require byte-identical outputs and ``bench/prep_speed.py``
can time the two on the same pool. Nothing in a curation run calls this module.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from synpref.schema import Record, expand_to_pairs
from synpref.store.pool import PoolWriter, read_pool
from synpref.curate.prep import (_GAMMA, _POLY_BASE, REMOVED, has_empty_response, minhash_permutations, pair_full_text,
                                 removed_line)

_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class ReferenceDecontaminator:
    """Benchmark word n-grams (and whole short prompts, 4 to n-1 words) -> the first benchmark holding them."""

    def __init__(self, prompts: dict[str, list[str]], n: int = 13):
        self.n = n
        self.grams: dict[str, str] = {}
        self.short: dict[str, str] = {}
        for src, ps in prompts.items():
            for p in ps:
                toks = words(p)
                if len(toks) >= n:
                    for i in range(len(toks) - n + 1):
                        self.grams.setdefault(" ".join(toks[i : i + n]), src)
                elif len(toks) >= 4:
                    self.short.setdefault(" ".join(toks), src)
        self.short_lengths = sorted({len(k.split()) for k in self.short})

    def match(self, text: str) -> str | None:
        toks = words(text)
        for i in range(len(toks) - self.n + 1):
            src = self.grams.get(" ".join(toks[i : i + self.n]))
            if src:
                return src
        for L in self.short_lengths:
            for i in range(len(toks) - L + 1):
                src = self.short.get(" ".join(toks[i : i + L]))
                if src:
                    return src
        return None


_M = 1 << 64


def reference_shingle_hash(s: bytes) -> int:
    """synpref's 32-bit hash of one shingle, one byte at a time: the polynomial sum(s[k] * B**k)
    mod 2**64, plus the byte length times a constant, through splitmix64's finaliser; its top 32 bits."""
    h, power = 0, 1
    for c in s:
        h = (h + c * power) % _M
        power = power * _POLY_BASE % _M
    z = (h + len(s) * _GAMMA) % _M
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9 % _M
    z = (z ^ (z >> 27)) * 0x94D049BB133111EB % _M
    return (z ^ (z >> 31)) >> 32


def reference_minhash(rec: Record, num_perm: int):
    """datasketch's MinHash of the pair's word 5-gram shingles, one ``update`` per shingle, with
    synpref's shingle hash and permutations (datasketch's ``affine32`` construction)."""
    from datasketch import MinHash

    a, b = minhash_permutations(num_perm)
    m = MinHash(num_perm=num_perm, hashfunc=reference_shingle_hash, permutations=(a.ravel(), b.ravel()), scheme="affine32")
    toks = words(pair_full_text(rec))
    for i in range(max(1, len(toks) - 4)):
        m.update(" ".join(toks[i : i + 5]).encode())
    return m


def clean_reference(pool, out_dir, prompts: dict[str, list[str]] | None, *, ngram: int = 13, near_dup: bool = False,
                    near_dup_threshold: float = 0.9, num_perm: int = 64) -> tuple[Counter, Counter]:
    """Write ``out_dir``'s pool and removed.jsonl as the first prep did; return (counts, contaminated_by).

    ``prompts`` None: no decontamination. The exact-duplicate set is an in-memory set here.
    """
    from datasketch import MinHashLSH

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    deco = ReferenceDecontaminator(prompts, ngram) if prompts is not None else None
    lsh = MinHashLSH(threshold=near_dup_threshold, num_perm=num_perm) if near_dup else None
    counts, contaminated_by = Counter(), Counter()
    seen: set[str] = set()
    kept_order = 0
    with PoolWriter(out_dir) as writer, open(out_dir / REMOVED, "w", encoding="utf-8") as removed:
        def drop(rec, reason, detail=None):
            counts[reason] += 1
            removed.write(removed_line(rec, reason, detail))

        for src in read_pool(pool):
            counts["read"] += 1
            if src.kind == "tie":
                drop(src, "not_a_pair", "tie")
                continue
            for rec in expand_to_pairs(src):
                if has_empty_response(rec):
                    drop(rec, "empty_response")
                    continue
                if rec.id in seen:
                    drop(rec, "duplicate")
                    continue
                seen.add(rec.id)
                if deco is not None:
                    hit = deco.match(pair_full_text(rec))
                    if hit:
                        contaminated_by[hit] += 1
                        drop(rec, "contaminated", hit)
                        continue
                if lsh is not None:
                    m = reference_minhash(rec, num_perm)
                    near = lsh.query(m)
                    if near:
                        drop(rec, "near_duplicate", min(near)[1])
                        continue
                    lsh.insert((kept_order, rec.id), m)
                    kept_order += 1
                writer.write(rec)
                counts["kept"] += 1
    return counts, contaminated_by
