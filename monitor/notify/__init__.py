"""Notifications: the outbox written with each case, and the dispatcher that delivers it.

Cases call :func:`enqueue_case_opened` inside the transaction that opens the case; the
daemon runs one :class:`Dispatcher`, which sends due rows by email (SMTP) and to support's
webhook, retrying with backoff and recording each outcome on the case.
"""

from monitor.notify.dispatcher import Dispatcher
from monitor.notify.errors import DeliveryError
from monitor.notify.outbox import enqueue_case_opened

__all__ = ["DeliveryError", "Dispatcher", "enqueue_case_opened"]
