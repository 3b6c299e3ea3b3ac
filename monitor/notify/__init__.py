"""Notifications: the outbox written with each case, and the dispatcher that delivers it.

Cases call :func:`enqueue_case_opened` inside the transaction that opens the case; the
daemon runs one :class:`Dispatcher`, which sends due rows to the customer (email, Apprise,
the product's display, in the customer's language and outside their quiet hours) and to
support (webhook, Apprise), retrying with backoff and recording each outcome on the case.
Each round it also queues the reminders and surveys that are due
(:func:`enqueue_due_followups`).
"""

from monitor.notify.dispatcher import Dispatcher
from monitor.notify.errors import DeliveryError
from monitor.notify.followups import (
    enqueue_due_followups,
    enqueue_due_reminders,
    enqueue_due_surveys,
)
from monitor.notify.outbox import enqueue_case_opened

__all__ = [
    "DeliveryError",
    "Dispatcher",
    "enqueue_case_opened",
    "enqueue_due_followups",
    "enqueue_due_reminders",
    "enqueue_due_surveys",
]
