"""A simulated fleet with its owners, once with the monitor (proactive) and once without.

The proactive run drives the monitor's real pipeline (:class:`monitor.pipeline.Pipeline`, with
the outbox) over the fleet's telemetry on the messages' own timestamps, delivers the outbox
through the real :class:`monitor.notify.dispatcher.Dispatcher` with the dispatcher's clock set
to simulated time, and lets :class:`~simulators.service_sim.CustomerLoop` act on what arrives.
A repaired device sends healthy telemetry from its repair on (the same device of a fault-free
twin fleet), as a fixed product would.

The pipeline runs on the simulated clock (one fleet step per batch), so the rows it writes
while opening a case are stamped at the step's end, and quiet hours are judged at that
simulated hour. Right after each commit they are moved to the case's own opening; a message
held for quiet hours keeps its wake-up time. Between steps, whatever falls due is delivered at
the moment it falls due, as the live dispatcher (polling every second) would.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from monitor.config import Settings
from monitor.ingest import RawMessage
from monitor.notify.dispatcher import Dispatcher
from monitor.pipeline import OpenedCase, Pipeline
from monitor.store import Case, CaseEvent, Outbox, open_database
from monitor.store.manifest import import_manifest
from rules import load_rules
from simulators.files import write_manifest
from simulators.fleet import Fleet, Reading, build_fleet, delivery_order
from simulators.publisher import telemetry_payload
from simulators.service_sim import CustomerLoop
from simulators.weather import DAY, HOUR

LINGER_DAYS = 21.0
"""How long owners and support go on after the telemetry ends, so that visits and surveys of
the last cases happen."""

Progress = Callable[[float, int], None]


_MAX_DUE_STEPS = 100
"""Bound on the due moments one step delivers at one by one (the rest go at its end)."""


class SimulatedClock:
    """The dispatcher's clock: simulated time, set by the run, then running at real speed.

    So a delivery's real duration (the SMTP conversation) counts in the first response time.
    """

    def __init__(self, at: float) -> None:
        self.set(at)

    def set(self, at: float) -> None:
        self._at = at
        self._wall = time.time()

    def __call__(self) -> float:
        return self._at + (time.time() - self._wall)


def prepare_database(fleet: Fleet, url: str, workdir: Path) -> Engine:
    """Open the database at ``url`` and import the fleet's devices and owners."""
    engine = open_database(url)
    manifest = workdir / "devices.csv"
    write_manifest(fleet.manifest_rows(), manifest)
    import_manifest(engine, manifest)
    return engine


_VERDICT_POLL_S = 3600.0
"""Simulated time between two readings of support's verdicts."""


async def run_proactive(
    fleet: Fleet,
    engine: Engine,
    settings: Settings,
    *,
    batch: int | None = None,
    linger_days: float = LINGER_DAYS,
    on_progress: Progress | None = None,
) -> CustomerLoop:
    """The fleet through the monitor with its owners acting; returns the owners' loop."""
    clock = SimulatedClock(fleet.start)
    pipeline = Pipeline(settings, engine, load_rules(settings.rules.dir), clock=clock)
    dispatcher = Dispatcher(engine, settings.notify, clock=clock)
    loop = CustomerLoop(fleet, engine)
    # Half a sample more, so that rounding cannot cost the twin its last sample.
    days = (fleet.samples + 0.5) * fleet.step / DAY
    twin = build_fleet(fleet.seed, len(fleet.devices), days, fleet.step, fleet.start, 0.0)
    done = 0
    # One sampling step of the fleet per batch by default: the monitor's clock (quiet hours,
    # first response) then moves in steps no coarser than a live monitor's would matter.
    size = batch or len(fleet.devices)
    previous = verdicts_at = fleet.start
    for messages, last_ts in _batches(fleet, twin, loop, settings.mqtt.topic_prefix, size):
        began = time.time()
        # The batch's cases are stamped as of its last message, then moved to their own
        # opening below (with the wait, quiet hours for one, that the outbox chose).
        clock.set(last_ts)
        opened = pipeline.commit(pipeline.compute(messages, now=last_ts))
        if opened:
            _move_to_simulated_time(engine, opened)
            for case in sorted(opened, key=lambda c: c.opened_at):
                # Delivered as a live monitor would: the real time it took, after the event.
                clock.set(case.opened_at + (time.time() - began))
                await dispatcher.deliver_due()
        await _deliver_through(engine, dispatcher, clock, previous, last_ts)
        previous = last_ts
        loop.advance(last_ts)
        if last_ts - verdicts_at >= _VERDICT_POLL_S:
            # A live daemon applies support's verdicts (a false alarm, a repair) within its
            # checkpoint interval, seconds; on wall-clock time here that would be days of the
            # simulation. So they are applied on simulated time.
            pipeline.learn_from_feedback()
            verdicts_at = last_ts
        done += len(messages)
        if on_progress is not None:
            on_progress(last_ts, done)
    pipeline.checkpoint()
    at = fleet.end
    while at < fleet.end + linger_days * DAY:
        await _deliver_through(engine, dispatcher, clock, at, at + HOUR)
        at += HOUR
        loop.advance(at)
    return loop


