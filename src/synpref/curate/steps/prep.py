"""``prep``: empty responses, duplicates, decontamination (:func:`synpref.curate.prep.prep`).

Prep streams the pool itself (flat memory but for the optional near-duplicate index) and runs as
one unit: a run killed during prep redoes it. Every removed pair goes to the ``prep`` ledger with
its reason (read back from ``prep/removed.jsonl`` as a stream).
"""

from __future__ import annotations

from ..util import read_jsonl
from .base import Done, Step


class PrepStep(Step):
    name = "prep"
    inputs = ("<pool>", "<data_dir>", "<prep.extra_prompts>")
    outputs = ("prep/part-*.parquet", "prep/removed.jsonl", "prep/prep_report.json")
    ledger = "prep"

    def enabled(self, ctx) -> bool:
        return ctx.cfg.prep.enabled

    def run(self, ctx) -> Done:
        from ..prep import prep

        p = ctx.cfg.prep
        rep = prep(ctx.cfg.pool, ctx.dir / "prep", data_dir=ctx.cfg.data_dir, extra_prompts=p.extra_prompts,
                   decontaminate=p.decontaminate, near_dup=p.near_dup, near_dup_threshold=p.near_dup_threshold, overwrite=True)
        ctx.log(f"prep: kept {rep['kept']}, removed {rep['removed']}")
        removed = ({"pair_id": r["id"], "decision": "removed", "reason": r["reason"], "detail": r.get("detail")}
                   for r in read_jsonl(ctx.dir / "prep" / "removed.jsonl"))
        return Done({"kept": rep["kept"], "removed": rep["removed"]}, removed)
