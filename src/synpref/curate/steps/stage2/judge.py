"""``stage2/judge``: the judges relabel the pairs the current RM is not confident about
(``p_current <= 0.5 + stage2.band``); part n of ``stage2/judgements/`` = those pairs of batch n.
Every answer is cached as it arrives, so a batch redone after a kill pays only for calls in flight."""

from __future__ import annotations

from ...judging import ExampleFinder, judge_pairs, judgement_row
from ...parts import JUDGEMENTS, SCORES, PartDir
from ...stages import needs_judge
from ..base import Done
from .common import PoolBatchStep


class Stage2Judge(PoolBatchStep):
    name = "stage2/judge"
    inputs = ("stage2/scores/", "pairs/", "attributes/", "embed/vectors.npy", "labels/gold.json")
    outputs = ("stage2/judgements/part-NNNNN.parquet",)

    def begin(self, ctx, fresh: bool) -> None:
        self.scores = PartDir(ctx.dir / "stage2" / "scores", SCORES)
        self.parts = PartDir(ctx.dir / "stage2" / "judgements", JUDGEMENTS)
        if fresh:
            self.parts.clear()
        self.finder = ExampleFinder(ctx, ctx.gold())
        self.panel = None

    def run_batch(self, ctx, n: int) -> Done:
        band = ctx.cfg.stage2.band
        ask = {s["pair_id"] for s in self.scores.read(n) if needs_judge(s["p_current"], band)}
        rows = []
        if ask:
            if self.panel is None:
                self.panel = ctx.llm.panel()
            ids, records, attrs, start = ctx.pairs.ids(n), ctx.pairs.records(n), ctx.attributes.batch(n), ctx.pairs.offset(n)
            mine = [i for i, p in enumerate(ids) if p in ask]
            js = judge_pairs(self.panel, self.finder, [ids[i] for i in mine], [records[i] for i in mine], [attrs[i] for i in mine],
                             [start + i for i in mine])
            rows = [judgement_row(ids[i], j) for i, j in zip(mine, js)]
        self.parts.write(n, rows)
        return Done({"judged": len(rows), "undecided": sum(1 for r in rows if r["label"] is None)})
