"""``stage2/decide``: the configured Stage 2 rule (``stage2.rule``, :data:`synpref.curate.stages.STAGE2_RULES`;
Skywork's :func:`~synpref.curate.stages.stage2_decide` by default) for each scored pair, joining part n
of the scores with part n of the judgements (and the pairs' attributes, for a rule that uses them);
part n of ``stage2/decisions/``, each row naming the rule that decided it.
The step's info (``state.json``, ``summary.json``'s ``stage2``) counts keep / flip / discard."""

from __future__ import annotations

import json

from ...judging import judgement_of
from ...parts import DECISIONS, JUDGEMENTS, SCORES, PartDir
from ..base import Done
from .common import PoolBatchStep, configured_rule, objectivity_of


class Stage2Decide(PoolBatchStep):
    name = "stage2/decide"
    inputs = ("stage2/scores/", "stage2/judgements/", "labels/silver.json")
    outputs = ("stage2/decisions/part-NNNNN.parquet",)

    def begin(self, ctx, fresh: bool) -> None:
        d = ctx.dir / "stage2"
        self.scores, self.judgements = PartDir(d / "scores", SCORES), PartDir(d / "judgements", JUDGEMENTS)
        self.parts = PartDir(d / "decisions", DECISIONS)
        if fresh:
            self.parts.clear()
        self.silver = ctx.labels("silver")
        self.rule = configured_rule(ctx)

    def run_batch(self, ctx, n: int) -> Done:
        js = {r["pair_id"]: judgement_of(r) for r in self.judgements.read(n)}
        objectivity = objectivity_of(ctx, self.rule, n)
        rows, counts = [], {}
        for s in self.scores.read(n):
            p, j = s["pair_id"], js.get(s["pair_id"])
            decision, reason, final = self.rule.decide(s["label"], s["p_current"], s["p_gold"], j["label"] if j else None,
                                                       objectivity.get(p))
            counts[decision] = counts.get(decision, 0) + 1
            by_judge = bool(j and j["label"] == final)
            if decision == "flip":
                source = "llm-judge" if by_judge else "recycled-flip"
            elif by_judge and final != "A":
                source = "llm-judge"
            else:
                source = "llm" if self.silver.get(p, {}).get("source") == "llm" else "dataset"
            judge = {"label": j["label"], "confidence": j["confidence"], "votes": j["votes"]} if j else None
            rows.append({"pair_id": p, "decision": decision, "reason": reason, "label": s["label"], "final_label": final,
                         "p_current": s["p_current"], "p_gold": s["p_gold"], "judge": json.dumps(judge, ensure_ascii=False) if j else None,
                         "label_source": source, "rule": self.rule.name, "objectivity": objectivity.get(p)})
        self.parts.write(n, rows)
        return Done(counts)
