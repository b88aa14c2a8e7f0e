"""``stage1/iter-NN/merge``: human-verified pairs join gold (undecidable and disputed ones are
rejected for good), the other LLM-labelled ones join silver; every retrieved pair gets a ledger
entry. Idempotent: a merge redone after a kill gives the same labels."""

from __future__ import annotations

import json

from ....verification import UNDECIDABLE
from ..base import Done, Step
from .common import IterationStep, iteration_dir
from .verify import round_labels


class Stage1Merge(IterationStep, Step):
    kind = "merge"
    inputs = ("stage1/iter-NN/labels/", "stage1/iter-NN/verified.json", "labels/")
    outputs = ("labels/gold.json", "labels/silver.json")

    def __init__(self, it: int):
        super().__init__(it)
        self.ledger = f"stage1__iter-{it:02d}"

    def run(self, ctx) -> Done:
        ids, _rows, js = round_labels(ctx, self.it)
        dec = json.loads((iteration_dir(ctx, self.it) / "verified.json").read_text())
        gold, silver, rejected = ctx.labels("gold"), ctx.labels("silver"), ctx.rejected()
        entries = []
        for p in ids:
            j = js.get(p, {})
            if p in dec:
                silver.pop(p, None)
                if dec[p] in ("A", "B"):
                    gold[p] = {"label": dec[p], "source": "human", "iteration": self.it}
                    entries.append({"pair_id": p, "decision": "gold", "label": dec[p], "reason": "human-verified",
                                    "judge": j.get("label"), "confidence": j.get("confidence")})
                else:
                    rejected.add(p)
                    entries.append({"pair_id": p, "decision": "discarded", "reason": "human: cannot determine" if dec[p] == UNDECIDABLE
                                    else "humans disagree: no strict majority"})
            elif j.get("label"):
                silver[p] = {"label": j["label"], "source": "llm", "iteration": self.it, "confidence": j["confidence"]}
                entries.append({"pair_id": p, "decision": "silver", "label": j["label"], "reason": "LLM judges' vote",
                                "confidence": j["confidence"], "votes": j.get("votes")})
            else:
                entries.append({"pair_id": p, "decision": "unlabelled", "reason": "judges undecided"})
        ctx.save_labels("gold", gold)
        ctx.save_labels("silver", silver)
        ctx.state.set("rejected", sorted(rejected))
        return Done({"gold": len(gold), "silver": len(silver), "verified": len(dec)}, entries)
