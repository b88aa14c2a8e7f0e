"""The run's pairs in batches: ``RUN_DIR/pairs/part-NNNNN.parquet`` and what is aligned with them.

The ``pairs`` step (:mod:`synpref.curate.steps.pairs`) writes every pair the run works on once, as
pool shards of ``engine.batch_size`` records: the gold pool of the config first (batches
``0 .. gold_batches - 1``), then the pool (prepared by ``prep``, or as given), without duplicates
and without the pairs that are in the gold pool. ``pairs/manifest.json`` records each batch's size.

Batch ``n`` is the unit of every later step: ``attributes/part-n``, ``stage2/scores/part-n``,
``stage2/judgements/part-n``, ``stage2/decisions/part-n`` and the output pools'
``part-n`` hold the rows of pairs batch ``n`` (or a subset of them), in the same order; the
embedding of the pair at global row ``r`` (``offset(n) + i``) is row ``r`` of ``embed/vectors.npy``.
"""

from __future__ import annotations

import bisect
import json
from pathlib import Path
from typing import Iterable, Iterator

import pyarrow.parquet as pq

from ..schema import Record
from ..store.pool import RECORD_SCHEMA, records_from_table
from .parts import ATTRIBUTES, PartDir, part_name

PAIRS = "pairs"
MANIFEST = "manifest.json"


class Pairs:
    """Read access to ``RUN_DIR/pairs`` (after the ``pairs`` step)."""

    def __init__(self, run_dir: str | Path):
        self.dir = Path(run_dir) / PAIRS
        m = json.loads((self.dir / MANIFEST).read_text())
        self.batch_size: int = m["batch_size"]
        self.sizes: list[int] = m["sizes"]
        self.gold_batches: int = m["gold_batches"]
        self.offsets = [0]
        for s in self.sizes:
            self.offsets.append(self.offsets[-1] + s)

    @property
    def n_batches(self) -> int:
        return len(self.sizes)

    @property
    def rows(self) -> int:
        return self.offsets[-1]

    @property
    def gold_range(self) -> range:
        """Batches of the config's gold pool."""
        return range(0, self.gold_batches)

    @property
    def pool_range(self) -> range:
        """Batches of the pool being curated."""
        return range(self.gold_batches, self.n_batches)

    @property
    def pool_rows(self) -> int:
        return self.rows - self.offsets[self.gold_batches]

    def offset(self, n: int) -> int:
        """Global row of batch ``n``'s first pair."""
        return self.offsets[n]

    def path(self, n: int) -> Path:
        return self.dir / part_name(n)

    def records(self, n: int) -> list[Record]:
        return records_from_table(pq.read_table(self.path(n), schema=RECORD_SCHEMA))

    def ids(self, n: int) -> list[str]:
        return pq.read_table(self.path(n), columns=["id"]).column("id").to_pylist()

    def rows_of(self, ids: Iterable[str], batches: Iterable[int] | None = None) -> dict[str, int]:
        """Global row of each of ``ids`` found in ``batches`` (default: all); reads only the id column."""
        want = set(ids)
        found: dict[str, int] = {}
        for n in range(self.n_batches) if batches is None else batches:
            if len(found) == len(want):
                break
            for i, pid in enumerate(self.ids(n)):
                if pid in want and pid not in found:
                    found[pid] = self.offsets[n] + i
        return found

    def pool_ids(self) -> Iterator[str]:
        """The ids of the pool being curated (not the gold pool), in order; reads only the id column."""
        for n in self.pool_range:
            yield from self.ids(n)

    def batch_of(self, row: int) -> tuple[int, int]:
        """(batch, index in the batch) of a global row."""
        n = bisect.bisect_right(self.offsets, row) - 1
        return n, row - self.offsets[n]

    def by_batch(self, rows: Iterable[int]) -> dict[int, list[int]]:
        """Global ``rows`` grouped by batch: ``{batch: [index in the batch, ...]}``, in row order."""
        out: dict[int, list[int]] = {}
        for r in sorted(set(rows)):
            n, i = self.batch_of(r)
            out.setdefault(n, []).append(i)
        return out

    def take(self, rows: Iterable[int]) -> dict[int, Record]:
        """The records at global ``rows`` (each batch holding one is read once)."""
        out = {}
        for n, idx in self.by_batch(rows).items():
            table = pq.read_table(self.path(n), schema=RECORD_SCHEMA).take(idx)
            out.update(zip((self.offsets[n] + i for i in idx), records_from_table(table)))
        return out


class Attributes:
    """The preference attributes aligned with the pairs (``attributes/part-n``); ``None`` for a pair
    without (the attributes step is disabled, or the LLM gave no valid answer)."""

    def __init__(self, run_dir: str | Path, pairs: Pairs, enabled: bool):
        self.parts = PartDir(Path(run_dir) / "attributes", ATTRIBUTES)
        self.pairs = pairs
        self.enabled = enabled

    def batch(self, n: int) -> list[dict | None]:
        if not self.enabled:
            return [None] * self.pairs.sizes[n]
        return [json.loads(r["attributes"]) if r["attributes"] else None for r in self.parts.read(n)]

    def take(self, rows: Iterable[int]) -> dict[int, dict | None]:
        out = {}
        for n, idx in self.pairs.by_batch(rows).items():
            attrs = self.batch(n)
            out.update((self.pairs.offsets[n] + i, attrs[i]) for i in idx)
        return out
