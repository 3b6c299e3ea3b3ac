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
from monitor.checkpoint import Round
from monitor.config import DatabaseSettings, DetectSettings, Settings
from monitor.detect import DetectStage
from monitor.heap import QuietCollector
from monitor.ingest import RawMessage, Telemetry
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
    restarted.close()


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
    live.close()


def _stage_with(devices: list[str]) -> DetectStage:
    stage = DetectStage(DetectSettings())
    stage.run([Telemetry(d, START, {"p": 3.0}) for d in devices])
    return stage


def test_a_limited_checkpoint_takes_the_devices_unsaved_longest_first() -> None:
    stage = _stage_with(["a", "b", "c", "d"])
    stage.run([Telemetry("a", START + 300, {"p": 3.0})])  # changed again: keeps its place
    assert list(stage.checkpoint(limit=2)) == ["a", "b"]
    stage.run([Telemetry("a", START + 600, {"p": 3.0})])  # saved, then changed: last now
    assert list(stage.checkpoint(limit=2)) == ["c", "d"]
    assert stage.unsaved == 1


def test_devices_of_a_failed_checkpoint_come_first_in_the_next() -> None:
    stage = _stage_with(["a", "b", "c"])
    failed = stage.checkpoint(limit=2)
    stage.mark_unsaved(failed)
    assert list(stage.checkpoint(limit=3)) == ["a", "b", "c"]


def test_only_a_full_checkpoint_carries_the_fleet_peers_state() -> None:
    stage = _stage_with(["a", "b"])
    assert "__fleet_peers__" not in stage.checkpoint(limit=1)
    assert set(stage.checkpoint()) == {"b", "__fleet_peers__"}
    assert stage.checkpoint() == {}


def test_a_slice_is_a_few_milliseconds_of_work_more_when_behind_never_all_at_once() -> None:
    taken = Round(remaining=1000, deadline=10.0, last_slice=0.0)
    taken.add({"a": b""}, {}, now=0.01, took=0.001)  # 1 ms per device: 5 fit the budget
    assert taken.slice_size(now=0.02) == 5
    # 999 devices to go in 5 s with a gap every 0.1 s: 50 slices, 20 devices each.
    taken.deadline = 5.11
    assert taken.slice_size(now=0.11) == 20
    # Past the deadline: ten times the budget, late rather than one long pause.
    assert taken.slice_size(now=6.0) == 50
    taken.remaining = 30
    assert taken.slice_size(now=6.0) == 30


def test_a_periodic_checkpoint_is_taken_a_slice_per_batch_and_stored_whole(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Round, "slice_size", lambda _self, _now: 1)
    live = pipeline(sqlite_url, checkpoint_seconds=1e-6)
    live.process(messages("berlin", 2) + messages("london", 2) + messages("paris", 2))
    live.process([])
    live.close()
    assert saved(sqlite_url, "berlin")[0] is None  # two of three devices serialised: not yet
    live = pipeline(sqlite_url, checkpoint_seconds=1e-6)
    live.process(messages("berlin", 2) + messages("london", 2) + messages("paris", 2))
    for _ in range(3):
        live.process([])
    live.close()
    for device in ("berlin", "london", "paris", "__fleet_peers__", "__feedback__"):
        assert saved(sqlite_url, device)[0] is not None, device
    assert saved(sqlite_url, "paris")[1].last_seq == 1  # type: ignore[union-attr]


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
