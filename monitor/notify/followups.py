"""Messages that follow a case over time: reminders and the surveys after resolution.

Both are decided on the monitor's clock (``now``), so a simulation can drive them. The
dispatcher runs :func:`enqueue_due_followups` before every delivery round.

* Reminders only if configured (``reminder_after_hours`` and ``max_reminders``): the n-th
  reminder is due ``n * reminder_after_hours`` after the customer was first told, while the
  case still waits for the customer (status "notified").
* One CSAT (1–5) + CES (1–7) survey per case, ``survey_delay_hours`` after it was resolved;
  a ``survey_sent`` event on the case makes "one per case" hold even if the case is
  reopened and resolved again. The survey carries the NPS question (0–10) too if the
  customer was not asked in the last ``nps_interval_days`` (``Customer.nps_asked_at``).
  Only for cases the customer knows of: one they reported, or one they were told about.
"""

from __future__ import annotations

import logging

from sqlalchemy import exists, or_
from sqlmodel import Session, col, select

from monitor.config import NotifySettings
from monitor.notify.channels import APPRISE, EMAIL, customer_channels
from monitor.notify.messages import Addressee, customer_row, link_maker
from monitor.notify.outbox import customer_messages
from monitor.store import Case, CaseEvent, Customer, Device, Outbox

log = logging.getLogger(__name__)

SURVEY = "survey"
SURVEY_SENT = "survey_sent"
CUSTOMER_NOTIFIED = "customer_notified"
_SURVEY_CHANNELS = (EMAIL, APPRISE)
_HOUR_S = 3600.0
_DAY_S = 86400.0


def enqueue_due_followups(session: Session, settings: NotifySettings, now: float) -> int:
    """Queue the reminders and surveys due at ``now``; the caller commits. Returns rows added."""
    return enqueue_due_reminders(session, settings, now) + enqueue_due_surveys(
        session, settings, now
    )


def enqueue_due_reminders(session: Session, settings: NotifySettings, now: float) -> int:
    """Queue the reminders due at ``now`` (none unless reminders are configured)."""
    after = settings.reminder_after_hours
    if after is None or settings.max_reminders == 0:
        return 0
    waiting = select(Case, Device, Customer).where(
        col(Case.status) == "notified",
        col(Case.notified_at).is_not(None),
        col(Case.notified_at) <= now - after * _HOUR_S,
        col(Case.device_id) == col(Device.id),
        col(Device.customer_id) == col(Customer.id),
    )
    added = 0
    for case, device, customer in session.exec(waiting):
        assert case.id is not None
        assert case.notified_at is not None
        sent = _reminders_queued(session, case.id)
        number = sent + 1
        if number > settings.max_reminders or now < case.notified_at + number * after * _HOUR_S:
            continue
        to = Addressee(case, case.id, device, customer)
        rows = customer_messages(to, f"reminder_{number}", settings, now)
        session.add_all(rows)
        added += len(rows)
    return added


def enqueue_due_surveys(session: Session, settings: NotifySettings, now: float) -> int:
    """Queue one survey for every case resolved ``survey_delay_hours`` ago and not yet
    surveyed; the caller commits. Returns how many outbox rows were added.

    Without ``feedback_secret`` there are no answer links, so no surveys are sent.
    """
    if not settings.feedback_secret:
        return 0
    surveyed = exists().where(
        col(CaseEvent.case_id) == col(Case.id), col(CaseEvent.kind) == SURVEY_SENT
    )
    # Only customers who know of the case: they reported it, or we told them. A case support
    # worked alone (a connectivity case) is no experience of theirs to rate.
    told = exists().where(
        col(CaseEvent.case_id) == col(Case.id), col(CaseEvent.kind) == CUSTOMER_NOTIFIED
    )
    due = select(Case, Device, Customer).where(
        col(Case.status).in_(("resolved", "closed")),
        or_(col(Case.source) == "reactive", told),
        col(Case.resolved_at).is_not(None),
        col(Case.resolved_at) <= now - settings.survey_delay_hours * _HOUR_S,
        ~surveyed,
        col(Case.device_id) == col(Device.id),
        col(Device.customer_id) == col(Customer.id),
    )
    added = 0
    for case, device, customer in session.exec(due):
        assert case.id is not None
        added += _survey(session, Addressee(case, case.id, device, customer), settings, now)
    return added


def _survey(session: Session, to: Addressee, settings: NotifySettings, now: float) -> int:
    customer = to.customer
    channels = [c for c in customer_channels(customer) if c in _SURVEY_CHANNELS]
    ask_nps = bool(channels) and (
        customer.nps_asked_at is None
        or now - customer.nps_asked_at >= settings.nps_interval_days * _DAY_S
    )
    links = link_maker(to, settings, now)
    context = {
        "customer_name": customer.name,
        "kind": to.device.kind,
        "model": to.device.model,
        "case_id": to.case_id,
        "csat_links": links.scale("csat"),
        "ces_links": links.scale("ces"),
        "nps_links": links.scale("nps") if ask_nps else [],
    }
    rows = [
        customer_row(c, SURVEY, to, context=context, settings=settings, now=now) for c in channels
    ]
    session.add_all(rows)
    if ask_nps:
        customer.nps_asked_at = now
        session.add(customer)
    # Recorded even when the customer has no channel for it, so the case is not looked at
    # again every round; and it is what keeps a reopened case from a second survey.
    session.add(
        CaseEvent(
            case_id=to.case_id,
            at_wall=now,
            kind=SURVEY_SENT,
            detail={"channels": channels, "nps": ask_nps},
        )
    )
    return len(rows)


def _reminders_queued(session: Session, case_id: int) -> int:
    purposes = select(Outbox.purpose).where(
        col(Outbox.case_id) == case_id, col(Outbox.purpose).startswith("reminder_")
    )
    return len(set(session.exec(purposes)))
