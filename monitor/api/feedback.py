"""The customer's one-click links: "was this helpful?", survey scores, and "book a visit".

Routes (``router``; include it in the API app):

* ``GET /feedback/{token}`` — stores the answer the signed token carries (``helpful`` 0/1,
  ``csat`` 1–5, ``ces`` 1–7, ``nps`` 0–10) as a :class:`~monitor.store.SurveyResponse` on
  its case and answers with a short thank-you page in the customer's language.
* ``GET /visit/{token}`` — records that the customer wants a visit (a case still waiting
  for them becomes "acknowledged") and redirects (303) to ``notify.booking_url``.

A forged, altered or expired token is answered 400 with a page that says so; a token for a
case that no longer exists, 404. Tokens are made by :mod:`monitor.notify.links`.

The routes read ``request.app.state.engine`` (the monitor's database) and
``request.app.state.settings`` (:class:`~monitor.config.Settings`), and the monitor's clock
from ``request.app.state.clock`` if set (else wall time); an app can instead override the
dependencies :func:`database`, :func:`notify_settings` and :func:`monitor_clock`.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.engine import Engine
from sqlmodel import Session

from monitor.config import NotifySettings
from monitor.notify.answers import UnknownCaseError, record_answer, request_visit
from monitor.notify.links import VISIT, LinkClaim, LinkError, read_token
from monitor.notify.outbox import booking_link
from monitor.notify.render import template_language
from monitor.store import Customer

router = APIRouter(tags=["feedback"])

_THANKS = {
    "en": "Thank you! We have recorded your answer.",
    "de": "Vielen Dank! Wir haben Ihre Antwort gespeichert.",
    "ja": "ご回答ありがとうございました。",
}


def database(request: Request) -> Engine:
    """The monitor's database, as the app keeps it."""
    engine: Engine = request.app.state.engine
    return engine


def notify_settings(request: Request) -> NotifySettings:
    """The ``[notify]`` settings, as the app keeps them."""
    settings: NotifySettings = request.app.state.settings.notify
    return settings


def monitor_clock(request: Request) -> Callable[[], float]:
    """The monitor's clock: the app's ``clock`` if it has one, else wall time."""
    clock: Callable[[], float] = getattr(request.app.state, "clock", time.time)
    return clock


EngineDep = Annotated[Engine, Depends(database)]
SettingsDep = Annotated[NotifySettings, Depends(notify_settings)]
ClockDep = Annotated[Callable[[], float], Depends(monitor_clock)]


@router.get("/feedback/{token}", response_class=HTMLResponse)
def answer(token: str, engine: EngineDep, settings: SettingsDep, clock: ClockDep) -> HTMLResponse:
    """Store the answer in ``token`` and thank the customer."""
    now = clock()
    claim = _verified(token, settings, now)
    if isinstance(claim, HTMLResponse):
        return claim
    if claim.question == VISIT:
        return _page("This link books a visit; please use the visit link.", status=400)
    with Session(engine) as session:
        try:
            record_answer(session, claim, now)
        except UnknownCaseError:
            return _page("We could not find this service case.", status=404)
        language = _language(session, claim.customer_id)
        session.commit()
    return _page(_THANKS[language], language=language)


@router.get("/visit/{token}", response_model=None)
def visit(
    token: str, engine: EngineDep, settings: SettingsDep, clock: ClockDep
) -> HTMLResponse | RedirectResponse:
    """Record that the customer wants a visit and send them on to the booking page."""
    now = clock()
    claim = _verified(token, settings, now)
    if isinstance(claim, HTMLResponse):
        return claim
    if claim.question != VISIT:
        return _page("This link records an answer, not a visit.", status=400)
    with Session(engine) as session:
        try:
            request_visit(session, claim, now)
        except UnknownCaseError:
            return _page("We could not find this service case.", status=404)
        session.commit()
    return RedirectResponse(booking_link(settings.booking_url, claim.case_id), status_code=303)


def _verified(token: str, settings: NotifySettings, now: float) -> LinkClaim | HTMLResponse:
    if not settings.feedback_secret:
        return _page("Feedback links are not enabled.", status=404)
    try:
        return read_token(settings.feedback_secret, token, now)
    except LinkError as exc:
        return _page(str(exc).capitalize() + ".", status=400)


def _language(session: Session, customer_id: str | None) -> str:
    customer = session.get(Customer, customer_id) if customer_id else None
    return template_language(customer.language if customer is not None else None)


def _page(message: str, *, status: int = 200, language: str = "en") -> HTMLResponse:
    text = html.escape(message)
    body = (
        f'<!DOCTYPE html><html lang="{language}"><head><meta charset="utf-8">'
        f"<title>{text}</title></head>"
        f'<body style="font-family: Arial, sans-serif;"><p>{text}</p></body></html>'
    )
    return HTMLResponse(body, status_code=status)
