"""Checkpoints stored on the writer's thread: restart safety and retry after a failure."""

from __future__ import annotations

import gc
import json
import time
import weakref

import pytest
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

import monitor.checkpoint
from monitor.config import DatabaseSettings, DetectSettings, Settings
from monitor.heap import QuietCollector
from monitor.ingest import RawMessage
from monitor.pipeline import Pipeline
from monitor.store import Device, DeviceState, open_database

START = time.time() - 86400


def pipeline(url: str, checkpoint_seconds: float = 30.0) -> Pipeline:
    settings = Settings(
        database=DatabaseSettings(url=url),
        detect=DetectSettings(checkpoint_seconds=checkpoint_seconds),
    )
    return Pipeline(settings, open_database(url), [], notify=False)


def messages(device: str, count: int, first: int = 0) -> list[RawMessage]:
    return [
        RawMessage(
            f"devices/{device}/telemetry",
            json.dumps({"ts": START + i * 300, "seq": i, "metrics": {"p": 3.0}}).encode(),
            0.0,
        )
        for i in range(first, first + count)
    ]


def saved(url: str, device_id: str) -> tuple[DeviceState | None, Device | None]:
    with Session(open_database(url)) as session:
        return session.get(DeviceState, device_id), session.get(Device, device_id)


def test_periodic_checkpoint_written_in_the_background_survives_a_restart(
    sqlite_url: str,
) -> None:
    first = pipeline(sqlite_url, checkpoint_seconds=1e-6)
    first.process(messages("berlin", 5))
    first.process(messages("london", 3))
    first.close()  # waits for the checkpoint in flight
    state, device = saved(sqlite_url, "berlin")
    assert state is not None
    assert device is not None
    assert (device.last_ts, device.last_seq) == (START + 4 * 300, 4)
    restarted = pipeline(sqlite_url)
    assert restarted.detect.learned_samples("berlin")["p"] == 5
    # Admission remembers the progress: a replayed message is a duplicate, not new data.
    work = restarted.compute(messages("berlin", 1, first=4))
    assert work.admitted.telemetry == []


def test_devices_of_a_checkpoint_that_failed_in_the_background_go_into_the_next(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable(*_: object) -> None:
        raise OperationalError("INSERT", {}, Exception("database is away"))

    monkeypatch.setattr(monitor.checkpoint, "save", unavailable)
    live = pipeline(sqlite_url, checkpoint_seconds=1e-6)
    live.process(messages("berlin", 5))
    monkeypatch.undo()
    assert saved(sqlite_url, "berlin")[0] is None
    # No new message from berlin since: only the failure brings it into this checkpoint.
    assert live.checkpoint() == 1
    state, device = saved(sqlite_url, "berlin")
    assert state is not None
    assert device is not None
    assert device.last_seq == 4


class _Node:
    def __init__(self) -> None:
        self.me = self


def test_quiet_collector_skips_survivors_until_its_full_pass_reclaims_frozen_cycles() -> None:
    now = [0.0]
    collector = QuietCollector(freeze_every=10.0, full_every=100.0, clock=lambda: now[0])
    gc.unfreeze()
    try:
        cycle = _Node()
        alive = weakref.ref(cycle)
        collector.between_batches()
        frozen = gc.get_freeze_count()
        assert frozen > 0
        del cycle
        gc.collect()
        assert alive() is not None  # frozen: ordinary passes skip it
        now[0] = 5.0
        collector.between_batches()
        assert gc.get_freeze_count() == frozen  # the next freeze is not due yet
        now[0] = 100.0
        collector.between_batches()
        assert alive() is None
        assert gc.get_freeze_count() > 0  # what is left is frozen again
    finally:
        gc.unfreeze()
