"""Import pending batches (and gold check items) from a curation run, idempotently.

Pending pairs come from ``RUN_DIR/verification/pending/batch-NNN.jsonl``; gold check
items with known answers from ``RUN_DIR/verification/checks/*.jsonl`` (same objects
plus ``"answer": "A"|"B"``). Both are validated by the contract shared with the
curation run, :func:`synpref.verification.validate_pending_row`.
A pair already in the store (same ``pair_id``) is skipped, so importing twice
changes nothing; a line that breaks the contract is reported and skipped.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import Engine

from ..verification import ContractError, checks_dir, pending_dir, validate_pending_row
from . import protocol
from .db import batch_imports, pairs, utcnow

log = logging.getLogger(__name__)


@dataclass
class ImportReport:
    files: int = 0
    added: int = 0
    skipped: int = 0  # already in the store
    conflicts: int = 0  # same pair_id, different content: the stored one is kept
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return dict(files=self.files, added=self.added, skipped=self.skipped, conflicts=self.conflicts, errors=self.errors)


def content_id(obj: dict) -> str:
    """Hash of what an annotator judges: context and both responses."""
    body = json.dumps([obj["context"], obj["response_a"], obj["response_b"]], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _row(obj: dict, *, check: bool) -> dict:
    attrs = obj.get("attributes")
    return dict(
        pair_id=obj["pair_id"],
        batch=obj["batch"],
        priority=obj["priority"],
        tier=protocol.tier(attrs),
        task_category=(attrs or {}).get("task_category") or None,
        context=json.dumps(obj["context"], ensure_ascii=False),
        response_a=obj["response_a"],
        response_b=obj["response_b"],
        attributes=None if attrs is None else json.dumps(attrs, ensure_ascii=False),
        precheck=None if obj.get("llm_precheck") is None else json.dumps(obj["llm_precheck"]),
        content_id=content_id(obj),
        is_check=check,
        check_answer=obj.get("answer") if check else None,
        imported_at=utcnow(),
    )


def import_file(engine: Engine, path: Path, *, check: bool, report: ImportReport) -> None:
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    rows = []
    for n, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(_row(validate_pending_row(json.loads(line), check=check), check=check))
        except (json.JSONDecodeError, ContractError) as e:
            report.errors.append(f"{path.name}:{n}: {e}")
    report.files += 1
    with engine.begin() as conn:
        if conn.execute(select(batch_imports.c.id).where(batch_imports.c.file_name == path.name, batch_imports.c.sha256 == digest)).first():
            report.skipped += len(rows)
            return
        known = dict(conn.execute(select(pairs.c.pair_id, pairs.c.content_id).where(pairs.c.pair_id.in_([r["pair_id"] for r in rows]))).all()) if rows else {}
        fresh, added, skipped = [], 0, 0
        for r in rows:
            if r["pair_id"] in known:
                skipped += 1
                if known[r["pair_id"]] != r["content_id"]:
                    report.conflicts += 1
                    log.warning("pair %s in %s differs from the stored one; keeping the stored one", r["pair_id"], path.name)
                continue
            known[r["pair_id"]] = r["content_id"]
            fresh.append(r)
        if fresh:
            conn.execute(pairs.insert(), fresh)
        added = len(fresh)
        conn.execute(batch_imports.insert().values(file_name=path.name, sha256=digest, pairs_added=added, pairs_skipped=skipped, imported_at=utcnow()))
    report.added += added
    report.skipped += skipped


def import_run(engine: Engine, run_dir: str | Path) -> ImportReport:
    """Import every pending batch and check file under ``run_dir``."""
    run_dir = Path(run_dir)
    report = ImportReport()
    for folder, check in ((pending_dir(run_dir), False), (checks_dir(run_dir), True)):
        for path in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
            import_file(engine, path, check=check, report=report)
    return report
