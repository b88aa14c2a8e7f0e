"""``pairs``: the run's pairs, once, in batches (``RUN_DIR/pairs/``, see :mod:`synpref.curate.pairs`).

Input batch n is rows ``[n*B, (n+1)*B)`` of the gold pool of the config (batches ``0 .. G-1``),
then of the pool (``prep/``, or the config's pool when prep is disabled), B = ``engine.batch_size``.
Output part n holds the pairs of input batch n that were not seen before: a pair already in the
gold pool, or already earlier in the pool, is counted (``in_gold``, ``duplicates``) and left out
(the pool of a run is a set of pairs). Works on Arrow batches and the stored ``id`` column: no
record is built. The ids seen so far are an on-disk set (``pairs/.seen.sqlite``) that remembers
which batch added each id, so a resumed run forgets the unfinished batch's ids and redoes it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pyarrow as pa

from ...store.pool import RECORD_SCHEMA, count_pool, iter_pool_batches, write_pool_part
from ..pairs import MANIFEST, PAIRS
from ..parts import part_name
from ..util import atomic_write_json
from .base import BatchStep, Done


class SeenIds:
    """Ids on disk, each with the batch that added it (so a batch can be taken back)."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(str(path))
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS ids (id TEXT PRIMARY KEY, batch INTEGER) WITHOUT ROWID")
        self.db.commit()

    def forget_from(self, batch: int) -> None:
        self.db.execute("DELETE FROM ids WHERE batch >= ?", (batch,))
        self.db.commit()

    def batches_of(self, ids: list[str]) -> dict[str, int]:
        """The batch that added each of ``ids`` already seen."""
        out: dict[str, int] = {}
        unique = list(dict.fromkeys(ids))
        for i in range(0, len(unique), 500):
            chunk = unique[i : i + 500]
            out.update(self.db.execute(f"SELECT id, batch FROM ids WHERE id IN ({','.join('?' * len(chunk))})", chunk).fetchall())
        return out

    def add(self, ids: list[str], batch: int) -> None:
        self.db.executemany("INSERT OR IGNORE INTO ids VALUES (?, ?)", [(i, batch) for i in ids])
        self.db.commit()

    def close(self) -> None:
        self.db.close()


def _rows(pool: Path) -> int:
    """Rows of a pool; a folder prep left empty (it removed every pair) has none."""
    if pool.is_dir() and not any(pool.glob("part-*.parquet")) and (pool / "prep_report.json").is_file():
        return 0
    return count_pool(pool)


class PairsStep(BatchStep):
    name = "pairs"
    inputs = ("prep/ (or <pool>)", "<gold>")
    outputs = ("pairs/part-NNNNN.parquet", "pairs/manifest.json")

    @staticmethod
    def _sources(ctx) -> tuple[Path | None, int, Path, int]:
        """The gold pool (or None) and its batch count, the pool and its batch count."""
        b = ctx.cfg.engine.batch_size
        gold = Path(ctx.cfg.gold) if ctx.cfg.gold else None
        pool = ctx.dir / "prep" if ctx.cfg.prep.enabled else Path(ctx.cfg.pool)
        return gold, (-(-_rows(gold) // b) if gold else 0), pool, -(-_rows(pool) // b)

    def batches(self, ctx):
        _, g, _, p = self._sources(ctx)
        return range(g + p)

    def begin(self, ctx, fresh: bool) -> None:
        self.dir = ctx.dir / PAIRS
        self.b = ctx.cfg.engine.batch_size
        self.gold_pool, self.gold_batches, self.pool, pool_batches = self._sources(ctx)
        self.n_batches = self.gold_batches + pool_batches
        if fresh:
            for p in self.dir.glob("part-*.parquet"):
                p.unlink()
            (self.dir / ".seen.sqlite").unlink(missing_ok=True)
        self.seen = SeenIds(self.dir / ".seen.sqlite")
        self.seen.forget_from(ctx.state.batches_done(self.name))

    def end(self, ctx) -> None:
        self.seen.close()

    def _input(self, n: int) -> pa.Table:
        src, start = (self.gold_pool, n * self.b) if n < self.gold_batches else (self.pool, (n - self.gold_batches) * self.b)
        got, rows = [], 0
        for batch in iter_pool_batches(src, batch_size=self.b, start=start):
            got.append(batch.slice(0, self.b - rows))
            rows += got[-1].num_rows
            if rows >= self.b:
                break
        return pa.Table.from_batches(got, schema=RECORD_SCHEMA) if got else RECORD_SCHEMA.empty_table()

    def run_batch(self, ctx, n: int) -> Done:
        table = self._input(n)
        ids = table.column("id").to_pylist()
        earlier = self.seen.batches_of(ids)
        keep, kept_ids, duplicates, in_gold = [], set(), 0, 0
        for i, pid in enumerate(ids):
            if pid in kept_ids or pid in earlier:
                if n >= self.gold_batches and earlier.get(pid, n) < self.gold_batches:
                    in_gold += 1
                else:
                    duplicates += 1
                continue
            kept_ids.add(pid)
            keep.append(i)
        write_pool_part(self.dir / part_name(n), table.take(pa.array(keep, pa.int64())))
        self.seen.add([ids[i] for i in keep], n)
        return Done({"read": len(ids), "kept": len(keep), "duplicates": duplicates, "in_gold": in_gold})

    def finish(self, ctx, totals: dict) -> dict:
        import pyarrow.parquet as pq

        n_batches = self.n_batches
        sizes = [pq.ParquetFile(self.dir / part_name(n)).metadata.num_rows for n in range(n_batches)]
        atomic_write_json(self.dir / MANIFEST, {"batch_size": self.b, "gold_batches": self.gold_batches, "sizes": sizes})
        (self.dir / ".seen.sqlite").unlink(missing_ok=True)
        for extra in ("-wal", "-shm"):
            (self.dir / f".seen.sqlite{extra}").unlink(missing_ok=True)
        if totals.get("duplicates"):
            ctx.log(f"pairs: {totals['duplicates']} duplicate pair(s) of the pool left out (same content id as an earlier pair)")
        info = {**{k: totals.get(k, 0) for k in ("read", "kept", "duplicates", "in_gold")},
                "gold_pairs": sum(sizes[: self.gold_batches]), "pool_pairs": sum(sizes[self.gold_batches :]), "batches": n_batches}
        return info
