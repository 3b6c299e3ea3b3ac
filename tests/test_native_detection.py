"""The compiled detection and rules engine are their source's: same signals, same rule events,
same state, same doctests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from monitor import native

ROOT = Path(__file__).resolve().parents[1]

# Runs in a child process, so that it can import detection and rules compiled or from source.
_REPLAY = """
import json, sys
from monitor import native
from monitor.config import Settings
from monitor.detect import DetectStage
from monitor.ingest import Telemetry
from rules import RuleEngine, load_rules
from simulators.fleet import build_fleet
# Every device develops a fault, and over eight days rules fire on some of them.
fleet = build_fleet(3, 12, 8.0, step=300.0, start=1.7e9, fault_share=1.0)
settings = Settings()
stage = DetectStage(settings.detect)
engine = RuleEngine(load_rules(settings.rules.dir))
signals, events = [], []
batch = [Telemetry(r.device_id, r.ts, r.metrics, r.seq, r.fw, r.model) for r in fleet.readings()]
for first in range(0, len(batch), 500):
    messages = batch[first : first + 500]
    found = stage.run(messages)
    for s in found:
        signals.append([s.device_id, s.deviation, sorted(s.extra.items())])
    events.extend(repr(e) for e in engine.evaluate(found, [m.metrics for m in messages]))
json.dump(
    {
        "compiled": native.COMPILED,
        "signals": signals,
        "events": events,
        "state": {k: v.hex() for k, v in stage.checkpoint().items()},
        "rules": engine.checkpoint().hex(),
    },
    sys.stdout,
)
"""


def _replay(native_env: str) -> dict[str, object]:
    env = {**os.environ, "MONITOR_NATIVE": native_env}
    done = subprocess.run(
        [sys.executable, "-c", _REPLAY],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()
    result: dict[str, object] = json.loads(done.stdout)
    return result


@pytest.mark.skipif(not native.COMPILED, reason=f"not compiled: {native.WHY_NOT}")
def test_compiled_detection_and_rules_give_the_same_signals_events_and_state_as_source() -> None:
    compiled, source = _replay("1"), _replay("0")
    assert (compiled["compiled"], source["compiled"]) == (True, False)
    assert any(deviation for _, deviation, _ in source["signals"])  # type: ignore[attr-defined]
    assert source["events"]
    assert compiled["signals"] == source["signals"]
    assert compiled["events"] == source["events"]
    assert compiled["state"] == source["state"]
    assert compiled["rules"] == source["rules"]


def test_the_compiled_modules_doctests_pass_from_source() -> None:
    env = {**os.environ, "MONITOR_NATIVE": "0"}
    modules = [str(p.relative_to(ROOT)) for p in native.compiled_sources()]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *modules],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    assert b" passed" in done.stdout


def test_detection_and_the_rules_engine_are_compiled_as_one_group() -> None:
    names = {native.module_name(p) for p in native.compiled_sources()}
    assert {"monitor.detect.device_state", "monitor.detect.stage", "rules.engine"} <= names
    assert not names & {"monitor.detect", "monitor.native", "rules.model", "rules.loader"}


def test_a_compiled_copy_runs_only_while_it_matches_its_sources() -> None:
    assert native.choose("abc", "abc", compiled=True, env=None) == (True, "")
    stale, why = native.choose("abc", "def", compiled=True, env=None)
    assert not stale
    assert "older than the sources" in why
    assert native.choose(None, "abc", compiled=True, env=None)[0] is False
    assert native.choose("abc", "abc", compiled=True, env="0") == (False, "MONITOR_NATIVE=0")
    assert native.choose("abc", "abc", compiled=False, env=None)[0] is False


@pytest.mark.parametrize("edited", ["monitor/detect/base.py", "rules/engine.py"])
def test_an_edited_module_runs_from_source_not_from_its_stale_compiled_copy(
    tmp_path: Path, edited: str
) -> None:
    # The decision on a copy of the sources: an edit to any of them changes the one digest.
    sources = native.compiled_sources()
    before = native.digest(sources)
    copies = []
    for source in sources:
        copy = tmp_path / source.relative_to(ROOT)
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_bytes(source.read_bytes())
        copies.append(copy)
    assert native.digest(copies, root=tmp_path) == before
    changed = tmp_path / edited
    changed.write_bytes(changed.read_bytes() + b"# edited\n")
    after = native.digest(copies, root=tmp_path)
    assert native.choose(before, after, compiled=True, env=None)[0] is False
