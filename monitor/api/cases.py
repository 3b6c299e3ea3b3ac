"""Cases for support people: list, read with history, act on, annotate, plot, rule statistics."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from monitor.api.deps import SessionDep
from monitor.cases.feedback import rule_statistics
from monitor.cases.lifecycle import ACTIONS, TransitionError, act, add_note, assign
from monitor.cases.plot import NothingToPlotError, render_case_plot
from monitor.store import Case, CaseEvent

router = APIRouter(tags=["cases"])


class Actor(BaseModel):
    actor: str = Field(min_length=1, description="Who does it (a support person's name).")
    detail: dict[str, Any] = Field(default_factory=dict)


class Note(BaseModel):
    actor: str = Field(min_length=1)
    text: str = Field(min_length=1)


class Assignment(BaseModel):
    actor: str = Field(min_length=1)
    assignee: str


def case_or_404(session: Session, case_id: int) -> Case:
    case = session.get(Case, case_id)
    if case is None:
        raise HTTPException(404, f"no case {case_id}")
    return case


def case_with_history(session: Session, case: Case) -> dict[str, Any]:
    events = session.exec(
        select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(col(CaseEvent.id))
    )
    return {**case.model_dump(), "events": [e.model_dump() for e in events]}


@router.get("/cases")
def list_cases(
    session: SessionDep,
    status: str | None = None,
    device_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    query = select(Case).order_by(col(Case.id).desc()).limit(limit)
    if status:
        query = query.where(Case.status == status)
    if device_id:
        query = query.where(Case.device_id == device_id)
    return [case.model_dump() for case in session.exec(query)]


@router.get("/cases/{case_id}")
def get_case(case_id: int, session: SessionDep) -> dict[str, Any]:
    return case_with_history(session, case_or_404(session, case_id))


@router.post("/cases/{case_id}/notes", status_code=201)
def post_note(case_id: int, note: Note, session: SessionDep) -> dict[str, Any]:
    case = case_or_404(session, case_id)
    event = add_note(session, case, note.text, actor=note.actor, at=time.time())
    session.commit()
    session.refresh(event)
    return event.model_dump()


@router.post("/cases/{case_id}/assign")
def post_assign(case_id: int, body: Assignment, session: SessionDep) -> dict[str, Any]:
    case = case_or_404(session, case_id)
    assign(session, case, body.assignee, actor=body.actor, at=time.time())
    session.commit()
    session.refresh(case)
    return case_with_history(session, case)


@router.post("/cases/{case_id}/{action}")
def post_action(case_id: int, action: str, body: Actor, session: SessionDep) -> dict[str, Any]:
    """One of the lifecycle actions: ack, schedule-visit, resolve, close, reopen, false-alarm.

    409 when the case's status does not allow it (the body says which moves would)."""
    if action not in ACTIONS:
        raise HTTPException(404, f"unknown action {action!r}; known: {', '.join(ACTIONS)}")
    case = case_or_404(session, case_id)
    try:
        act(session, case, action, actor=body.actor, at=time.time(), detail=body.detail)
    except TransitionError as exc:
        raise HTTPException(409, str(exc)) from exc
    session.commit()
    session.refresh(case)
    return case_with_history(session, case)


@router.get("/cases/{case_id}/plot.png", response_class=Response)
def get_plot(case_id: int, session: SessionDep) -> Response:
    case = case_or_404(session, case_id)
    try:
        png = render_case_plot(case)
    except NothingToPlotError as exc:
        raise HTTPException(404, str(exc)) from exc
    return Response(png, media_type="image/png")


@router.get("/stats/rules")
def get_rule_statistics(session: SessionDep) -> list[dict[str, Any]]:
    return [stats.as_dict() for stats in rule_statistics(session)]
