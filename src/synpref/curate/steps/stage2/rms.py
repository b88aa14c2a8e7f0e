"""``stage2/rms``: the gold RM (on every human-verified pair) and the current RM(s).

The current RM is Stage 1's best; without Stage 1, RMs trained on the pool's own labels (silver,
else as given), cross-fitted over ``stage2.current_rm_folds`` folds (:mod:`synpref.curate.rm`).
With ``stage2.current_rm_pairs`` = N they train on a seeded sample of N pool pairs (the N with
the smallest seeded hash: no list of the pool needed); 0 trains on the whole pool, streamed
to the trainer (which holds its training set in memory). Each model is a unit: a model already
trained is not trained again on resume.
"""

from __future__ import annotations

import heapq

from ...rm import CurrentRMs, train_cross_fitted, train_rm
from ...util import stable_rand
from ..base import Done, Step


class Stage2RMs(Step):
    name = "stage2/rms"
    inputs = ("labels/", "pairs/", "<best_rm in state.json>")
    outputs = ("stage2/gold_rm/", "stage2/current_rm_fold*/ (or stage2/current_rm/)")

    def enabled(self, ctx) -> bool:
        return ctx.cfg.stage2.enabled

    def run(self, ctx) -> Done:
        d = ctx.dir / "stage2"
        settings = ctx.rm_settings()
        gold = ctx.gold()
        rows = ctx.pairs.rows_of(gold)
        records = ctx.pairs.take(rows.values())
        gold_rm = train_rm(d / "gold_rm", [(records[rows[p]], v["label"]) for p, v in gold.items() if p in rows], settings,
                           "stage2 gold RM")
        del records
        best = ctx.state.data.get("best_rm")
        if best:
            current = CurrentRMs({0: best["path"]}, 1, ctx.cfg.seed)
        else:
            current = train_cross_fitted(d, self._labelled_pool(ctx), settings, ctx.cfg.stage2.current_rm_folds)
        return Done({"gold_rm": str(gold_rm), "gold": len(gold), "current": current.to_dict()})

    @staticmethod
    def _labelled_pool(ctx):
        """A stream factory of ``(pair_id, record, label)`` over the pool, in pool order (or over its sample)."""
        s2, seed = ctx.cfg.stage2, ctx.cfg.seed
        silver = ctx.labels("silver")

        def label(pid: str) -> str:
            return silver.get(pid, {}).get("label", "A")

        if s2.current_rm_pairs:  # a bounded sample: read once, only its rows
            sample = heapq.nsmallest(s2.current_rm_pairs, ctx.pairs.pool_ids(), key=lambda p: stable_rand(seed, "current-rm-sample", p))
            rows = ctx.pairs.rows_of(sample, ctx.pairs.pool_range)
            records = ctx.pairs.take(rows.values())
            items = [(pid, records[rows[pid]], label(pid)) for pid in sorted(sample, key=rows.__getitem__)]
            return lambda: iter(items)

        def stream():
            for n in ctx.pairs.pool_range:
                for pid, rec in zip(ctx.pairs.ids(n), ctx.pairs.records(n)):
                    yield pid, rec, label(pid)

        return stream
