"""Noise control for support and engineering: silences, the suppression log, fleet incidents."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field
from sqlmodel import col, select

from monitor.api.deps import SessionDep
from monitor.cases.incidents import IncidentError, update_incident
from monitor.cases.silencing import SilenceError, add_silence, expire_silence, list_silences
from monitor.store.models import FleetIncident, Suppression

router = APIRouter(tags=["noise"])


class NewSilence(BaseModel):
    scope: str = Field(description="device, model, site or customer")
    value: str = Field(min_length=1)
    starts_at: float | None = Field(default=None, description="Epoch seconds; default now.")
    duration_seconds: float = Field(gt=0)
    repeat: str = "none"
    expires_at: float | None = None
    kind: str = "silence"
    comment: str = ""
    actor: str = Field(min_length=1)


class IncidentUpdate(BaseModel):
    actor: str = Field(min_length=1)
    status: str = Field(pattern="^(acknowledged|resolved)$")
    note: str = ""


@router.get("/silences")
def get_silences(session: SessionDep, include_expired: bool = False) -> list[dict[str, Any]]:
    found = list_silences(session, now=time.time(), include_expired=include_expired)
    return [s.model_dump() for s in found]


@router.post("/silences", status_code=201)
def post_silence(body: NewSilence, session: SessionDep) -> dict[str, Any]:
    now = time.time()
    starts = now if body.starts_at is None else body.starts_at
    try:
        silence = add_silence(
            session,
            scope=body.scope,
            value=body.value,
            starts_at=starts,
            ends_at=starts + body.duration_seconds,
            repeat=body.repeat,
            expires_at=body.expires_at,
            kind=body.kind,
            comment=body.comment,
            actor=body.actor,
            now=now,
        )
    except SilenceError as exc:
        raise HTTPException(422, str(exc)) from exc
    session.commit()
    session.refresh(silence)
    return silence.model_dump()


@router.post("/silences/{silence_id}/expire")
def post_expire(silence_id: int, session: SessionDep) -> dict[str, Any]:
    try:
        silence = expire_silence(session, silence_id, now=time.time())
    except SilenceError as exc:
        raise HTTPException(404, str(exc)) from exc
    session.commit()
    session.refresh(silence)
    return silence.model_dump()


@router.get("/suppressions")
def get_suppressions(
    session: SessionDep,
    reason: str | None = None,
    device_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    query = select(Suppression).order_by(col(Suppression.id).desc()).limit(limit)
    if reason:
        query = query.where(Suppression.reason == reason)
    if device_id:
        query = query.where(Suppression.device_id == device_id)
    return [s.model_dump() for s in session.exec(query)]


@router.get("/incidents")
def get_incidents(session: SessionDep, status: str | None = None) -> list[dict[str, Any]]:
    query = select(FleetIncident).order_by(col(FleetIncident.id).desc())
    if status:
        query = query.where(FleetIncident.status == status)
    return [i.model_dump() for i in session.exec(query)]


@router.get("/incidents/{incident_id}")
def get_incident(incident_id: int, session: SessionDep) -> dict[str, Any]:
    incident = session.get(FleetIncident, incident_id)
    if incident is None:
        raise HTTPException(404, f"no fleet incident {incident_id}")
    return incident.model_dump()


@router.post("/incidents/{incident_id}")
def post_incident(incident_id: int, body: IncidentUpdate, session: SessionDep) -> dict[str, Any]:
    """Engineering acknowledges or resolves an incident; a resolved one lets alarms through."""
    try:
        incident = update_incident(
            session, incident_id, body.status, actor=body.actor, note=body.note, now=time.time()
        )
    except IncidentError as exc:
        code = 404 if str(exc).startswith("no ") else 409
        raise HTTPException(code, str(exc)) from exc
    session.commit()
    session.refresh(incident)
    return incident.model_dump()
