"""Queueing notifications in the outbox, in the same transaction that opens the case.

One message per problem: a case is announced once per channel (the outbox's unique key on
case, channel and purpose makes it a database fact, and a case that is reopened keeps its
rows, so it is not announced again). Reminders, when configured, are their own purposes
(``reminder_1``, ``reminder_2`` …), queued by
:func:`monitor.notify.followups.enqueue_due_reminders`.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from monitor.config import NotifySettings
from monitor.notify.channels import APPRISE, DISPLAY, EMAIL, WEBHOOK, customer_channels
from monitor.notify.knowledge import self_help
from monitor.notify.messages import URGENT_SEVERITIES, Addressee, customer_row, link_maker
from monitor.notify.quiet_hours import customer_zone
from monitor.notify.support import iso, support_rows
from monitor.store import Case, Customer, Device, Outbox

log = logging.getLogger(__name__)

CASE_OPENED = "case_opened"
DEAD_LETTER = "dead_letter"

__all__ = ["APPRISE", "CASE_OPENED", "DISPLAY", "EMAIL", "WEBHOOK", "enqueue_case_opened"]

_DAY_S = 86400.0


def enqueue_case_opened(  # noqa: PLR0917  (the cases stage's call, positional by contract)
    session: Session,
    case: Case,
    device: Device,
    customer: Customer | None,
    settings: NotifySettings,
    now: float,
    *,
    plot: bytes | None = None,
    to_customer: bool = True,
    to_support: bool = True,
) -> list[Outbox]:
    """Add (without committing) the outbox rows announcing a newly opened ``case``.

    One row per channel the customer chose and can be reached on (email, apprise, display;
    see :func:`~monitor.notify.channels.customer_channels`), due at ``now`` or when their
    quiet hours end; one ``webhook`` row if ``support_webhook.url`` is set and one
    ``support_apprise`` row if ``support_apprise_urls`` is, due at ``now``. ``plot`` (PNG)
    goes inline into the email. A case that already has its rows (it was reopened) gets none.
    ``to_customer`` / ``to_support`` False leave that side out (a rule's actions).
    ``case.id`` must be set: flush the case first.
    """
    if case.id is None:
        raise ValueError("case has no id yet: flush the session before enqueueing its messages")
    if _already_queued(session, case.id, CASE_OPENED):
        log.info("case already announced; not again", extra={"case_id": case.id})
        return []
    rows: list[Outbox] = []
    if customer is not None and to_customer:
        to = Addressee(case, case.id, device, customer)
        rows += customer_messages(to, CASE_OPENED, settings, now, plot=plot)
    if to_support:
        rows += _support_rows(case, case.id, device, customer, settings=settings, now=now)
    session.add_all(rows)
    return rows


def customer_messages(
    to: Addressee,
    purpose: str,
    settings: NotifySettings,
    now: float,
    *,
    plot: bytes | None = None,
) -> list[Outbox]:
    """The rows telling ``to`` about their case (``case_opened``, ``reminder_<n>`` or an
    urgent ``case_escalated:<severity>``)."""
    channels = customer_channels(to.customer)
    if not channels:
        log.info(
            "customer not told: no channel with an address",
            extra={"case_id": to.case_id, "customer_id": to.customer.id},
        )
    reminder = purpose.startswith("reminder")
    context = case_message_context(to, settings, now, reminder=reminder)
    return [
        customer_row(channel, purpose, to, context=context, settings=settings, now=now, plot=plot)
        for channel in channels
    ]


def case_message_context(
    to: Addressee, settings: NotifySettings, now: float, *, reminder: bool = False
) -> dict[str, Any]:
    """What the customer templates say about a case: the problem, the forecast, what the
    customer can do now (the self-help tip), and the visit and "was this helpful?" links."""
    case, device, customer = to.case, to.device, to.customer
    days_left, predicted_date = _forecast(case, customer.timezone)
    links = link_maker(to, settings, now)
    return {
        "customer_name": customer.name,
        "kind": device.kind,
        "model": device.model,
        "problem_name": case.problem,
        "urgent": case.severity in URGENT_SEVERITIES,
        "case_id": to.case_id,
        "booking_link": links.visit() or booking_link(settings.booking_url, to.case_id),
        "days_left": days_left,
        "predicted_date": predicted_date,
        "tip": self_help(case.problem, device.kind, customer.language),
        "helpful_yes": links.answer("helpful", 1),
        "helpful_no": links.answer("helpful", 0),
        "reminder": reminder,
    }


def booking_link(booking_url: str, case_id: int) -> str:
    """The customer's link to book a visit for ``case_id``."""
    separator = "&" if "?" in booking_url else "?"
    return f"{booking_url}{separator}case={case_id}"


def enqueue_dead_letter_alert(
    session: Session, dead: Outbox, settings: NotifySettings, now: float
) -> list[Outbox]:
    """Add the rows telling support that ``dead`` was given up, on every support channel
    but its own (a dead alert about a dead alert is only logged, so failures cannot loop)."""
    if dead.id is None or dead.purpose.startswith(DEAD_LETTER):
        return []
    purpose = f"{DEAD_LETTER}_{dead.id}"
    fact = {
        "event": DEAD_LETTER,
        "outbox_id": dead.id,
        "case_id": dead.case_id,
        "incident_id": dead.incident_id,
        "channel": dead.channel,
        "purpose": dead.purpose,
        "attempts": dead.attempts,
        "error": dead.last_error,
    }
    rows = support_rows(
        purpose,
        fact,
        template=DEAD_LETTER,
        settings=settings,
        now=now,
        case_id=dead.case_id,
        incident_id=dead.incident_id,
        skip_channel=dead.channel,
    )
    session.add_all(rows)
    return rows


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
        "opened_at": iso(case.opened_at),
        "opened_at_epoch": case.opened_at,
        "predicted_failure_at": iso(case.predicted_failure_at),
        "predicted_failure_at_epoch": case.predicted_failure_at,
        "suggested_action": case.suggested_action,
        "evidence": case.evidence,
        "booking_link": booking_link(settings.booking_url, case_id),
    }


def _already_queued(session: Session, case_id: int, purpose: str) -> bool:
    query = select(Outbox.id).where(col(Outbox.case_id) == case_id, col(Outbox.purpose) == purpose)
    return session.exec(query.limit(1)).first() is not None


def _support_rows(
    case: Case,
    case_id: int,
    device: Device,
    customer: Customer | None,
    *,
    settings: NotifySettings,
    now: float,
) -> list[Outbox]:
    body = webhook_body(case, case_id, device, customer, settings)
    return support_rows(
        CASE_OPENED,
        body,
        template=CASE_OPENED,
        settings=settings,
        now=now,
        case_id=case_id,
    )


def _forecast(case: Case, timezone: str) -> tuple[int | None, str | None]:
    """Days until the predicted failure and its local date, if a failure is predicted."""
    if case.predicted_failure_at is None or case.predicted_failure_at <= case.opened_at:
        return None, None
    days = max(1, round((case.predicted_failure_at - case.opened_at) / _DAY_S))
    when = datetime.fromtimestamp(case.predicted_failure_at, tz=customer_zone(timezone))
    return days, when.date().isoformat()
