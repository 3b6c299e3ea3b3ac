"""Delivering the outbox: claim due rows, send each over its channel, record the outcome.

Delivery is at-least-once. A row is marked ``sent`` in its own short transaction right after
its channel accepted it; if the process dies between the two (or the database is away until
the claim's lease runs out), the row is delivered again. The email keeps the ``Message-ID``
and the webhook the ``Idempotency-Key: outbox-<id>`` it had on the first attempt, so the
receiver can recognise and drop the repeat. Outcomes that could not be written because the
database was away are kept in memory and written first on the next round, which narrows the
window to a crash.

Several dispatchers (several monitor processes) may share one database. A claim moves the
row's ``next_attempt_at`` to the end of a lease in one short transaction, so no other
dispatcher sees it as due while it is being delivered; on PostgreSQL the claim query also
uses ``FOR UPDATE SKIP LOCKED`` so concurrent claims pass each other instead of waiting, and
the claim's update re-checks that the row is still due, which on SQLite (one writer at a
time) is what keeps two claims apart.

Customer rows that fall due inside the customer's quiet hours (a retry after an outage, say)
are put back until the quiet hours end, without counting an attempt. A row given up ("dead")
is logged, counted in ``monitor_notifications_dead_letters_total`` and reported to support on
its other channels.

Every round starts by queueing the follow-ups due (reminders, surveys): see
:mod:`monitor.notify.followups`. All of it runs on ``clock``, so a simulation can drive it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from monitor.cases.lifecycle import transition
from monitor.config import MqttSettings, NotifySettings
from monitor.metrics import DEAD_LETTERS, NOTIFICATIONS, OUTBOX_PENDING
from monitor.notify.apprise import send_apprise
from monitor.notify.channels import (
    APPRISE,
    CUSTOMER_CHANNELS,
    DISPLAY,
    EMAIL,
    SUPPORT_APPRISE,
    WEBHOOK,
)
from monitor.notify.display import publish_display_message
from monitor.notify.email import send_email
from monitor.notify.errors import DeliveryError
from monitor.notify.followups import CUSTOMER_NOTIFIED, SURVEY, enqueue_due_followups
from monitor.notify.outbox import enqueue_dead_letter_alert
from monitor.notify.quiet_hours import quiet_until
from monitor.notify.retry import retry_delay
from monitor.notify.webhook import post_webhook
from monitor.store import Case, CaseEvent, Outbox
from monitor.store.models import MONITOR_ACTOR

log = logging.getLogger(__name__)

CHANNELS = (EMAIL, WEBHOOK, APPRISE, SUPPORT_APPRISE, DISPLAY)
"""Channels a dispatcher delivers (``display`` only if it was given the MQTT settings)."""

_BATCH = 20
"""Rows claimed per round; all of them are delivered concurrently."""
_LEASE_MARGIN_S = 60.0
_FOLLOWUPS_EVERY_S = 60.0
"""Reminders and surveys are due in hours, not seconds: looking once a minute is enough."""
_DB_RETRY_MAX_S = 30.0


@dataclass(frozen=True)
class _Claimed:
    """An outbox row taken out of the session, so delivery never touches the database."""

    id: int
    case_id: int | None
    incident_id: int | None
    channel: str
    purpose: str
    recipient: str
    language: str
    payload: dict[str, Any]
    attempts: int


@dataclass(frozen=True)
class _Outcome:
    row: _Claimed
    error: DeliveryError | None  # None: delivered

    @property
    def delivered(self) -> bool:
        return self.error is None


class Dispatcher:
    """Delivers due outbox rows on every channel, with retries, until told to stop.

    ``engine`` is the monitor's database; ``settings`` the ``[notify]`` section; ``clock``
    returns the monitor's time in epoch seconds (wall clock when live) and is replaceable so
    tests and simulations move time forward instead of sleeping through backoffs and quiet
    hours; ``mqtt`` is the broker on which messages for the products' displays are
    published (without it, ``display`` rows wait for a dispatcher that has one).
    """

    def __init__(
        self,
        engine: Engine,
        settings: NotifySettings,
        clock: Callable[[], float] = time.time,
        *,
        mqtt: MqttSettings | None = None,
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._clock = clock
        self._mqtt = mqtt
        self._channels = tuple(c for c in CHANNELS if c != DISPLAY or mqtt is not None)
        longest = max(
            settings.smtp.timeout, settings.support_webhook.timeout, settings.apprise_timeout
        )
        # aiosmtplib's timeout is per SMTP command; bound one whole delivery as well.
        self._deadline_s = 3 * longest
        self._lease_s = self._deadline_s + _LEASE_MARGIN_S
        self._woken = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unrecorded: list[_Outcome] = []
        self._followups_at = -math.inf

    def wake(self) -> None:
        """Deliver now rather than at the next poll (new rows were committed). Thread-safe."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._woken.set)
        else:
            self._woken.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver in rounds until ``stop`` is set; the round in progress is finished first."""
        self._loop = asyncio.get_running_loop()
        failures = 0
        while not stop.is_set():
            pause = self._settings.poll_seconds
            try:
                await self.deliver_due()
                failures = 0
            except SQLAlchemyError as exc:
                failures += 1
                pause = min(_DB_RETRY_MAX_S, self._settings.poll_seconds * 2**failures)
                log.error(
                    "outbox unreachable; will retry",
                    extra={"error": str(exc).splitlines()[0], "retry_in_s": pause},
                )
            except Exception:
                failures += 1
                pause = min(_DB_RETRY_MAX_S, self._settings.poll_seconds * 2**failures)
                log.exception("outbox round failed; will retry", extra={"retry_in_s": pause})
            await self._pause(stop, pause)

    async def deliver_due(self) -> int:
        """Claim the due rows (in batches of 20), deliver them, record each outcome.

        Returns how many notifications were sent. Raises ``SQLAlchemyError`` if the database
        cannot be reached for the claim; a failing channel never raises.
        """
        await self._record_unrecorded()
        now = self._clock()
        if now - self._followups_at >= _FOLLOWUPS_EVERY_S:
            await asyncio.to_thread(self._enqueue_followups, now)
            self._followups_at = now
        sent = 0
        rows = await asyncio.to_thread(self._claim, self._clock())
        if rows:
            async with httpx.AsyncClient() as client:
                while rows:
                    outcomes = await asyncio.gather(*(self._deliver(client, r) for r in rows))
                    sent += sum(
                        1 for outcome in outcomes if outcome is not None and outcome.delivered
                    )
                    # Only a full batch can have left due rows behind; stopping at a partial
                    # one keeps a fast-failing row from being retried within one round.
                    more = len(rows) == _BATCH
                    rows = await asyncio.to_thread(self._claim, self._clock()) if more else []
        await asyncio.to_thread(self._count_pending)
        return sent

    async def _pause(self, stop: asyncio.Event, seconds: float) -> None:
        waits = {asyncio.create_task(self._woken.wait()), asyncio.create_task(stop.wait())}
        _, pending = await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self._woken.clear()

    def _enqueue_followups(self, now: float) -> None:
        with Session(self._engine) as session:
            try:
                added = enqueue_due_followups(session, self._settings, now)
            except SQLAlchemyError:
                raise
            except Exception:
                # A template or data error in one follow-up must not hold back deliveries.
                log.exception("could not queue reminders or surveys; will try again")
                return
            if added:
                session.commit()

    def _claim(self, now: float) -> list[_Claimed]:
        due = (
            select(Outbox.id)
            .where(
                col(Outbox.status) == "pending",
                col(Outbox.next_attempt_at) <= now,
                col(Outbox.channel).in_(self._channels),
            )
            .order_by(col(Outbox.next_attempt_at), col(Outbox.id))
            .limit(_BATCH)
            .with_for_update(skip_locked=True)
        )
        with Session(self._engine) as session:
            ids = list(session.exec(due))
            if not ids:
                return []
            # Re-checking "still due" makes the claim a compare-and-set: of two dispatchers
            # that read the same rows, only one moves them.
            lease = (
                update(Outbox)
                .where(
                    col(Outbox.id).in_(ids),
                    col(Outbox.status) == "pending",
                    col(Outbox.next_attempt_at) <= now,
                )
                .values(next_attempt_at=now + self._lease_s)
                .returning(col(Outbox.id))
            )
            claimed = set(session.exec(lease).scalars())
            rows = list(session.exec(select(Outbox).where(col(Outbox.id).in_(claimed))))
            session.commit()
            return [_detach(row) for row in rows]

    async def _deliver(self, client: httpx.AsyncClient, row: _Claimed) -> _Outcome | None:
        """Send ``row`` and record the outcome; None if it was held back for quiet hours."""
        quiet = row.payload.get("quiet")
        wake = quiet and quiet_until(quiet["hours"], quiet["timezone"], self._clock())
        if wake:
            await asyncio.to_thread(self._defer, row, wake)
            return None
        outcome = _Outcome(row, await self._send(client, row))
        try:
            await asyncio.to_thread(self._record, outcome)
        except SQLAlchemyError as exc:
            self._unrecorded.append(outcome)
            log.error(
                "could not record a delivery outcome; will record it next round",
                extra={"outbox_id": row.id, "error": str(exc).splitlines()[0]},
            )
        return outcome

    async def _send(self, client: httpx.AsyncClient, row: _Claimed) -> DeliveryError | None:
        try:
            async with asyncio.timeout(self._deadline_s):
                await self._send_on_channel(client, row)
        except DeliveryError as exc:
            return exc
        except TimeoutError:
            return DeliveryError(f"{row.channel} delivery took over {self._deadline_s:g}s")
        except Exception as exc:
            # A bug or a malformed payload: retried and finally dead, never fatal to the loop.
            log.exception("unexpected delivery error", extra={"outbox_id": row.id})
            return DeliveryError(f"unexpected error: {exc!r}")
        return None

    async def _send_on_channel(self, client: httpx.AsyncClient, row: _Claimed) -> None:
        settings = self._settings
        if row.channel == EMAIL:
            await send_email(settings.smtp, row.recipient, row.payload, row.language, self._clock())
        elif row.channel == WEBHOOK:
            await post_webhook(client, settings.support_webhook, row.recipient, row.id, row.payload)
        elif row.channel == APPRISE:
            await send_apprise(row.recipient.split(), row.payload, settings.apprise_timeout)
        elif row.channel == SUPPORT_APPRISE:
            await send_apprise(settings.support_apprise_urls, row.payload, settings.apprise_timeout)
        elif row.channel == DISPLAY and self._mqtt is not None:
            command = {k: v for k, v in row.payload.items() if k != "quiet"}
            await publish_display_message(self._mqtt, row.recipient, row.id, command)
        else:
            raise DeliveryError(f"no way to deliver on channel {row.channel!r}", permanent=True)

    def _defer(self, row: _Claimed, until: float) -> None:
        with Session(self._engine) as session:
            session.exec(
                update(Outbox)
                .where(col(Outbox.id) == row.id, col(Outbox.status) == "pending")
                .values(next_attempt_at=until)
            )
            session.commit()
        log.info(
            "notification held until the customer's quiet hours end",
            extra={"outbox_id": row.id, "case_id": row.case_id, "until": until},
        )

    async def _record_unrecorded(self) -> None:
        pending, self._unrecorded = self._unrecorded, []
        for index, outcome in enumerate(pending):
            try:
                await asyncio.to_thread(self._record, outcome)
            except SQLAlchemyError:
                self._unrecorded.extend(pending[index:])
                raise

    def _record(self, outcome: _Outcome) -> None:
        if outcome.error is None:
            self._record_sent(outcome.row)
        else:
            self._record_failure(outcome.row, outcome.error)

    def _record_sent(self, row: _Claimed) -> None:
        now = self._clock()
        with Session(self._engine) as session:
            marked = session.exec(
                update(Outbox)
                .where(col(Outbox.id) == row.id, col(Outbox.status) == "pending")
                .values(status="sent", sent_at=now, attempts=row.attempts + 1, last_error="")
            )
            if marked.rowcount == 0:
                log.warning("outbox row was already settled", extra={"outbox_id": row.id})
                return
            detail = {
                "outbox_id": row.id,
                "channel": row.channel,
                "purpose": row.purpose,
                "recipient": _shown_recipient(row),
                "attempts": row.attempts + 1,
            }
            if row.case_id is not None:
                event = CaseEvent(
                    case_id=row.case_id, at_wall=now, kind=_sent_event(row), detail=detail
                )
                session.add(event)
                if row.channel in CUSTOMER_CHANNELS and row.purpose != SURVEY:
                    self._first_response(session, row.case_id, now, detail)
            session.commit()
        NOTIFICATIONS.labels(row.channel, "sent").inc()
        log.info(
            "notification sent",
            extra={
                "outbox_id": row.id,
                "case_id": row.case_id,
                "incident_id": row.incident_id,
                "channel": row.channel,
                "attempts": row.attempts + 1,
            },
        )

    @staticmethod
    def _first_response(session: Session, case_id: int, now: float, detail: dict[str, Any]) -> None:
        """The customer has been told: stamp the first response and move the case on (a no-op
        for a reminder, which only follows a first response)."""
        case = session.get(Case, case_id)
        if case is None:
            return
        if case.notified_at is None:
            case.notified_at = now
            session.add(case)
        if case.status == "open":
            transition(session, case, "notified", actor=MONITOR_ACTOR, at=now, detail=detail)

    def _record_failure(self, row: _Claimed, error: DeliveryError) -> None:
        now = self._clock()
        attempts = row.attempts + 1
        dead = error.permanent or attempts >= self._settings.max_attempts
        delay = retry_delay(
            attempts, self._settings.retry_base_seconds, self._settings.retry_max_seconds, row.id
        )
        alerts = 0
        with Session(self._engine) as session:
            marked = session.exec(
                update(Outbox)
                .where(col(Outbox.id) == row.id, col(Outbox.status) == "pending")
                .values(
                    status="dead" if dead else "pending",
                    attempts=attempts,
                    last_error=str(error)[:1000],
                    next_attempt_at=now if dead else now + delay,
                )
            )
            if dead and marked.rowcount:
                alerts = self._bury(session, row, attempts, error, now)
            session.commit()
        NOTIFICATIONS.labels(row.channel, "dead" if dead else "retry").inc()
        fields = {
            "outbox_id": row.id,
            "case_id": row.case_id,
            "incident_id": row.incident_id,
            "channel": row.channel,
            "purpose": row.purpose,
            "attempts": attempts,
            "error": str(error),
        }
        if dead:
            DEAD_LETTERS.labels(row.channel).inc()
            log.error("dead letter: notification given up", extra={**fields, "alerts": alerts})
            if alerts:
                self.wake()
        else:
            log.warning("notification failed; will retry", extra={**fields, "retry_in_s": delay})

    def _bury(
        self, session: Session, row: _Claimed, attempts: int, error: DeliveryError, now: float
    ) -> int:
        """Record the dead letter on its case and queue support's alerts; returns how many."""
        if row.case_id is not None:
            session.add(
                CaseEvent(
                    case_id=row.case_id,
                    at_wall=now,
                    kind="notification_failed",
                    detail={
                        "outbox_id": row.id,
                        "channel": row.channel,
                        "purpose": row.purpose,
                        "recipient": _shown_recipient(row),
                        "attempts": attempts,
                        "error": str(error)[:1000],
                    },
                )
            )
        dead = session.get(Outbox, row.id)
        assert dead is not None
        return len(enqueue_dead_letter_alert(session, dead, self._settings, now))

    def _count_pending(self) -> None:
        with Session(self._engine) as session:
            count = session.exec(
                select(func.count()).select_from(Outbox).where(col(Outbox.status) == "pending")
            ).one()
        OUTBOX_PENDING.set(count)


def _sent_event(row: _Claimed) -> str:
    if row.channel not in CUSTOMER_CHANNELS:
        return "support_notified"
    return "survey_delivered" if row.purpose == SURVEY else CUSTOMER_NOTIFIED


def _shown_recipient(row: _Claimed) -> str:
    """The recipient as it may be stored in an event: Apprise URLs carry credentials."""
    return "apprise" if row.channel in (APPRISE, SUPPORT_APPRISE) else row.recipient


def _detach(row: Outbox) -> _Claimed:
    assert row.id is not None
    return _Claimed(
        id=row.id,
        case_id=row.case_id,
        incident_id=row.incident_id,
        channel=row.channel,
        purpose=row.purpose,
        recipient=row.recipient,
        language=row.language,
        payload=dict(row.payload),
        attempts=row.attempts,
    )
