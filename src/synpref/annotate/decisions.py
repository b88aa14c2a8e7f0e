"""Decision events: record them (append-only) and derive current labels.

What the annotator clicked refers to the *displayed* sides; ``translate`` turns it
into the source sides of the pair ("A" = response_a better) using the side
assignment stored with the assignment. Nothing here updates or deletes a
decision: a changed mind is a new event. An annotator's current decision on a pair
and the pair's outcome follow the verification contract's one rule
(:func:`synpref.verification.latest_per_annotator`, :func:`synpref.verification.consensus`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from ..verification import DECISIONS, UNDECIDABLE, latest_per_annotator
from .db import assignments, decisions, pairs, utcnow


class DecisionError(ValueError):
    pass


class NotYours(LookupError):
    """The assignment does not exist or belongs to someone else (callers answer 404)."""


def translate(choice_shown: str, shown_as_a: str) -> str:
    """Displayed choice -> source side. ``shown_as_a`` is the response displayed as "A"."""
    if choice_shown not in DECISIONS:
        raise DecisionError(f"choice must be one of {DECISIONS}")
    if choice_shown == UNDECIDABLE or shown_as_a == "response_a":
        return choice_shown
    return "B" if choice_shown == "A" else "A"


def display_side(source_label: str, shown_as_a: str) -> str:
    """Source side -> displayed side (the inverse of ``translate`` for A/B)."""
    return translate(source_label, shown_as_a)


@dataclass(frozen=True)
class Recorded:
    decision_id: int
    decision: str
    duplicate: bool  # the same submission_id was stored before


def record(engine: Engine, *, user_id: int, assignment_id: int, choice: str, note: str | None,
           submission_id: str | None = None, max_note_chars: int = 2000) -> Recorded:
    """Append one decision event for the user's own assignment.

    ``submission_id`` makes retries idempotent: a second submission with the same
    id returns the first event instead of storing another.
    """
    if choice not in DECISIONS:
        raise DecisionError(f"choice must be one of {DECISIONS}")
    note = (note or "").strip() or None
    if note is not None and len(note) > max_note_chars:
        raise DecisionError(f"note longer than {max_note_chars} characters")
    submission_id = submission_id or uuid.uuid4().hex
    if not (0 < len(submission_id) <= 64):
        raise DecisionError("submission_id must be 1-64 characters")
    try:
        with engine.begin() as conn:
            row = conn.execute(
                select(assignments.c.pair_pk, assignments.c.shown_as_a, pairs.c.content_id)
                .join(pairs, pairs.c.id == assignments.c.pair_pk)
                .where(assignments.c.id == assignment_id, assignments.c.user_id == user_id)
            ).first()
            if row is None:
                raise NotYours(assignment_id)
            decision = translate(choice, row.shown_as_a)
            res = conn.execute(decisions.insert().values(
                submission_id=submission_id, assignment_id=assignment_id, pair_pk=row.pair_pk, user_id=user_id,
                created_at=utcnow(), content_id=row.content_id, shown_as_a=row.shown_as_a,
                choice_shown=choice, decision=decision, note=note,
            ))
            return Recorded(res.inserted_primary_key[0], decision, False)
    except IntegrityError:
        with engine.connect() as conn:
            prev = conn.execute(select(decisions.c.id, decisions.c.decision, decisions.c.user_id, decisions.c.assignment_id)
                                .where(decisions.c.submission_id == submission_id)).first()
        if prev is None or prev.user_id != user_id or prev.assignment_id != assignment_id:
            raise DecisionError("submission_id already used") from None
        return Recorded(prev.id, prev.decision, True)


def current_decisions(conn: Connection, *, include_checks: bool = False):
    """Each annotator's current decision per pair (the latest by time, as the contract says): rows of
    decisions joined with pair info, in the order they were recorded."""
    q = select(decisions, pairs.c.pair_id, pairs.c.task_category, pairs.c.is_check, pairs.c.check_answer).join(pairs, pairs.c.id == decisions.c.pair_pk)
    if not include_checks:
        q = q.where(pairs.c.is_check == False)  # noqa: E712 (SQL expression)
    events = conn.execute(q.order_by(decisions.c.id)).all()
    return latest_per_annotator(events, key=lambda d: (d.pair_pk, d.user_id), time=lambda d: d.created_at)
