"""The customer's one-click links: "was this helpful?", survey scores, and "book a visit".

Routes (``router``; include it in the API app):

* ``GET /feedback/{token}`` — a page in the customer's language that shows the question and
  the answer the signed token carries (``helpful`` 0/1, ``csat`` 1–5, ``ces`` 1–7, ``nps``
  0–10) with one button; it records nothing.
* ``POST /feedback/{token}`` (the button) — stores the answer as a
  :class:`~monitor.store.SurveyResponse` on its case and thanks the customer.
* ``GET /visit/{token}`` — a page asking the customer to confirm they want a visit; records
  nothing.
* ``POST /visit/{token}`` (the button) — records that the customer wants a visit (a case
  still waiting for them becomes "acknowledged") and redirects (303) to ``notify.booking_url``.

Reading a link changes nothing because mail scanners and link previews fetch the links in
a message before (or instead of) the customer: only the customer presses the button. A
forged, altered or expired token is answered 400 with a page that says so; a token for a
case that no longer exists, 404. Tokens are made by :mod:`monitor.notify.links`; the pages
are Jinja2 templates in ``templates/`` (English, German, Japanese).

The routes read ``request.app.state.engine`` (the monitor's database) and
``request.app.state.settings`` (:class:`~monitor.config.Settings`), and the monitor's clock
from ``request.app.state.clock`` if set (else wall time); an app can instead override the
dependencies :func:`~monitor.api.deps.database`, :func:`~monitor.api.deps.notify_settings` and
:func:`~monitor.api.deps.monitor_clock`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy.engine import Engine
from sqlmodel import Session

from monitor.api.deps import ClockDep, EngineDep, SettingsDep
from monitor.config import NotifySettings
from monitor.notify.answers import UnknownCaseError, record_answer, request_visit
from monitor.notify.links import VISIT, LinkClaim, LinkError, read_token
from monitor.notify.outbox import booking_link
from monitor.notify.render import template_language
from monitor.store import Case, Customer

router = APIRouter(tags=["feedback"])

_ANSWER = "answer"
_NO_CASE = "We could not find this service case."
R = TypeVar("R", bound=Response)
_PAGES = Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parent / "templates"),
    autoescape=True,
    undefined=StrictUndefined,
)


@router.get("/feedback/{token}", response_class=HTMLResponse)
def confirm_answer(
    token: str, engine: EngineDep, settings: SettingsDep, clock: ClockDep
) -> HTMLResponse:
    """Show the answer in ``token`` with a button that sends it; records nothing."""
    return _confirmation(token, engine, settings, clock(), wanted=_ANSWER)


@router.post("/feedback/{token}", response_class=HTMLResponse)
def answer(token: str, engine: EngineDep, settings: SettingsDep, clock: ClockDep) -> HTMLResponse:
    """Store the answer in ``token`` and thank the customer."""
    now = clock()

    def thank(session: Session, claim: LinkClaim) -> HTMLResponse:
        record_answer(session, claim, now)
        return _page("thanks", _language(session, claim.customer_id))

    return _act(token, engine, settings, now, wanted=_ANSWER, act=thank)


@router.get("/visit/{token}", response_class=HTMLResponse)
def confirm_visit(
    token: str, engine: EngineDep, settings: SettingsDep, clock: ClockDep
) -> HTMLResponse:
    """Ask the customer to confirm that they want a visit; records nothing."""
    return _confirmation(token, engine, settings, clock(), wanted=VISIT)


@router.post("/visit/{token}", response_model=None)
def visit(
    token: str, engine: EngineDep, settings: SettingsDep, clock: ClockDep
) -> HTMLResponse | RedirectResponse:
    """Record that the customer wants a visit and send them on to the booking page."""
    now = clock()

    def book(session: Session, claim: LinkClaim) -> RedirectResponse:
        request_visit(session, claim, now)
        return RedirectResponse(booking_link(settings.booking_url, claim.case_id), status_code=303)

    return _act(token, engine, settings, now, wanted=VISIT, act=book)


def _act(
    token: str,
    engine: Engine,
    settings: NotifySettings,
    now: float,
    *,
    wanted: str,
    act: Callable[[Session, LinkClaim], R],
) -> R | HTMLResponse:
    """Verify ``token``, run ``act`` on its claim in one transaction and return its page;
    or the page that says what is wrong."""
    claim = _claim(token, settings, now, wanted=wanted)
    if isinstance(claim, HTMLResponse):
        return claim
    with Session(engine) as session:
        try:
            page = act(session, claim)
        except UnknownCaseError:
            return _problem(_NO_CASE, 404)
        session.commit()
    return page


def _confirmation(
    token: str, engine: Engine, settings: NotifySettings, now: float, *, wanted: str
) -> HTMLResponse:
    """The page with the one button that acts on ``token`` (read-only)."""
    claim = _claim(token, settings, now, wanted=wanted)
    if isinstance(claim, HTMLResponse):
        return claim
    with Session(engine) as session:
        if session.get(Case, claim.case_id) is None:
            return _problem(_NO_CASE, 404)
        language = _language(session, claim.customer_id)
    page = "confirm_visit" if wanted == VISIT else "confirm_answer"
    context = {"case_id": claim.case_id, "question": claim.question, "score": claim.score}
    return _page(page, language, context)


def _claim(
    token: str, settings: NotifySettings, now: float, *, wanted: str
) -> LinkClaim | HTMLResponse:
    """The verified claim of ``token`` if it is a link of the ``wanted`` kind, else the page
    that says what is wrong."""
    if not settings.feedback_secret:
        return _problem("Feedback links are not enabled.", 404)
    try:
        claim = read_token(settings.feedback_secret, token, now)
    except LinkError as exc:
        return _problem(str(exc).capitalize() + ".", 400)
    if wanted == VISIT and claim.question != VISIT:
        return _problem("This link records an answer, not a visit.", 400)
    if wanted == _ANSWER and claim.question == VISIT:
        return _problem("This link books a visit; please use the visit link.", 400)
    return claim


def _language(session: Session, customer_id: str | None) -> str:
    customer = session.get(Customer, customer_id) if customer_id else None
    return template_language(customer.language if customer is not None else None)


def _page(name: str, language: str, context: dict[str, Any] | None = None) -> HTMLResponse:
    template = _PAGES.get_template(f"{name}.{language}.html")
    return HTMLResponse(template.render({**(context or {}), "language": language}))


def _problem(message: str, status: int) -> HTMLResponse:
    # Said before (or instead of) reading the customer's language: English.
    html = _PAGES.get_template("problem.html").render(message=message, language="en")
    return HTMLResponse(html, status_code=status)
