"""``stage2/decide``: the Stage 2 rule (:func:`synpref.curate.stages.stage2_decide`) for each scored
pair, joining part n of the scores with part n of the judgements; part n of ``stage2/decisions/``.
The step's info (``state.json``, ``summary.json``'s ``stage2``) counts keep / flip / discard."""

from __future__ import annotations

import json

from ...judging import judgement_of
from ...parts import DECISIONS, JUDGEMENTS, SCORES, PartDir
from ...stages import stage2_decide
from ..base import Done
from .common import PoolBatchStep


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

    def run_batch(self, ctx, n: int) -> Done:
        band = ctx.cfg.stage2.band
        js = {r["pair_id"]: judgement_of(r) for r in self.judgements.read(n)}
        rows, counts = [], {}
        for s in self.scores.read(n):
            p, j = s["pair_id"], js.get(s["pair_id"])
            decision, reason, final = stage2_decide(s["label"], s["p_current"], s["p_gold"], j["label"] if j else None, band=band)
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
                         "label_source": source})
        self.parts.write(n, rows)
        return Done(counts)
