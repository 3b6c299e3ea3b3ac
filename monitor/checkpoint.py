"""Saving the pipeline's in-memory progress (detectors, rules, feedback cursor, each device's
last accepted message) so that a restart resumes where it stopped.

A checkpoint is taken in two steps. :class:`Snapshot` is the pipeline's state serialised
between batches, so that it never races with one; a :class:`Round` gathers it a slice of
devices per gap between batches, because serialising thousands of devices at once held the
messages behind it for half a second. Storing it is plain database work on data nothing else
touches any more, so :class:`CheckpointWriter` does that on a thread of its own while the next
batches are processed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy import bindparam, delete, insert, update
from sqlalchemy.engine import Connection, Engine
from sqlmodel import col

from monitor.store import Device, DeviceState

_CHUNK = 500
"""Keys per ``IN (...)``: well inside every database's bound-parameter limit."""
_SLICE_BUDGET_S = 0.005
"""Serialising time per gap between batches: about what a message may wait for a checkpoint."""
_BEHIND_BUDGET_S = 0.05
"""The most serialising time per gap when a round is behind its deadline: past it, the round
is late rather than one batch waiting for all of it."""
_FIRST_GUESS_S = 0.0005
"""What serialising one device costs, until the round's first slice has measured it."""

Progress = dict[str, tuple[float | None, int | None]]
"""Last accepted (timestamp, sequence number) by device."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The pipeline's progress at one moment, already serialised."""

    states: dict[str, bytes]
    """Checkpoint rows by key: devices' detectors and the pipeline's own rows."""
    progress: Progress
    """Last accepted (timestamp, sequence number) of the devices heard since the last one."""
    taken_wall: float


@dataclass(slots=True)
class Round:
    """A checkpoint taken a slice of devices at a time, between batches.

    The devices unsaved when it began are serialised longest-unsaved first, about
    ``_SLICE_BUDGET_S`` of them per gap, up to ten times as many when the gaps are too few to
    be done by ``deadline`` at that rate; then the slices and the pipeline's own rows are one
    :class:`Snapshot`.
    """

    remaining: int
    """Devices still to serialise, of those unsaved when the round began."""
    deadline: float
    """Monotonic time by which all of them should be serialised."""
    last_slice: float
    """Monotonic time of the previous slice (or of the start)."""
    states: dict[str, bytes] = field(default_factory=dict)
    progress: Progress = field(default_factory=dict)
    device_cost: float = _FIRST_GUESS_S
    """Seconds to serialise one device, as the latest slice measured it."""

    def slice_size(self, now: float) -> int:
        """How many devices to serialise in this gap."""
        time_left = self.deadline - now
        wanted = _SLICE_BUDGET_S / self.device_cost
        if time_left <= 0:
            wanted = math.inf
        else:
            wanted = max(wanted, self.remaining * (now - self.last_slice) / time_left)
        most = _BEHIND_BUDGET_S / self.device_cost
        return min(self.remaining, max(1, math.ceil(min(wanted, most))))

    def add(self, states: dict[str, bytes], progress: Progress, now: float, took: float) -> None:
        """One slice: its serialised devices, their progress, and what serialising them took."""
        self.states.update(states)
        self.progress.update(progress)
        self.remaining = max(0, self.remaining - len(states))
        if states:
            self.device_cost = max(took / len(states), 1e-6)
        self.last_slice = now


def save(engine: Engine, snapshot: Snapshot) -> None:
    """Store a snapshot in one transaction: a few statements, however many devices."""
    with engine.begin() as connection:
        _replace_states(connection, snapshot)
        if snapshot.progress:
            connection.execute(
                update(Device)
                .where(col(Device.id) == bindparam("device"))
                .values(last_ts=bindparam("ts"), last_seq=bindparam("seq")),
                # In key order, as the ORM flushes a batch's device updates: two transactions
                # touching the same devices lock them in the same order, never in a cycle.
                [
                    {"device": device_id, "ts": ts, "seq": seq}
                    for device_id, (ts, seq) in sorted(snapshot.progress.items())
                ],
            )


def _replace_states(connection: Connection, snapshot: Snapshot) -> None:
    # Delete and insert rather than an upsert: the same two statements on every database.
    keys = sorted(snapshot.states)
    for chunk in _chunks(keys):
        connection.execute(delete(DeviceState).where(col(DeviceState.device_id).in_(chunk)))
    if keys:
        connection.execute(
            insert(DeviceState),
            [
                {"device_id": key, "saved_wall": snapshot.taken_wall, "state": snapshot.states[key]}
                for key in keys
            ],
        )


def _chunks(keys: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(keys), _CHUNK):
        yield keys[start : start + _CHUNK]


class CheckpointWriter:
    """Stores snapshots one at a time, in order, on its own thread.

    The outcome of a save is learned by the caller's thread through :meth:`failed`, so that
    whoever owns the state decides what to do about a snapshot that was not stored.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint")
        self._pending: tuple[Snapshot, Future[None]] | None = None

    def busy(self) -> bool:
        """A save is still running."""
        return self._pending is not None and not self._pending[1].done()

    def submit(self, snapshot: Snapshot) -> None:
        """Start storing ``snapshot``; the previous save must have been collected."""
        if self._pending is not None:
            raise RuntimeError("collect the previous checkpoint (failed()) before the next")
        self._pending = (snapshot, self._pool.submit(save, self._engine, snapshot))

    def failed(self, *, wait: bool = False) -> tuple[Snapshot, BaseException] | None:
        """Collect the finished save: the snapshot and error if it was not stored. A save
        still running is left alone unless ``wait``."""
        if self._pending is None or not (wait or self._pending[1].done()):
            return None
        snapshot, future = self._pending
        self._pending = None
        error = future.exception()
        return None if error is None else (snapshot, error)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
