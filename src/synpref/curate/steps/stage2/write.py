"""``stage2/write``: the output pools and the Stage 2 ledger, batch by batch.

For pairs batch n it joins the records (``pairs/``), their attributes and their decisions (part n
of each) and writes ``curated/part-n``, ``recycled/part-n`` and ``gold/part-n`` (a part only when
it has records) and the batch's ledger entries. Gold pairs (the gold pool, and pool pairs the
humans verified) go to ``gold/`` and ``curated/``; kept pairs to ``curated/``; flipped pairs,
reoriented, to ``recycled/`` (and ``curated/`` with ``stage2.recycle_flips``); discarded pairs
only to the ledger. Records keep their provenance, with ``label_source`` = who made the final
label, and ``meta["curate"]`` = the decision, its reason and its evidence.
"""

from __future__ import annotations

import json
import shutil

from ....schema import Record
from ....store.pool import write_pool_part
from ...parts import DECISIONS, PartDir, part_name
from ...util import oriented
from ..base import BatchStep, Done

OUTPUTS = ("curated", "recycled", "gold")


def output_record(rec: Record, pair_id: str, label: str, source: str, info: dict, attributes: dict | None) -> Record:
    """The pair oriented by its final label, with the run's provenance and decision in its meta."""
    rec = oriented(rec, label)
    meta = {**rec.meta, "curate": {"source_id": pair_id, **info}}
    if attributes:
        meta["attributes"] = attributes
    return Record(rec.context, rec.candidates, "pair", margin=rec.margin, weight=rec.weight,
                  provenance=rec.provenance.__class__(rec.provenance.source, rec.provenance.row, rec.provenance.format, source), meta=meta)


class Stage2Write(BatchStep):
    name = "stage2/write"
    inputs = ("pairs/", "attributes/", "stage2/decisions/", "labels/gold.json")
    outputs = ("curated/", "recycled/", "gold/")
    ledger = "stage2"

    def enabled(self, ctx) -> bool:
        return ctx.cfg.stage2.enabled

    def batches(self, ctx):
        return range(ctx.pairs.n_batches)

    def begin(self, ctx, fresh: bool) -> None:
        if fresh:
            for out in OUTPUTS:
                shutil.rmtree(ctx.dir / out, ignore_errors=True)
        for out in OUTPUTS:
            (ctx.dir / out).mkdir(parents=True, exist_ok=True)
        self.decisions = PartDir(ctx.dir / "stage2" / "decisions", DECISIONS)
        self.gold = ctx.gold()
        self.recycle = ctx.cfg.stage2.recycle_flips

    def run_batch(self, ctx, n: int) -> Done:
        in_gold_pool = n in ctx.pairs.gold_range
        decided = {} if in_gold_pool else {r["pair_id"]: r for r in self.decisions.read(n)}
        outputs = {out: [] for out in OUTPUTS}
        entries = []
        for rec, attrs in zip(ctx.pairs.records(n), ctx.attributes.batch(n)):
            pid = rec.id
            if pid in self.gold:
                label = self.gold[pid]["label"]
                info = {"decision": "gold", "reason": "human-verified" + (" (gold pool of the config)" if in_gold_pool else ""),
                        "label": label, "final_label": label}
                out = output_record(rec, pid, label, "human", info, attrs)
                outputs["gold"].append(out)
                outputs["curated"].append(out)
            elif pid in decided:
                d = decided[pid]
                final = d["final_label"]
                info = {"decision": d["decision"], "reason": d["reason"], "label": d["label"], "final_label": final,
                        "p_current": round(d["p_current"], 4), "p_gold": round(d["p_gold"], 4),
                        "judge": json.loads(d["judge"]) if d["judge"] else None, "rule": d["rule"], "objectivity": d["objectivity"]}
                out = output_record(rec, pid, final, d["label_source"], info, attrs)
                if d["decision"] == "keep":
                    outputs["curated"].append(out)
                elif d["decision"] == "flip":
                    outputs["recycled"].append(out)
                    if self.recycle:
                        outputs["curated"].append(out)
            else:
                continue  # rejected by the humans in Stage 1: its ledger entry is there
            entries.append({"pair_id": pid, **info, "output_id": out.id})
        for name, records in outputs.items():
            path = ctx.dir / name / part_name(n)
            path.unlink(missing_ok=True)  # a part left by this batch's killed attempt
            if records:
                write_pool_part(path, records)
        return Done({name: len(records) for name, records in outputs.items()}, entries)
