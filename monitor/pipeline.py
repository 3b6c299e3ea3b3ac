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
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, select

from monitor.cases import CaseOpener
from monitor.cases.feedback import verdicts_since
from monitor.cases.noise import NoiseControl, count_suppressed
from monitor.checkpoint import CheckpointWriter, Progress, Round, Snapshot, save
from monitor.config import Settings
from monitor.detect import DetectStage, SignalSet
from monitor.ingest import Admission, Admitted, Decoder, Message, Telemetry
from monitor.ingest.records import count_and_log, load_known_devices, record_admission
from monitor.metrics import (
    BATCH_SIZE,
    CASES_OPENED,
    DEVICES,
    EVENT_LAG,
    MESSAGES,
    PROCESSING_LATENCY,
)
from monitor.store import DeviceState
from rules import Alarm, Cleared, Rule, RuleEngine
from rules.attributes import AttributeBook

log = logging.getLogger(__name__)
_SILENCE_CHECK_S = 60.0

_RULES_KEY = "__rules__"
"""The rules engine's progress is checkpointed as one row next to the devices' detectors."""
_FEEDBACK_KEY = "__feedback__"
"""The newest false-alarm event detection has learned from, so a restart neither misses nor
repeats one."""
_PIPELINE_KEYS = frozenset({_RULES_KEY, _FEEDBACK_KEY})
_ROUND_SHARE = 0.5
"""A periodic checkpoint is serialised within this share of ``checkpoint_seconds``, so a
device's saved state is at most about one and a half intervals old."""


