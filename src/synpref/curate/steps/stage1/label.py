"""``stage1/iter-NN/label``: the judges label the round's retrieved pairs, batch by batch
(``labels/part-NNNNN.parquet``; examples: the nearest gold pairs)."""

from __future__ import annotations

import json

from ...judging import ExampleFinder, judge_pairs, judgement_row, panel_calls_per_pair
from ...parts import JUDGEMENTS, PartDir
from ..base import BatchStep, Done
from .common import IterationStep, iteration_dir


class Stage1Label(IterationStep, BatchStep):
    kind = "label"
    inputs = ("stage1/iter-NN/retrieved.json", "labels/gold.json", "pairs/", "attributes/", "embed/vectors.npy")
    outputs = ("stage1/iter-NN/labels/part-NNNNN.parquet",)

    def _retrieved(self, ctx) -> tuple[list[str], list[int]]:
        d = iteration_dir(ctx, self.it)
        return json.loads((d / "retrieved.json").read_text()), json.loads((d / "retrieved_rows.json").read_text())

    def batches(self, ctx):
        return range(-(-len(self._retrieved(ctx)[0]) // ctx.cfg.engine.batch_size))

    def begin(self, ctx, fresh: bool) -> None:
        self.ids, self.rows = self._retrieved(ctx)
        self.parts = PartDir(iteration_dir(ctx, self.it) / "labels", JUDGEMENTS)
        if fresh:
            self.parts.clear()
        self.finder = ExampleFinder(ctx, ctx.labels("gold"))
        self.panel = ctx.engine.panel(ctx, self.name) if self.ids else None  # no pair to judge: no endpoint opened, no server started
        if self.ids:
            ctx.log(f"judging {len(self.ids)} retrieved pairs")

    def llm_calls_per_pair(self, ctx) -> int:
        return panel_calls_per_pair(ctx.cfg)

    @staticmethod
    def _pairs_in(ctx, ids: list[str], batches) -> int:
        b = ctx.cfg.engine.batch_size
        return sum(len(ids[n * b : (n + 1) * b]) for n in batches)

    def llm_pairs(self, ctx, n: int) -> int:
        return self._pairs_in(ctx, self.ids, [n])  # begin() has read the retrieved ids

    def llm_plan(self, ctx) -> tuple[int, bool]:
        if (iteration_dir(ctx, self.it) / "retrieved.json").is_file():
            return self._pairs_in(ctx, self._retrieved(ctx)[0], self.unfinished(ctx)), True
        # at most k_max neighbours per gold pair, the gold set growing by verify_budget a round
        from ....store.pool import count_pool

        s1, cfg = ctx.cfg.stage1, ctx.cfg
        first_gold = len(ctx.gold()) if ctx.state.done("pairs") else count_pool(cfg.gold) if cfg.gold else s1.seed_gold
        bound = s1.k_max * (first_gold + (self.it + 1) * s1.verify_budget)
        return (min(bound, ctx.pairs.pool_rows) if ctx.state.done("pairs") else bound), False

    def run_batch(self, ctx, n: int) -> Done:
        b = ctx.cfg.engine.batch_size
        ids, rows = self.ids[n * b : (n + 1) * b], self.rows[n * b : (n + 1) * b]
        records, attrs = ctx.pairs.take(rows), ctx.attributes.take(rows)
        js = judge_pairs(self.panel, self.finder, ids, [records[r] for r in rows], [attrs[r] for r in rows], rows)
        self.parts.write(n, [judgement_row(p, j) for p, j in zip(ids, js)])
        return Done({"labelled": sum(1 for j in js if j["label"])})
