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
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from monitor.config import NotifySettings
from monitor.metrics import NOTIFICATIONS, OUTBOX_PENDING
from monitor.notify.email import send_email
from monitor.notify.errors import DeliveryError
from monitor.notify.outbox import EMAIL, WEBHOOK
from monitor.notify.retry import retry_delay
from monitor.notify.webhook import post_webhook
from monitor.store import Case, CaseEvent, Outbox

log = logging.getLogger(__name__)

CHANNELS = (EMAIL, WEBHOOK)
"""Channels this dispatcher delivers; rows for other channels are left to whoever can."""

_BATCH = 20
"""Rows claimed per round; all of them are delivered concurrently."""
_LEASE_MARGIN_S = 60.0
_DB_RETRY_MAX_S = 30.0
_SENT_EVENT = {EMAIL: "customer_notified", WEBHOOK: "support_notified"}


@dataclass(frozen=True)
class _Claimed:
    """An outbox row taken out of the session, so delivery never touches the database."""

    id: int
    case_id: int
    channel: str
    recipient: str
    language: str
    payload: dict[str, Any]
    attempts: int


@dataclass(frozen=True)
class _Outcome:
    row: _Claimed
    error: DeliveryError | None  # None: delivered


class Dispatcher:
    """Delivers due outbox rows by email and webhook, with retries, until told to stop.

    ``engine`` is the monitor's database; ``settings`` the ``[notify]`` section; ``clock``
    returns wall-clock epoch seconds and is replaceable so tests can move time forward
    instead of sleeping through backoffs.
    """

    def __init__(
        self, engine: Engine, settings: NotifySettings, clock: Callable[[], float] = time.time
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._clock = clock
        longest = max(settings.smtp.timeout, settings.support_webhook.timeout)
        # aiosmtplib's timeout is per SMTP command; bound one whole delivery as well.
        self._deadline_s = 3 * longest
        self._lease_s = self._deadline_s + _LEASE_MARGIN_S
        self._woken = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unrecorded: list[_Outcome] = []

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
        sent = 0
        rows = await asyncio.to_thread(self._claim, self._clock())
        if rows:
            async with httpx.AsyncClient() as client:
                while rows:
                    outcomes = await asyncio.gather(*(self._deliver(client, r) for r in rows))
                    sent += sum(1 for outcome in outcomes if outcome.error is None)
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

    def _claim(self, now: float) -> list[_Claimed]:
        due = (
            select(Outbox.id)
            .where(
                col(Outbox.status) == "pending",
                col(Outbox.next_attempt_at) <= now,
                col(Outbox.channel).in_(CHANNELS),
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

    async def _deliver(self, client: httpx.AsyncClient, row: _Claimed) -> _Outcome:
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
                if row.channel == EMAIL:
                    await send_email(
                        self._settings.smtp, row.recipient, row.payload, row.language, self._clock()
                    )
                else:
                    await post_webhook(
                        client, self._settings.support_webhook, row.recipient, row.id, row.payload
                    )
        except DeliveryError as exc:
            return exc
        except TimeoutError:
            return DeliveryError(f"{row.channel} delivery took over {self._deadline_s:g}s")
        except Exception as exc:
            # A bug or a malformed payload: retried and finally dead, never fatal to the loop.
            log.exception("unexpected delivery error", extra={"outbox_id": row.id})
            return DeliveryError(f"unexpected error: {exc!r}")
        return None

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
            session.add(
                CaseEvent(
                    case_id=row.case_id,
                    at_wall=now,
                    kind=_SENT_EVENT[row.channel],
                    detail={
                        "outbox_id": row.id,
                        "channel": row.channel,
                        "recipient": row.recipient,
                        "attempts": row.attempts + 1,
                    },
                )
            )
            if row.channel == EMAIL:
                session.exec(
                    update(Case)
                    .where(col(Case.id) == row.case_id, col(Case.status) == "open")
                    .values(status="notified")
                )
            session.commit()
        NOTIFICATIONS.labels(row.channel, "sent").inc()
        log.info(
            "notification sent",
            extra={
                "outbox_id": row.id,
                "case_id": row.case_id,
                "channel": row.channel,
                "attempts": row.attempts + 1,
            },
        )

    def _record_failure(self, row: _Claimed, error: DeliveryError) -> None:
        now = self._clock()
        attempts = row.attempts + 1
        dead = error.permanent or attempts >= self._settings.max_attempts
        delay = retry_delay(
            attempts, self._settings.retry_base_seconds, self._settings.retry_max_seconds, row.id
        )
        with Session(self._engine) as session:
            session.exec(
                update(Outbox)
                .where(col(Outbox.id) == row.id, col(Outbox.status) == "pending")
                .values(
                    status="dead" if dead else "pending",
                    attempts=attempts,
                    last_error=str(error)[:1000],
                    next_attempt_at=now if dead else now + delay,
                )
            )
            if dead:
                session.add(
                    CaseEvent(
                        case_id=row.case_id,
                        at_wall=now,
                        kind="notification_failed",
                        detail={
                            "outbox_id": row.id,
                            "channel": row.channel,
                            "recipient": row.recipient,
                            "attempts": attempts,
                            "error": str(error)[:1000],
                        },
                    )
                )
            session.commit()
        NOTIFICATIONS.labels(row.channel, "dead" if dead else "retry").inc()
        fields = {
            "outbox_id": row.id,
            "case_id": row.case_id,
            "channel": row.channel,
            "attempts": attempts,
            "error": str(error),
        }
        if dead:
            log.error("notification given up", extra=fields)
        else:
            log.warning("notification failed; will retry", extra={**fields, "retry_in_s": delay})

    def _count_pending(self) -> None:
        with Session(self._engine) as session:
            count = session.exec(
                select(func.count()).select_from(Outbox).where(col(Outbox.status) == "pending")
            ).one()
        OUTBOX_PENDING.set(count)


def _detach(row: Outbox) -> _Claimed:
    assert row.id is not None
    return _Claimed(
        id=row.id,
        case_id=row.case_id,
        channel=row.channel,
        recipient=row.recipient,
        language=row.language,
        payload=dict(row.payload),
        attempts=row.attempts,
    )
