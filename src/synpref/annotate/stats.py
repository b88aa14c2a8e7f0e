"""Numbers for the admin pages: progress, throughput, agreement, gold-check accuracy."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from ..verification import A, B, DISPUTED, PENDING, UNDECIDABLE, consensus
from .agreement import agreement
from .db import assignments, pairs, users, utcnow
from .decisions import current_decisions


def progress(engine: Engine, k: int) -> dict:
    """Overall progress on real (non-check) pairs; a pair's state is the contract's consensus with ``k``."""
    with engine.connect() as conn:
        n_pairs = conn.execute(select(func.count()).select_from(pairs).where(pairs.c.is_check == False)).scalar()  # noqa: E712
        current = current_decisions(conn)
    by_pair: dict[int, list[str]] = defaultdict(list)
    for d in current:
        by_pair[d.pair_pk].append(d.decision)
    states = Counter(consensus(labels, k) for labels in by_pair.values())
    collected = sum(min(len(v), k) for v in by_pair.values())
    needed = n_pairs * k
    return {
        "pairs": n_pairs,
        "decisions_needed": needed,
        "decisions_collected": collected,
        "fraction": collected / needed if needed else 0.0,
        "complete": sum(n for s, n in states.items() if s != PENDING),
        "verified_a": states[A],
        "verified_b": states[B],
        "undecidable": states[UNDECIDABLE],
        "disputed": states[DISPUTED],
        "untouched": n_pairs - len(by_pair),
    }


def annotators(engine: Engine) -> list[dict]:
    """Per annotator: decisions, throughput, time per decision, gold-check accuracy."""
    now = utcnow()
    with engine.connect() as conn:
        people = conn.execute(select(users.c.id, users.c.username, users.c.role, users.c.active).order_by(users.c.username)).all()
        current = current_decisions(conn, include_checks=True)
        started = dict(conn.execute(select(assignments.c.id, assignments.c.assigned_at)).all())
    rows = []
    for person in people:
        mine = [d for d in current if d.user_id == person.id]
        real = [d for d in mine if not d.is_check]
        checks = [d for d in mine if d.is_check]
        seconds = [(d.created_at - started[d.assignment_id]).total_seconds() for d in real if d.assignment_id in started]
        correct = sum(d.decision == d.check_answer for d in checks)
        if not mine and person.role == "admin":
            continue
        rows.append({
            "username": person.username,
            "active": bool(person.active),
            "decisions": len(real),
            "last_hour": sum(d.created_at >= now - timedelta(hours=1) for d in real),
            "median_seconds": statistics.median(seconds) if seconds else None,
            "undecidable": sum(d.decision == UNDECIDABLE for d in real),
            "checks": len(checks),
            "check_accuracy": correct / len(checks) if checks else None,
        })
    return rows


def agreement_report(engine: Engine) -> dict:
    """Agreement overall and per task category on current decisions of real pairs."""
    with engine.connect() as conn:
        current = current_decisions(conn)
    units: dict[int, dict[int, str]] = defaultdict(dict)
    category: dict[int, str] = {}
    for d in current:
        units[d.pair_pk][d.user_id] = d.decision
        category[d.pair_pk] = d.task_category or "(none)"
    per_category = {}
    for cat in sorted(set(category.values())):
        per_category[cat] = agreement({p: by for p, by in units.items() if category[p] == cat})
    return {"overall": agreement(dict(units)), "per_category": per_category}
