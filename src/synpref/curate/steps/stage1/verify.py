"""``stage1/iter-NN/verify``: send a budgeted sample of the round's LLM-labelled pairs to the humans.

The ``verify_budget`` first labelled pairs in the protocol's priority order (objective before
subjective, low before high controversiality; a seeded hash breaks ties) are exported once as a
verification batch; the step then waits (:class:`WaitingForHumans`) until every pair of the batch
has a decision, and writes them to ``verified.json``. :func:`human_round` is also the seed round's.
"""

from __future__ import annotations

import time

from ...parts import JUDGEMENTS, PartDir
from ...util import atomic_write_json, stable_rand, write_jsonl
from ...verification import export_verification, import_verification, next_batch_name, read_pending
from ..base import Done, Step, WaitingForHumans
from .common import IterationStep, iteration_dir, iteration_tag


def human_round(ctx, key: str, items: list[dict]) -> dict[str, str]:
    """Export ``items`` as a verification batch (once), then return its decisions; raises
    :class:`WaitingForHumans` while one is missing or a decision line cannot be read."""
    from ...verification import decisions_dir

    info = ctx.state.get(key + "/exported")
    if info is None:
        name = ctx.state.get(key + "/exporting")  # the batch name is fixed before writing: a rerun rewrites it
        if name is None:
            name = next_batch_name(ctx.dir)
            ctx.state.mark(key + "/exporting", name)
        path = export_verification(ctx.dir, items, batch=name)
        info = {"batch": path.stem, "n": len(items)}
        if ctx.cfg.stage1.human == "original_labels":  # the pool's own labels play the humans
            rows = [{"pair_id": it["pair_id"], "decision": "A", "annotator": "original-labels",
                     "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "note": None} for it in items]
            write_jsonl(decisions_dir(ctx.dir) / f"{path.stem}-original-labels.jsonl", rows)
        ctx.state.mark(key + "/exported", info)
    pending = [r["pair_id"] for r in read_pending(ctx.dir, info["batch"])]
    ver = import_verification(ctx.dir)
    if ver["invalid"]:  # a label may sit on an unreadable line: never decide without it
        raise WaitingForHumans(f"{ver['invalid_rows']} decision line(s) could not be imported, fix or remove them, then rerun: "
                               + "; ".join(b["message"] for b in ver["invalid"]))
    decisions = ver["decisions"]
    missing = [p for p in pending if p not in decisions]
    if missing:
        raise WaitingForHumans(f"{len(missing)} of {len(pending)} pairs of {info['batch']} have no decision yet: put decision files in "
                               f"{decisions_dir(ctx.dir)} (or run `synpref curate import-verification`), then rerun")
    return {p: decisions[p]["decision"] for p in pending}


def round_labels(ctx, it: int) -> tuple[list[str], list[int], dict[str, dict]]:
    """The round's retrieved ids and rows, and the judges' labels of them (``label`` step's parts)."""
    import json

    from ...judging import judgement_of

    d = iteration_dir(ctx, it)
    ids = json.loads((d / "retrieved.json").read_text())
    rows = json.loads((d / "retrieved_rows.json").read_text())
    parts = PartDir(d / "labels", JUDGEMENTS)
    b = ctx.cfg.engine.batch_size
    js = {r["pair_id"]: judgement_of(r) for n in range(-(-len(ids) // b)) for r in parts.read(n)}
    return ids, rows, js


class Stage1Verify(IterationStep, Step):
    kind = "verify"
    inputs = ("stage1/iter-NN/retrieved.json", "stage1/iter-NN/labels/", "verification/decisions/")
    outputs = ("verification/pending/batch-NNN.jsonl", "stage1/iter-NN/verified.json")

    def run(self, ctx) -> Done:
        from ...attributes import priority_key

        ids, rows, js = round_labels(ctx, self.it)
        row_of = dict(zip(ids, rows))
        attrs = ctx.attributes.take(rows)
        labelled = [p for p in ids if js.get(p, {}).get("label")]
        ranked = sorted(labelled, key=lambda p: (priority_key(attrs[row_of[p]]), stable_rand("verify", ctx.cfg.seed, p)))
        to_verify = ranked[: ctx.cfg.stage1.verify_budget]
        records = ctx.pairs.take(row_of[p] for p in to_verify)
        items = [{"record": records[row_of[p]], "pair_id": p, "attributes": attrs[row_of[p]],
                  "llm_precheck": {"label": js[p]["label"], "confidence": js[p]["confidence"]}} for p in to_verify]
        dec = human_round(ctx, iteration_tag(self.it), items) if items else {}
        atomic_write_json(iteration_dir(ctx, self.it) / "verified.json", dec)
        return Done({"verified": len(dec)})
