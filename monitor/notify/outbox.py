"""Queueing notifications in the outbox, in the same transaction that opens the case.

Messages are rendered here, at enqueue time, so that what is delivered (perhaps hours later,
after an SMTP outage) is exactly what the case looked like when it was opened, and so that a
template error surfaces while the case is opened rather than in the dispatcher's retry loop.
"""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlmodel import Session

from monitor.config import NotifySettings
from monitor.notify.render import render_email
from monitor.store import Case, Customer, Device, Outbox

log = logging.getLogger(__name__)

CASE_OPENED = "case_opened"
EMAIL = "email"
WEBHOOK = "webhook"

_URGENT_SEVERITIES = frozenset({"critical"})
_DAY_S = 86400.0


def enqueue_case_opened(  # noqa: PLR0917  (the cases stage's call, positional by contract)
    session: Session,
    case: Case,
    device: Device,
    customer: Customer | None,
    settings: NotifySettings,
    now: float,
) -> list[Outbox]:
    """Add (without committing) the outbox rows announcing a newly opened ``case``.

    One ``email`` row for the customer, if there is a customer whose chosen channel is email
    and who has an address; one ``webhook`` row for support, if ``support_webhook.url`` is
    set. Both are due at ``now`` (wall clock). ``case.id`` must be set: flush the case first.
    """
    if case.id is None:
        raise ValueError("case has no id yet: flush the session before enqueueing its messages")
    rows: list[Outbox] = []
    if customer is not None and customer.email and customer.channel == EMAIL:
        rows.append(_email_row(case, case.id, device, customer, settings=settings, now=now))
    elif customer is not None:
        log.info(
            "customer not emailed: no address or another channel chosen",
            extra={"case_id": case.id, "customer_id": customer.id, "channel": customer.channel},
        )
    if settings.support_webhook.url:
        rows.append(_webhook_row(case, case.id, device, customer, settings=settings, now=now))
    session.add_all(rows)
    return rows


def booking_link(booking_url: str, case_id: int) -> str:
    """The customer's link to book a visit for ``case_id``."""
    separator = "&" if "?" in booking_url else "?"
    return f"{booking_url}{separator}case={case_id}"


def _email_row(
    case: Case,
    case_id: int,
    device: Device,
    customer: Customer,
    *,
    settings: NotifySettings,
    now: float,
) -> Outbox:
    assert customer.email is not None
    days_left, predicted_date = _forecast(case, customer.timezone)
    rendered = render_email(
        CASE_OPENED,
        customer.language,
        {
            "customer_name": customer.name,
            "kind": device.kind,
            "model": device.model,
            "problem_name": case.problem,
            "urgent": case.severity in _URGENT_SEVERITIES,
            "case_id": case_id,
            "booking_link": booking_link(settings.booking_url, case_id),
            "days_left": days_left,
            "predicted_date": predicted_date,
        },
    )
    domain = settings.smtp.sender.rpartition("@")[2] or "localhost"
    payload = {
        "subject": rendered.subject,
        "text": rendered.text,
        "html": rendered.html,
        # Fixed now and reused on every attempt, so a duplicate delivery is recognisable. The
        # random part keeps a fresh database's case 1 from reusing another database's ID,
        # which mail providers would drop as a duplicate.
        "message_id": f"<case-{case_id}.{CASE_OPENED}.{secrets.token_hex(6)}@{domain}>",
        "case_id": case_id,
    }
    return Outbox(
        case_id=case_id,
        channel=EMAIL,
        purpose=CASE_OPENED,
        recipient=customer.email,
        language=rendered.language,
        payload=payload,
        next_attempt_at=now,
        created_wall=now,
    )


def _webhook_row(
    case: Case,
    case_id: int,
    device: Device,
    customer: Customer | None,
    *,
    settings: NotifySettings,
    now: float,
) -> Outbox:
    assert settings.support_webhook.url is not None
    return Outbox(
        case_id=case_id,
        channel=WEBHOOK,
        purpose=CASE_OPENED,
        recipient=settings.support_webhook.url,
        language="en",
        payload=webhook_body(case, case_id, device, customer, settings),
        next_attempt_at=now,
        created_wall=now,
    )


def webhook_body(
    case: Case,
    case_id: int,
    device: Device,
    customer: Customer | None,
    settings: NotifySettings,
) -> dict[str, Any]:
    """The JSON document support's helpdesk receives for an opened case."""
    return {
        "event": CASE_OPENED,
        "case_id": case_id,
        "device_id": device.id,
        "device_kind": device.kind,
        "model": device.model,
        "site": device.site,
        "customer_id": customer.id if customer is not None else None,
        "customer_language": customer.language if customer is not None else None,
        "problem": case.problem,
        "rule": case.rule,
        "severity": case.severity,
        "status": case.status,
        "opened_at": _iso(case.opened_at),
        "opened_at_epoch": case.opened_at,
        "predicted_failure_at": _iso(case.predicted_failure_at),
        "predicted_failure_at_epoch": case.predicted_failure_at,
        "suggested_action": case.suggested_action,
        "evidence": case.evidence,
        "booking_link": booking_link(settings.booking_url, case_id),
    }


def _forecast(case: Case, timezone: str) -> tuple[int | None, str | None]:
    """Days until the predicted failure and its local date, if a failure is predicted."""
    if case.predicted_failure_at is None or case.predicted_failure_at <= case.opened_at:
        return None, None
    days = max(1, round((case.predicted_failure_at - case.opened_at) / _DAY_S))
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    when = datetime.fromtimestamp(case.predicted_failure_at, tz=zone)
    return days, when.date().isoformat()


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat().replace("+00:00", "Z")
