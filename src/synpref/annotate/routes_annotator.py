"""Annotator pages: one pair at a time, own history, the protocol."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse
from sqlalchemy import select

from ..verification import LABELS
from . import protocol
from .app import templates
from .assign import next_assignment
from .auth import RowId, User, check_csrf, current_user
from .db import decisions, pairs
from .decisions import DecisionError, NotYours, record
from .pair_view import annotator_progress, pair_view

router = APIRouter()


def _render_pair(request: Request, user: User, assignment_id: int | None, revisit: bool = False):
    engine, config = request.app.state.engine, request.app.state.config
    progress = annotator_progress(engine, user.id, config.policy.k)
    context = {"user": user, "progress": progress, "protocol": protocol.PROTOCOL, "shortcuts": protocol.SHORTCUTS}
    if assignment_id is None:
        return templates.TemplateResponse(request, "done.html", context)
    view = pair_view(engine, assignment_id, user.id)
    if view is None:
        raise HTTPException(404, "no such assignment")
    context.update(pair=view, submission_id=uuid.uuid4().hex, revisit=revisit, max_note=config.max_note_chars)
    return templates.TemplateResponse(request, "annotate.html", context)


@router.get("/annotate")
def annotate(request: Request, user: User = Depends(current_user)):
    return _render_pair(request, user, next_assignment(request.app.state.engine, user.id, request.app.state.config.policy))


@router.get("/assignments/{assignment_id}")
def revisit(request: Request, assignment_id: RowId, user: User = Depends(current_user)):
    return _render_pair(request, user, assignment_id, revisit=True)


@router.post("/assignments/{assignment_id}/decision")
def decide(
    request: Request,
    assignment_id: RowId,
    choice: str = Form(..., max_length=16),
    note: str = Form("", max_length=10_000),
    submission_id: str = Form(..., max_length=64),
    csrf_token: str = Form(..., max_length=128),
    user: User = Depends(current_user),
):
    check_csrf(user, csrf_token)
    try:
        record(request.app.state.engine, user_id=user.id, assignment_id=assignment_id, choice=choice, note=note,
               submission_id=submission_id, max_note_chars=request.app.state.config.max_note_chars)
    except NotYours:
        raise HTTPException(404, "no such assignment") from None
    except DecisionError as e:
        raise HTTPException(400, str(e)) from None
    return RedirectResponse("/annotate", status_code=303)


@router.get("/my")
def my_decisions(request: Request, user: User = Depends(current_user)):
    with request.app.state.engine.connect() as conn:
        rows = conn.execute(
            select(decisions.c.id, decisions.c.assignment_id, decisions.c.created_at, decisions.c.choice_shown,
                   decisions.c.note, pairs.c.pair_id, pairs.c.task_category)
            .join(pairs, pairs.c.id == decisions.c.pair_pk)
            .where(decisions.c.user_id == user.id)
            .order_by(decisions.c.id.desc()).limit(500)
        ).all()
    return templates.TemplateResponse(request, "my.html", {"user": user, "rows": rows, "labels": LABELS})


@router.get("/protocol")
def protocol_page(request: Request, user: User = Depends(current_user)):
    return templates.TemplateResponse(request, "protocol.html", {"user": user, "protocol": protocol.PROTOCOL, "shortcuts": protocol.SHORTCUTS})
