"""JSON API for scripts and tests; same sessions, CSRF via the X-CSRF-Token header.

An annotator sees only their own assignments and decisions: anything else is 404.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from ..verification import DECISIONS
from . import stats
from .assign import next_assignment
from .auth import RowId, User, admin_user, check_csrf, current_user
from .db import decisions, iso, pairs
from .decisions import DecisionError, NotYours, record
from .pair_view import annotator_progress, pair_view

router = APIRouter(prefix="/api")


class DecisionIn(BaseModel):
    choice: str = Field(pattern=f"^({'|'.join(DECISIONS)})$")
    note: str | None = Field(default=None, max_length=10_000)
    submission_id: str | None = Field(default=None, min_length=1, max_length=64)


@router.get("/me")
def me(request: Request, user: User = Depends(current_user)):
    return {"username": user.username, "role": user.role, "csrf_token": user.csrf_token,
            "progress": annotator_progress(request.app.state.engine, user.id, request.app.state.config.policy.k)}


@router.get("/next")
def next_pair(request: Request, user: User = Depends(current_user)):
    engine = request.app.state.engine
    assignment_id = next_assignment(engine, user.id, request.app.state.config.policy)
    if assignment_id is None:
        return Response(status_code=204)
    return pair_view(engine, assignment_id, user.id)


@router.get("/assignments/{assignment_id}")
def get_assignment(request: Request, assignment_id: RowId, user: User = Depends(current_user)):
    view = pair_view(request.app.state.engine, assignment_id, user.id)
    if view is None:
        raise HTTPException(404, "no such assignment")
    return view


@router.post("/assignments/{assignment_id}/decision", status_code=201)
def post_decision(request: Request, assignment_id: RowId, body: DecisionIn, user: User = Depends(current_user),
                  x_csrf_token: str | None = Header(default=None, max_length=128)):
    check_csrf(user, x_csrf_token)
    try:
        rec = record(request.app.state.engine, user_id=user.id, assignment_id=assignment_id, choice=body.choice,
                     note=body.note, submission_id=body.submission_id, max_note_chars=request.app.state.config.max_note_chars)
    except NotYours:
        raise HTTPException(404, "no such assignment") from None
    except DecisionError as e:
        raise HTTPException(400, str(e)) from None
    return {"decision_id": rec.decision_id, "duplicate": rec.duplicate}


def _own(user_id: int):
    return (
        select(decisions.c.id, decisions.c.assignment_id, decisions.c.created_at, decisions.c.choice_shown, decisions.c.note, pairs.c.pair_id)
        .join(pairs, pairs.c.id == decisions.c.pair_pk)
        .where(decisions.c.user_id == user_id)
    )


def _out(r) -> dict:
    return {"id": r.id, "assignment_id": r.assignment_id, "pair_id": r.pair_id, "choice_shown": r.choice_shown, "note": r.note, "time": iso(r.created_at)}


@router.get("/decisions")
def my_decisions(request: Request, user: User = Depends(current_user)):
    with request.app.state.engine.connect() as conn:
        return [_out(r) for r in conn.execute(_own(user.id).order_by(decisions.c.id))]


@router.get("/decisions/{decision_id}")
def my_decision(request: Request, decision_id: RowId, user: User = Depends(current_user)):
    with request.app.state.engine.connect() as conn:
        row = conn.execute(_own(user.id).where(decisions.c.id == decision_id)).first()
    if row is None:
        raise HTTPException(404, "no such decision")
    return _out(row)


@router.get("/admin/stats")
def admin_stats(request: Request, user: User = Depends(admin_user)):
    engine, k = request.app.state.engine, request.app.state.config.policy.k
    return {"progress": stats.progress(engine, k), "annotators": stats.annotators(engine), "agreement": stats.agreement_report(engine)}
