"""``attributes``: each pair's preference attributes (:mod:`synpref.curate.attributes`), batch by batch.

Part n of ``attributes/`` holds, for each pair of pairs batch n in order, the attributes as JSON
(or null, with the error, when the LLM gave no valid answer). The first endpoint answers.
"""

from __future__ import annotations

import json

from ..parts import ATTRIBUTES, PartDir
from .base import BatchStep, Done


class AttributesStep(BatchStep):
    name = "attributes"
    inputs = ("pairs/",)
    outputs = ("attributes/part-NNNNN.parquet",)

    def enabled(self, ctx) -> bool:
        return ctx.cfg.attributes.enabled

    def batches(self, ctx):
        return range(ctx.pairs.n_batches)

    def begin(self, ctx, fresh: bool) -> None:
        self.parts = PartDir(ctx.dir / "attributes", ATTRIBUTES)
        if fresh:
            self.parts.clear()

    def llm_calls_per_pair(self, ctx) -> int:
        return 1  # the first endpoint, once per pair

    def llm_pairs(self, ctx, n: int) -> int:
        return ctx.pairs.sizes[n]

    def llm_plan(self, ctx) -> tuple[int, bool]:
        if ctx.state.done("pairs"):
            return sum(self.llm_pairs(ctx, n) for n in self.unfinished(ctx)), True
        from ...store.pool import count_pool

        pools = [p for p in (ctx.cfg.gold, ctx.cfg.pool) if p]  # before prep and the pairs step drop any
        return sum(count_pool(p) for p in pools), False

    def run_batch(self, ctx, n: int) -> Done:
        records = ctx.pairs.records(n)
        ids = [r.id for r in records]
        out = ctx.engine.annotate(ctx, records, max_chars=ctx.cfg.attributes.max_chars) if records else []
        self.parts.write(n, [{"pair_id": pid, "attributes": json.dumps(o["attributes"], ensure_ascii=False) if o.get("attributes") else None,
                              "error": o.get("error")} for pid, o in zip(ids, out)])
        ok = sum(1 for o in out if o.get("attributes"))
        return Done({"annotated": ok, "failed": len(out) - ok})