@dataclass(slots=True)
class BatchWork:
    """A batch after the in-memory stages, waiting to be committed."""

    messages: Sequence[Message]
    admitted: Admitted
    signals: list[SignalSet]
    """One per accepted telemetry message, in the same order as ``admitted.telemetry``."""
    alarms: list[Alarm]
    cleared: list[Cleared]
    """Rules whose clear condition held: the open case they opened records it."""


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
        self,
        settings: Settings,
        engine: Engine,
        rules: list[Rule],
        *,
        notify: bool = True,
        clock: Callable[[], float] = time.time,
        event_clock: bool = False,
    ) -> None:
        """``notify=False`` opens cases without queueing notifications (backtests); ``clock``
        stamps cases, incidents and suppressions and decides when their messages fall due
        (a simulation passes its simulated clock). ``event_clock``: silence is judged on the
        newest message's time (a backtest), not on when devices were last heard (live)."""
        self._settings = settings
        self._engine = engine
        self.decoder = Decoder(
            settings.mqtt.topic_prefix,
            settings.ingest.max_payload_bytes,
            settings.ingest.max_future_seconds,
        )
        self.admission = Admission(load_known_devices(engine), settings.ingest.require_registration)
        self.detect = DetectStage(settings.detect, silence_on_receipt=not event_clock)
        self.attributes = AttributeBook(engine)
        self.rules = RuleEngine(rules, self.attributes.get)
        self.noise = NoiseControl(settings.noise, self.rules, clock)
        self.cases = CaseOpener(settings.notify, enqueue=notify, clock=clock)
        self._touched: set[str] = set()
        self._feedback_cursor = 0
        self.event_clock = event_clock
        """True in a backtest: time is the messages' own, so silence is judged on it."""
        self._silence_checked = float("-inf")
        self._last_checkpoint = time.monotonic()
        self._round: Round | None = None
        self._writer = CheckpointWriter(engine)
        self._restore()

    def compute(self, messages: Sequence[Message], now: float | None = None) -> BatchWork:
        """Run the in-memory stages over one batch: as delivered by the broker, or already
        parsed (a replay; judged all the same)."""
        now = time.time() if now is None else now
        decoded = [d for m in messages if (d := self.decoder.decode(m, now)) is not None]
        admitted = self.admission.run(decoded)
        signals = self.detect.run(admitted.telemetry)
        events = self.rules.evaluate(signals, [t.metrics for t in admitted.telemetry])
        silent = self._silent(admitted.telemetry, now)
        events += self.rules.evaluate(silent)
        alarms = [e for e in events if isinstance(e, Alarm)]
        # Silent devices count too: many going quiet at once is one incident (a site or the
        # network), not a case per device.
        self.noise.observe(signals + silent)
        for alarm in alarms:
            # The chart behind the numbers: the metric's recent course against its band.
            alarm.evidence["series"] = self.detect.evidence_series(alarm.device_id)
        cleared = [e for e in events if isinstance(e, Cleared)]
        return BatchWork(messages, admitted, signals, alarms, cleared)

    def _silent(self, telemetry: list[Telemetry], now: float) -> list[SignalSet]:
        """Silence signals at most once a minute of the clock: event time (the newest
        message) in a backtest, the wall clock live."""
        clock = max((t.ts for t in telemetry), default=None) if self.event_clock else now
        if clock is None or clock - self._silence_checked < _SILENCE_CHECK_S:
            return []
        self._silence_checked = clock
        # A device with a message in this very batch is not silent, whatever its clock says.
        reporting = {t.device_id for t in telemetry}
        return [s for s in self.detect.silent(clock) if s.device_id not in reporting]

    def commit(self, work: BatchWork) -> list[OpenedCase]:
        """Write the batch's outcome in one transaction; raises if the database is away."""
        now = time.time()
        with Session(self._engine) as session:
            record_admission(session, work.admitted, now)
            alarms, suppressed = self.noise.run(session, work.alarms, work.signals)
            cases = self.cases.run(session, alarms)
            self.cases.record_cleared(session, work.cleared)
            self.cases.announce_incidents(session, suppressed)
            opened = [
                OpenedCase(c.id or 0, c.device_id, c.problem, c.rule, c.opened_at) for c in cases
            ]
            session.commit()
        # Counted and logged only once committed: a commit retried after a database outage
        # must not count the same batch twice.
        count_and_log(work.admitted)
        count_suppressed(suppressed)
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
        MESSAGES.inc(len(work.admitted.telemetry))
        BATCH_SIZE.observe(len(work.messages))
        if not self.event_clock:
            # A replay's messages were never received live: their latencies mean nothing,
            # and observing two per message costs a backtest several percent of its time.
            self._observe_latency(work)
        self._touched.update(m.device_id for m in work.admitted.telemetry)
        DEVICES.set(len(self.detect))
        self._checkpoint_when_due()
        return opened

    @staticmethod
    def _observe_latency(work: BatchWork) -> None:
        done = time.time()
        for message in work.messages:
            PROCESSING_LATENCY.observe(max(0.0, done - message.received))
        for telemetry in work.admitted.telemetry:
            EVENT_LAG.observe(max(0.0, done - telemetry.ts))

    def process(self, messages: Sequence[Message], now: float | None = None) -> list[OpenedCase]:
        """compute + commit, for callers that do not need to retry the commit separately."""
        return self.commit(self.compute(messages, now))

    def checkpoint(self) -> int:
        """Save detector state and ingest progress of every device changed since it was last
        saved, now (after any checkpoint still being stored in the background, and with the
        slices of one being taken); returns how many devices' detectors were saved. Raises
        if the database is away."""
        self._collect_checkpoint(wait=True)
        taken = self._round or Round(0, 0.0, 0.0)
        self._round = None
        self._last_checkpoint = time.monotonic()
        taken.add(self.detect.checkpoint(), self._progress(None), 0.0, 0.0)
        snapshot = self._snapshot(taken)
        try:
            save(self._engine, snapshot)
        except SQLAlchemyError:
            self._unsaved(snapshot)
            raise
        return _device_count(snapshot)

    def close(self) -> None:
        """Wait for a checkpoint being stored and stop its thread."""
        self._collect_checkpoint(wait=True)
        self._writer.close()

    def _checkpoint_when_due(self) -> None:
        """Every ``checkpoint_seconds``: learn from feedback and begin a round; between every
        two batches: serialise its next slice; once all are, store the snapshot on the
        writer's thread while processing goes on."""
        self._collect_checkpoint(wait=False)
        now = time.monotonic()
        if self._round is None:
            interval = self._settings.detect.checkpoint_seconds
            if now - self._last_checkpoint < interval or self._writer.busy():
                return
            try:
                self.learn_from_feedback()
            except SQLAlchemyError as exc:
                log.error("feedback not read; will retry", extra={"error": str(exc)[:200]})
            self._last_checkpoint = now
            self._round = Round(self.detect.unsaved, now + interval * _ROUND_SHARE, now)
        self._take_slice(self._round, now)

    def _take_slice(self, taken: Round, now: float) -> None:
        began = time.perf_counter()
        states = self.detect.checkpoint(taken.slice_size(now))
        taken.add(states, self._progress(states), now, time.perf_counter() - began)
        if taken.remaining == 0 or self.detect.unsaved == 0:
            self._round = None
            self._writer.submit(self._snapshot(taken))

    def _collect_checkpoint(self, *, wait: bool) -> None:
        failure = self._writer.failed(wait=wait)
        if failure is not None:
            snapshot, error = failure
            self._unsaved(snapshot)
            # The batches themselves are committed: a failed checkpoint is retried next time.
            log.error("checkpoint failed; will retry", extra={"error": str(error)[:200]})

    def _progress(self, devices: dict[str, bytes] | None) -> Progress:
        """Ingest progress of ``devices`` (``None``: all) heard in committed batches since
        their last checkpoint, taken with their detectors' state so that the two agree."""
        heard = set(self._touched if devices is None else self._touched.intersection(devices))
        known = self.admission.known
        progress = {
            device_id: (memory.last_ts, memory.last_seq)
            for device_id in heard
            if (memory := known.get(device_id)) is not None
        }
        self._touched.difference_update(heard)
        return progress

    def _snapshot(self, taken: Round) -> Snapshot:
        """A round's slices and the pipeline's own rows; between batches, never during."""
        states = taken.states
        if any(not key.startswith("__") for key in states):
            states.update(self.detect.checkpoint_peers())
        rules_state = self.rules.checkpoint()
        if rules_state is not None:
            states[_RULES_KEY] = rules_state
        states[_FEEDBACK_KEY] = str(self._feedback_cursor).encode()
        return Snapshot(states, taken.progress, time.time())

    def _unsaved(self, snapshot: Snapshot) -> None:
        """A snapshot was not stored: its parts go into the next one."""
        self.detect.mark_unsaved(
            {k: b for k, b in snapshot.states.items() if k not in _PIPELINE_KEYS}
        )
        if _RULES_KEY in snapshot.states:
            self.rules.mark_unsaved()
        self._touched.update(snapshot.progress)

    def learn_from_feedback(self) -> int:
        """Support's verdicts since the last call. A false alarm: the device's current
        behaviour is healthy, so its detectors re-centre on it. A resolution: the product was
        repaired, and its behaviour from now on is learned afresh (its old baseline held the
        healthy level through the fault, but not everything a repair changes, and a band kept
        tight through the fault would call the repaired product a new problem). Returns how
        many verdicts were applied."""
        with Session(self._engine) as session:
            found = verdicts_since(session, self._feedback_cursor)
        for verdict in found:
            if verdict.kind == "false_alarm":
                self.detect.accept_as_normal(verdict.device_id)
                message = "false alarm: the device's current behaviour is learned as normal"
            else:
                self.detect.relearn(verdict.device_id)
                message = "case resolved: the repaired device is learned afresh"
            log.info(message, extra={"case_id": verdict.case_id, "device_id": verdict.device_id})
        if found:
            self._feedback_cursor = found[-1].event_id
        return len(found)

    def _restore(self) -> None:
        with Session(self._engine) as session:
            saved = {s.device_id: s.state for s in session.exec(select(DeviceState))}
        cursor = saved.pop(_FEEDBACK_KEY, None)
        if cursor is not None:
            self._feedback_cursor = int(cursor.decode())
        rules_state = saved.pop(_RULES_KEY, None)
        if rules_state is not None:
            self.rules.restore(rules_state)
        if saved:
            self.detect.restore(saved)
            log.info("restored detector state", extra={"devices": len(self.detect)})


def _device_count(snapshot: Snapshot) -> int:
    return sum(1 for key in snapshot.states if not key.startswith("__"))
