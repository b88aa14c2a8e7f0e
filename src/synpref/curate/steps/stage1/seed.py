"""``stage1/seed``: without a gold pool, the first ``seed_gold`` pool pairs (outside silver) go to the
humans; their decisions make the first gold set."""

from __future__ import annotations

from ..base import Done, Step
from .verify import human_round


class Stage1Seed(Step):
    name = "stage1/seed"
    inputs = ("pairs/", "labels/silver.json", "verification/decisions/")
    outputs = ("labels/gold.json", "verification/pending/batch-NNN.jsonl")
    ledger = "stage1__seed"

    def enabled(self, ctx) -> bool:
        return ctx.cfg.stage1.iterations > 0 and not ctx.labels("gold")

    def run(self, ctx) -> Done:
        silver = ctx.labels("silver")
        seeds = []
        for pid in ctx.pairs.pool_ids():
            if len(seeds) >= ctx.cfg.stage1.seed_gold:
                break
            if pid not in silver:
                seeds.append(pid)
        rows = ctx.pairs.rows_of(seeds, ctx.pairs.pool_range)
        records, attrs = ctx.pairs.take(rows.values()), ctx.attributes.take(rows.values())
        dec = human_round(ctx, "stage1/seed", [{"record": records[rows[p]], "pair_id": p, "attributes": attrs[rows[p]]} for p in seeds])
        gold = {p: {"label": d, "source": "human", "iteration": -1} for p, d in dec.items() if d in ("A", "B")}
        ctx.state.set("rejected", sorted(ctx.rejected() | {p for p, d in dec.items() if d not in ("A", "B")}))
        ctx.save_labels("gold", gold)
        entries = [{"pair_id": p, "decision": "gold" if d in ("A", "B") else "discarded", "reason": f"human decision {d}", "label": d}
                   for p, d in dec.items()]
        return Done({"gold": len(gold), "discarded": len(dec) - len(gold)}, entries)
