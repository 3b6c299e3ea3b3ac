"""The pipeline, composed in one place: ingest → detect → rules → cases (→ notify, via outbox).

Each stage takes a batch and returns what it lets through. The pure stages (decode, admit,
detect, rules) run first, in memory; then everything the batch changes in the database is
written in one transaction (:meth:`Pipeline.commit`). If the database is away, the daemon
retries that commit without re-running the stages, so no alarm is lost and nothing is
counted twice, and the broker keeps the unacknowledged messages meanwhile.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, select

from monitor.cases import CaseOpener
from monitor.config import Settings
from monitor.detect import DetectStage, SignalSet
from monitor.ingest import Admission, Admitted, Decoder, RawMessage, Telemetry
from monitor.ingest.records import (
    count_and_log,
    load_known_devices,
    record_admission,
    save_progress,
)
from monitor.metrics import (
    BATCH_SIZE,
    CASES_OPENED,
    DEVICES,
    EVENT_LAG,
    MESSAGES,
    PROCESSING_LATENCY,
)
from monitor.store import DeviceState
from rules import Alarm, Rule, RuleEngine

log = logging.getLogger(__name__)
_SILENCE_CHECK_S = 60.0


@dataclass(slots=True)
class BatchWork:
    """A batch after the in-memory stages, waiting to be committed."""

    messages: list[RawMessage]
    admitted: Admitted
    signals: list[SignalSet]
    """One per accepted telemetry message, in the same order as ``admitted.telemetry``."""
    alarms: list[Alarm]


@dataclass(frozen=True, slots=True)
class OpenedCase:
    case_id: int
    device_id: str
    problem: str
    rule: str
    opened_at: float


class Pipeline:
    """Owns the per-device state of every stage and runs batches through them in order."""

    def __init__(
        self, settings: Settings, engine: Engine, rules: list[Rule], *, notify: bool = True
    ) -> None:
        """``notify=False`` opens cases without queueing notifications (backtests)."""
        self._settings = settings
        self._engine = engine
        self.decoder = Decoder(
            settings.mqtt.topic_prefix,
            settings.ingest.max_payload_bytes,
            settings.ingest.max_future_seconds,
        )
        self.admission = Admission(load_known_devices(engine), settings.ingest.require_registration)
        self.detect = DetectStage(settings.detect)
        self.rules = RuleEngine(rules)
        self.cases = CaseOpener(settings.notify, enqueue=notify)
        self._touched: set[str] = set()
        self.event_clock = False
        """True in a backtest: time is the messages' own, so silence is judged on it."""
        self._silence_checked = float("-inf")
        self._last_checkpoint = time.monotonic()
        self._restore()

    def compute(self, messages: list[RawMessage], now: float | None = None) -> BatchWork:
        """Run the in-memory stages over one batch."""
        now = time.time() if now is None else now
        decoded = [d for m in messages if (d := self.decoder.decode(m, now)) is not None]
        admitted = self.admission.run(decoded)
        signals = self.detect.run(admitted.telemetry)
        alarms = self.rules.run(signals)
        alarms += self.rules.run(self._silent(admitted.telemetry, now))
        for alarm in alarms:
            # The chart behind the numbers: the metric's recent course against its band.
            alarm.evidence["series"] = self.detect.evidence_series(alarm.device_id)
        return BatchWork(messages, admitted, signals, alarms)

    def _silent(self, telemetry: list[Telemetry], now: float) -> list[SignalSet]:
        """Silence signals at most once a minute of the clock: event time (the newest
        message) in a backtest, the wall clock live."""
        self.detect.silence_on_receipt = not self.event_clock
        clock = max((t.ts for t in telemetry), default=None) if self.event_clock else now
        if clock is None or clock - self._silence_checked < _SILENCE_CHECK_S:
            return []
        self._silence_checked = clock
        return self.detect.silent(clock)

    def commit(self, work: BatchWork) -> list[OpenedCase]:
        """Write the batch's outcome in one transaction; raises if the database is away."""
        now = time.time()
        with Session(self._engine) as session:
            record_admission(session, work.admitted, now)
            cases = self.cases.run(session, work.alarms)
            opened = [
                OpenedCase(c.id or 0, c.device_id, c.problem, c.rule, c.opened_at) for c in cases
            ]
            session.commit()
        # Counted and logged only once committed: a commit retried after a database outage
        # must not count the same batch twice.
        count_and_log(work.admitted)
        for case in opened:
            CASES_OPENED.inc()
            log.info(
                "case opened",
                extra={
                    "case_id": case.case_id,
                    "device_id": case.device_id,
                    "problem": case.problem,
                    "rule": case.rule,
                    "opened_at": case.opened_at,
                },
            )
        done = time.time()
        MESSAGES.inc(len(work.admitted.telemetry))
        BATCH_SIZE.observe(len(work.messages))
        for message in work.messages:
            PROCESSING_LATENCY.observe(max(0.0, done - message.received))
        for telemetry in work.admitted.telemetry:
            EVENT_LAG.observe(max(0.0, done - telemetry.ts))
        self._touched.update(m.device_id for m in work.admitted.telemetry)
        DEVICES.set(len(self.detect))
        if time.monotonic() - self._last_checkpoint >= self._settings.detect.checkpoint_seconds:
            try:
                self.checkpoint()
            except SQLAlchemyError as exc:
                # The batch itself is committed: a failed checkpoint is retried next interval.
                log.error("checkpoint failed; will retry", extra={"error": str(exc)[:200]})
        return opened

    def process(self, messages: list[RawMessage], now: float | None = None) -> list[OpenedCase]:
        """compute + commit, for callers that do not need to retry the commit separately."""
        return self.commit(self.compute(messages, now))

    def checkpoint(self) -> int:
        """Save detector state and ingest progress of devices changed since the last one."""
        states = self.detect.checkpoint()
        now = time.time()
        try:
            with Session(self._engine) as session:
                for device_id, blob in states.items():
                    session.merge(DeviceState(device_id=device_id, saved_wall=now, state=blob))
                save_progress(session, self.admission.known, self._touched)
                session.commit()
        except SQLAlchemyError:
            self.detect.mark_unsaved(states)
            raise
        self._touched.clear()
        self._last_checkpoint = time.monotonic()
        return len(states)

    def _restore(self) -> None:
        with Session(self._engine) as session:
            saved = {s.device_id: s.state for s in session.exec(select(DeviceState))}
        if saved:
            self.detect.restore(saved)
            log.info("restored detector state", extra={"devices": len(self.detect)})
