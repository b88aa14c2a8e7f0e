"""``stage2/judge``: the judges relabel the pairs the configured rule sends them (Skywork's: those the
current RM is not confident about, ``p_current <= 0.5 + stage2.band``; :meth:`Stage2Rule.needs_judge`);
part n of ``stage2/judgements/`` = those pairs of batch n.
Every answer is cached as it arrives, so a batch redone after a kill pays only for calls in flight."""

from __future__ import annotations

from ...judging import ExampleFinder, judge_pairs, judgement_row, panel_calls_per_pair
from ...parts import JUDGEMENTS, SCORES, PartDir
from ..base import Done
from .common import PoolBatchStep, configured_rule, objectivity_of


class Stage2Judge(PoolBatchStep):
    name = "stage2/judge"
    inputs = ("stage2/scores/", "pairs/", "attributes/", "embed/vectors.npy", "labels/gold.json")
    outputs = ("stage2/judgements/part-NNNNN.parquet",)

    def begin(self, ctx, fresh: bool) -> None:
        self.parts = PartDir(ctx.dir / "stage2" / "judgements", JUDGEMENTS)
        if fresh:
            self.parts.clear()
        self.finder = ExampleFinder(ctx, ctx.gold())
        self.panel = None

    @staticmethod
    def _asked(ctx, n: int) -> set[str]:
        rule, scores = configured_rule(ctx), PartDir(ctx.dir / "stage2" / "scores", SCORES)
        objectivity = objectivity_of(ctx, rule, n)
        return {s["pair_id"] for s in scores.read(n) if rule.needs_judge(s["p_current"], objectivity.get(s["pair_id"]))}

    def llm_calls_per_pair(self, ctx) -> int:
        return panel_calls_per_pair(ctx.cfg)

    def llm_pairs(self, ctx, n: int) -> int:
        return len(self._asked(ctx, n))

    def llm_plan(self, ctx) -> tuple[int, bool]:
        if ctx.state.done("stage2/score"):
            return sum(self.llm_pairs(ctx, n) for n in self.unfinished(ctx)), True
        # before the RMs score the pool: every pool pair (the planner, `synpref curate plan`, predicts the share);
        # attribute_gated judges the objective ones only
        if not ctx.state.done("pairs"):
            from ....store.pool import count_pool

            return count_pool(ctx.cfg.pool), False
        rule = configured_rule(ctx)
        if "objectivity" in rule.uses and ctx.state.done("attributes"):
            return sum(sum(1 for o in objectivity_of(ctx, rule, n).values() if rule.needs_judge(1.0, o)) for n in ctx.pairs.pool_range), False
        return ctx.pairs.pool_rows, False

    def run_batch(self, ctx, n: int) -> Done:
        ask = self._asked(ctx, n)
        rows = []
        if ask:
            if self.panel is None:
                self.panel = ctx.engine.panel(ctx, self.name)
            ids, records, attrs, start = ctx.pairs.ids(n), ctx.pairs.records(n), ctx.attributes.batch(n), ctx.pairs.offset(n)
            mine = [i for i, p in enumerate(ids) if p in ask]
            js = judge_pairs(self.panel, self.finder, [ids[i] for i in mine], [records[i] for i in mine], [attrs[i] for i in mine],
                             [start + i for i in mine])
            rows = [judgement_row(ids[i], j) for i, j in zip(mine, js)]
        self.parts.write(n, rows)
        return Done({"judged": len(rows), "undecided": sum(1 for r in rows if r["label"] is None)})
