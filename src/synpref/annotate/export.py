"""Export decisions to the curation run: ``RUN_DIR/verification/decisions/*.jsonl``.

Only pairs that reached k annotators are exported, one line per annotator's
current decision, written by the contract's :func:`synpref.verification.decision_row`
(pair_id, decision in source sides, annotator, time, note). Exports are incremental:
a decision event goes out once, unless ``everything=True``; a changed mind after an
export goes out in a later file with a later time. Files appear atomically (written aside, then renamed).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import Engine

from ..verification import decision_row, decisions_dir
from .db import exported_decisions, exports, users, utcnow
from .decisions import current_decisions


def export_decisions(engine: Engine, run_dir: str | Path, *, k: int, everything: bool = False) -> Path | None:
    """Write new decisions of complete pairs; returns the file, or None when nothing is new."""
    out_dir = decisions_dir(run_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with engine.begin() as conn:
        names = dict(conn.execute(select(users.c.id, users.c.username)).all())
        current = current_decisions(conn)
        by_pair = defaultdict(list)
        for d in current:
            by_pair[d.pair_pk].append(d)
        already = {r[0] for r in conn.execute(select(exported_decisions.c.decision_id))}
        chosen = sorted((d for ds in by_pair.values() if len(ds) >= k for d in ds if everything or d.id not in already), key=lambda d: d.id)
        if not chosen:
            return None
        now = utcnow()
        name = f"annotate-{now:%Y%m%dT%H%M%S%f}Z.jsonl"
        tmp = out_dir / f".{name}.tmp"  # not *.jsonl: readers never see a half-written file
        with tmp.open("w", encoding="utf-8") as f:
            for d in chosen:
                f.write(json.dumps(decision_row(d.pair_id, d.decision, names[d.user_id], d.created_at, d.note), ensure_ascii=False) + "\n")
        export_id = conn.execute(exports.insert().values(file_name=name, created_at=now, n_decisions=len(chosen))).inserted_primary_key[0]
        fresh = [{"export_id": export_id, "decision_id": d.id} for d in chosen if d.id not in already]
        if fresh:
            conn.execute(exported_decisions.insert(), fresh)
        os.replace(tmp, out_dir / name)
    return out_dir / name
