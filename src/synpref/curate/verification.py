"""The curation run's side of human verification: write pending batches, read decisions back.

The contract itself (folders, pending-row schema, decision vocabulary, the
resolution rule) is :mod:`synpref.verification`, shared with the annotation app
and described in docs/curation.md.

Export: ``RUN_DIR/verification/pending/batch-NNN.jsonl`` (+ ``.csv``), one pending row per
pair; ``response_a`` is the record's candidate 0, ``response_b`` candidate 1, as stored.

Import: every ``RUN_DIR/verification/decisions/*.jsonl`` (files in name order), resolved per
pair by :func:`synpref.verification.resolve`. A line that is not a valid decision is counted
and reported with its file and line number, never dropped silently.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from collections import Counter
from pathlib import Path

from ..schema import Record
from ..verification import ContractError, decisions_dir, parse_decision_row, pending_dir, resolve, validate_pending_row
from .attributes import priority_key
from .util import BadLine, atomic_write_text, read_jsonl_numbered

log = logging.getLogger(__name__)

def next_batch_name(run_dir) -> str:
    pend = pending_dir(run_dir)
    nums = [int(m.group(1)) for p in pend.glob("batch-*.jsonl") if (m := re.match(r"batch-(\d+)\.jsonl$", p.name))]
    return f"batch-{(max(nums) + 1) if nums else 0:03d}"


def export_verification(run_dir, items: list[dict], *, batch: str | None = None) -> Path:
    """Write one batch. ``items``: ``[{"record", "attributes"?, "llm_precheck"?}]``; they are put in the
    protocol's priority order (objective, then low controversiality first; stable otherwise)."""
    batch = batch or next_batch_name(run_dir)
    pend = pending_dir(run_dir)
    decisions_dir(run_dir).mkdir(parents=True, exist_ok=True)
    ordered = sorted(items, key=lambda it: priority_key(it.get("attributes")))
    rows = []
    for prio, it in enumerate(ordered):
        rec: Record = it["record"]
        rows.append({
            "pair_id": it.get("pair_id") or rec.id,
            "batch": batch,
            "priority": prio,
            "context": [m.to_dict() for m in rec.context],
            "response_a": rec.candidates[0][-1].content,
            "response_b": rec.candidates[1][-1].content,
            "attributes": it.get("attributes"),
            "llm_precheck": it.get("llm_precheck"),
        })
        try:
            validate_pending_row(rows[-1])
        except ContractError as e:
            raise ContractError(f"pair {rows[-1]['pair_id']!r} cannot go to verification: {e}") from None
    atomic_write_text(pend / f"{batch}.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["pair_id", "batch", "priority", "context", "response_a", "response_b", "task_category", "objectivity",
                "controversiality", "guideline", "llm_precheck_label", "llm_precheck_confidence"])
    for r in rows:
        a, pc = r["attributes"] or {}, r["llm_precheck"] or {}
        w.writerow([r["pair_id"], batch, r["priority"], json.dumps(r["context"], ensure_ascii=False), r["response_a"], r["response_b"],
                    a.get("task_category", ""), a.get("objectivity", ""), a.get("controversiality", ""), a.get("guideline", ""),
                    pc.get("label", ""), pc.get("confidence", "")])
    atomic_write_text(pend / f"{batch}.csv", buf.getvalue())
    return pend / f"{batch}.jsonl"


def read_pending(run_dir, batch: str) -> list[dict]:
    """The rows of a pending batch; a row that breaks the contract raises ContractError (file and line)."""
    path = pending_dir(run_dir) / f"{batch}.jsonl"
    bad: list[BadLine] = []
    rows = []
    for n, row in read_jsonl_numbered(path, bad):
        try:
            rows.append(validate_pending_row(row))
        except ContractError as e:
            raise ContractError(f"{path}:{n}: {e}") from None
    if bad:
        raise ContractError(f"{len(bad)} unreadable line(s) in a pending batch, which this run wrote itself: {'; '.join(map(str, bad))}")
    return rows


def import_verification(run_dir, *, warn: bool = True) -> dict:
    """Read every decisions file and resolve each pair; every unreadable or invalid line is reported.

    Returns ``{"files", "decisions": {pair_id: {"decision", "votes", "annotators"}}, "counts",
    "invalid_rows": int, "invalid": [{"file", "line", "error", "torn", "message"}]}``; with ``warn`` each invalid
    line is also logged as a warning.
    """
    folder = decisions_dir(run_dir)
    files = sorted(folder.glob("*.jsonl")) if folder.is_dir() else []
    bad: list[BadLine] = []
    rows = []
    for f in files:
        for n, obj in read_jsonl_numbered(f, bad):
            try:
                rows.append(parse_decision_row(obj))
            except ContractError as e:
                bad.append(BadLine(str(f), n, str(e)))
    bad.sort(key=lambda b: (b.file, b.line))
    for b in bad if warn else ():
        log.warning("decision line not imported: %s (fix or remove the line)", b)
    decisions = {pid: r.to_dict() for pid, r in resolve(rows).items()}
    counts = Counter(d["decision"] for d in decisions.values())
    return {"files": [str(f) for f in files], "decisions": decisions, "counts": dict(counts),
            "invalid_rows": len(bad), "invalid": [b.to_dict() for b in bad]}

