"""Queueing what an escalation says: support hears of every step, the customer rarely.

A rule that keeps firing raises its open case's severity step by step (``escalate`` in the
rule file). Support is told of each step once, on its own channels, with the purpose
``case_escalated:<severity>`` (the outbox's unique key makes "once" a database fact).

The customer was already told of the problem once, and one message per problem is the
promise; so an escalation reaches the customer only if the new severity is critical
(:data:`~monitor.notify.messages.URGENT_SEVERITIES`) and the customer has not been told yet
(no customer message delivered: ``Case.notified_at`` is unset, e.g. the first message is
still waiting for the end of their quiet hours, or could not be delivered). Then the waiting
customer messages of the case are superseded by one urgent message, which ignores quiet
hours, so the customer hears once, and hears now. (A first message already on its way when
the escalation comes cannot be called back: delivery is at least once, so that customer may
get both.)
"""

from __future__ import annotations

import logging

from sqlalchemy import update
from sqlmodel import Session, col, select

from monitor.config import NotifySettings
from monitor.notify.channels import CUSTOMER_CHANNELS
from monitor.notify.messages import URGENT_SEVERITIES, Addressee
from monitor.notify.outbox import customer_messages, webhook_body
from monitor.notify.support import support_rows
from monitor.store import Case, Customer, Device, Outbox

log = logging.getLogger(__name__)

CASE_ESCALATED = "case_escalated"
SUPERSEDED = "superseded"
"""Outbox status of a customer message that an urgent escalation message replaced."""


def escalation_purpose(severity: str) -> str:
    """The outbox purpose of the escalation of a case to ``severity``."""
    return f"{CASE_ESCALATED}:{severity}"


def enqueue_case_escalated(
    session: Session,
    case: Case,
    before: str,
    *,
    device: Device,
    customer: Customer | None,
    settings: NotifySettings,
    now: float,
    to_customer: bool = True,
    to_support: bool = True,
    plot: bytes | None = None,
) -> list[Outbox]:
    """Add (without committing) the rows announcing that ``case`` was escalated from
    ``before`` to its current severity: support's rows if ``to_support``, and the customer's
    only as the module says (and if ``to_customer``). A step already announced gets none."""
    if case.id is None:
        raise ValueError("case has no id yet: flush the session before enqueueing its messages")
    purpose = escalation_purpose(case.severity)
    queued = select(Outbox.id).where(col(Outbox.case_id) == case.id, Outbox.purpose == purpose)
    if session.exec(queued.limit(1)).first() is not None:
        return []
    rows: list[Outbox] = []
    if to_support:
        body = {
            **webhook_body(case, case.id, device, customer, settings),
            "event": CASE_ESCALATED,
            "from_severity": before,
        }
        rows += support_rows(
            purpose, body, template=CASE_ESCALATED, settings=settings, now=now, case_id=case.id
        )
    if to_customer and customer is not None and customer_must_hear(case):
        superseded = _supersede_waiting(session, case.id, purpose)
        rows += customer_messages(
            Addressee(case, case.id, device, customer), purpose, settings, now, plot=plot
        )
        log.info(
            "critical escalation before the customer was told: one urgent message instead",
            extra={"case_id": case.id, "superseded": superseded},
        )
    session.add_all(rows)
    return rows


def customer_must_hear(case: Case) -> bool:
    """Whether an escalation of ``case`` (to its current severity) is told to the customer."""
    return case.severity in URGENT_SEVERITIES and case.notified_at is None


def _supersede_waiting(session: Session, case_id: int, purpose: str) -> int:
    """Retire the case's customer messages not yet delivered; returns how many."""
    result = session.exec(
        update(Outbox)
        .where(
            col(Outbox.case_id) == case_id,
            col(Outbox.status) == "pending",
            col(Outbox.channel).in_(CUSTOMER_CHANNELS),
        )
        .values(status=SUPERSEDED, last_error=f"superseded by {purpose}")
    )
    return int(result.rowcount)