async def _deliver_through(
    engine: Engine, dispatcher: Dispatcher, clock: SimulatedClock, since: float, until: float
) -> None:
    """Deliver what falls due up to ``until`` at the moment each falls due (a message held
    for quiet hours goes out when they end), as the live dispatcher, polling every second,
    would; not all at the end of the simulated step."""
    for _ in range(_MAX_DUE_STEPS):
        with Session(engine) as session:
            due = session.exec(
                select(func.min(Outbox.next_attempt_at)).where(
                    col(Outbox.status) == "pending",
                    col(Outbox.next_attempt_at) > since,
                    col(Outbox.next_attempt_at) <= until,
                )
            ).one()
        if due is None:
            break
        since = due
        clock.set(due)
        await dispatcher.deliver_due()
    clock.set(until)
    await dispatcher.deliver_due()


def run_reactive(fleet: Fleet, engine: Engine, *, linger_days: float = LINGER_DAYS) -> CustomerLoop:
    """The same owners without a monitor: they call when they notice; returns the loop."""
    loop = CustomerLoop(fleet, engine)
    loop.advance(fleet.end + linger_days * DAY)
    return loop


def _batches(
    fleet: Fleet, twin: Fleet, loop: CustomerLoop, prefix: str, size: int
) -> Iterator[tuple[list[RawMessage], float]]:
    messages: list[RawMessage] = []
    last_ts = fleet.start
    for reading in delivery_order(fleet.readings(), fleet.truth()):
        sent = _repaired(reading, twin, loop.repaired_at.get(reading.device_id))
        topic = f"{prefix}/{reading.device_id}/telemetry"
        messages.append(RawMessage(topic, telemetry_payload(sent).encode(), time.time()))
        last_ts = max(last_ts, reading.ts)
        if len(messages) >= size:
            yield messages, last_ts
            messages = []
    if messages:
        yield messages, last_ts


def _repaired(reading: Reading, twin: Fleet, fixed_at: float | None) -> Reading:
    if fixed_at is None or reading.ts < fixed_at:
        return reading
    healthy = twin.series(reading.device_id).metrics
    metrics = {name: float(healthy[name][reading.seq - 1]) for name in reading.metrics}
    return dataclasses.replace(reading, metrics=metrics)


def _move_to_simulated_time(engine: Engine, opened: list[OpenedCase]) -> None:
    """Stamp each case opened in a batch at its own opening rather than the batch's end.

    A message held for quiet hours keeps its (absolute) wake-up time; any other falls due at
    the opening, as it would have in a live monitor that saw the batch as it came.
    """
    with Session(engine) as session:
        for opened_case in opened:
            case = session.get(Case, opened_case.case_id)
            if case is None:
                continue
            case.created_wall = case.opened_at
            session.add(case)
            events = select(CaseEvent).where(
                CaseEvent.case_id == case.id, CaseEvent.kind == "opened"
            )
            for event in session.exec(events):
                event.at_wall = case.opened_at
                session.add(event)
            rows = select(Outbox).where(Outbox.case_id == case.id, col(Outbox.status) == "pending")
            for row in session.exec(rows):
                held = row.next_attempt_at > row.created_wall
                row.created_wall = case.opened_at
                row.next_attempt_at = row.next_attempt_at if held else case.opened_at
                session.add(row)
        session.commit()


def align_to_simulated_time(engine: Engine) -> None:
    """Move what a live monitor stamped with the wall clock onto the fleet's simulated clock.

    For a fleet published faster than real time to a running daemon (the demo): each case's
    wall-clock rows (its ``created_wall``, events, outbox rows) are shifted by the same amount,
    so that they keep their distance from the case's opening (its event time).
    """
    with Session(engine) as session:
        for case in session.exec(select(Case)):
            shift = case.opened_at - case.created_wall
            case.created_wall += shift
            if case.notified_at is not None:
                case.notified_at += shift
            session.add(case)
            for event in session.exec(select(CaseEvent).where(CaseEvent.case_id == case.id)):
                event.at_wall += shift
                session.add(event)
            for row in session.exec(select(Outbox).where(Outbox.case_id == case.id)):
                row.created_wall += shift
                row.next_attempt_at += shift
                row.sent_at = None if row.sent_at is None else row.sent_at + shift
                session.add(row)
        session.commit()
