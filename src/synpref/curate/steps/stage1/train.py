"""``stage1/iter-NN/train``: an RM trained on silver, its accuracy on gold; the best RM so far
(by gold accuracy) becomes the current RM (``best_rm`` in state.json). Each gold pair's
p(human label) goes to ``gold_scores.jsonl`` (the retrieve step's k rule reads it)."""

from __future__ import annotations

from ...rm import RMScorer, train_rm
from ...util import write_jsonl
from ..base import Done, Step
from .common import IterationStep, iteration_dir, iteration_tag


class Stage1Train(IterationStep, Step):
    kind = "train"
    inputs = ("labels/gold.json", "labels/silver.json", "pairs/")
    outputs = ("stage1/iter-NN/rm/", "stage1/iter-NN/gold_scores.jsonl")

    def run(self, ctx) -> Done:
        d = iteration_dir(ctx, self.it)
        gold, silver = ctx.labels("gold"), ctx.labels("silver")
        rows = ctx.pairs.rows_of(set(gold) | set(silver))
        records = ctx.pairs.take(rows.values())
        labelled = [(records[rows[p]], silver[p]["label"]) for p in sorted(silver) if p in rows]
        model = train_rm(d / "rm", labelled, ctx.rm_settings(), f"{iteration_tag(self.it)} RM")
        scorer = RMScorer(model, ctx.device)
        gitems = [(p, v["label"]) for p, v in gold.items() if p in rows]
        b = ctx.cfg.engine.batch_size
        ps = []
        for i in range(0, len(gitems), b):
            chunk = gitems[i : i + b]
            ps += scorer.probs([records[rows[p]] for p, _ in chunk], [lab for _, lab in chunk])
        acc = sum(p > 0.5 for p in ps) / max(1, len(ps))
        best = ctx.state.data.get("best_rm")
        if best is None or acc >= best["gold_accuracy"]:
            ctx.state.set("best_rm", {"path": str(model), "gold_accuracy": acc, "iteration": self.it})
        write_jsonl(d / "gold_scores.jsonl", ({"pair_id": p, "p": q} for (p, _), q in zip(gitems, ps)))
        ctx.log(f"{iteration_tag(self.it)}: RM gold accuracy {acc:.3f}")
        return Done({"gold_accuracy": acc, "silver": len(silver), "gold": len(gold)})
