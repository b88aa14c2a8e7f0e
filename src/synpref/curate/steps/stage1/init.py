"""``stage1/init``: gold = the gold pool of the config (labelled as given); silver = ``silver_init``
pool pairs with their given labels, a seeded sample (the pairs with the smallest seeded hash, so
the sample needs no list of the pool)."""

from __future__ import annotations

import heapq

from ...util import stable_rand
from ..base import Done, Step


class Stage1Init(Step):
    name = "stage1/init"
    inputs = ("pairs/",)
    outputs = ("labels/gold.json", "labels/silver.json")

    def enabled(self, ctx) -> bool:
        return ctx.cfg.stage1.iterations > 0

    def run(self, ctx) -> Done:
        seed = ctx.cfg.seed
        gold = {pid: {"label": "A", "source": "human", "iteration": -1} for n in ctx.pairs.gold_range for pid in ctx.pairs.ids(n)}
        sample = heapq.nsmallest(ctx.cfg.stage1.silver_init, ctx.pairs.pool_ids(), key=lambda pid: stable_rand(seed, "silver-init", pid))
        silver = {pid: {"label": "A", "source": "dataset", "iteration": -1} for pid in sample}
        ctx.save_labels("gold", gold)
        ctx.save_labels("silver", silver)
        return Done({"gold": len(gold), "silver": len(silver)})
