"""``stage2/score``: p(label) under the current RM(s) and the gold RM for every pool pair that is
not gold and not rejected; part n of ``stage2/scores/`` = those pairs of pairs batch n, in order.
A pair's label is its silver label (Stage 1's LLM judges), else the pool's ("A")."""

from __future__ import annotations

from ...parts import SCORES, PartDir
from ...rm import CrossFitScorer, CurrentRMs, RMScorer
from ..base import Done
from .common import PoolBatchStep


class Stage2Score(PoolBatchStep):
    name = "stage2/score"
    inputs = ("pairs/", "stage2/gold_rm/", "stage2/current_rm*/", "labels/")
    outputs = ("stage2/scores/part-NNNNN.parquet",)

    def begin(self, ctx, fresh: bool) -> None:
        trained = ctx.state.get("stage2/rms")
        self.parts = PartDir(ctx.dir / "stage2" / "scores", SCORES)
        if fresh:
            self.parts.clear()
        self.skip = set(ctx.gold()) | ctx.rejected()  # gold pairs are decided; rejected ones are out for good
        self.silver = ctx.labels("silver")
        self.current = CrossFitScorer(CurrentRMs.from_dict(trained["current"]), ctx.device)
        self.gold_rm = RMScorer(trained["gold_rm"], ctx.device)
        ctx.log(f"stage2: scoring {ctx.pairs.pool_rows} pool pairs with the current and gold RMs")

    def run_batch(self, ctx, n: int) -> Done:
        ids, records = ctx.pairs.ids(n), ctx.pairs.records(n)
        mine = [i for i, p in enumerate(ids) if p not in self.skip]
        ids, records = [ids[i] for i in mine], [records[i] for i in mine]
        labels = [self.silver.get(p, {}).get("label", "A") for p in ids]
        pc = self.current.probs(ids, records, labels)
        pg = self.gold_rm.probs(records, labels)
        self.parts.write(n, [{"pair_id": p, "label": lab, "p_current": a, "p_gold": b} for p, lab, a, b in zip(ids, labels, pc, pg)])
        return Done({"scored": len(ids)})

    def end(self, ctx) -> None:
        self.current = self.gold_rm = None
