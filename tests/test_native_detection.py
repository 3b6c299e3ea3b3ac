"""The compiled detection is the source's detection: same signals, same state, same doctests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.detect import native

ROOT = Path(__file__).resolve().parents[1]

# Runs in a child process, so that it can import detection compiled or from source.
_REPLAY = """
import json, sys
from monitor.config import Settings
from monitor.detect import DetectStage, native
from monitor.ingest import Telemetry
from simulators.fleet import build_fleet
fleet = build_fleet(3, 12, 4.0, step=300.0, start=1.7e9)
stage = DetectStage(Settings().detect)
signals = []
batch = [Telemetry(r.device_id, r.ts, r.metrics, r.seq, r.fw, r.model) for r in fleet.readings()]
for first in range(0, len(batch), 500):
    for s in stage.run(batch[first : first + 500]):
        signals.append([s.device_id, s.deviation, sorted(s.extra.items())])
state = {k: v.hex() for k, v in stage.checkpoint().items()}
json.dump({"compiled": native.COMPILED, "signals": signals, "state": state}, sys.stdout)
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


@pytest.mark.skipif(not native.COMPILED, reason=f"detection not compiled: {native.WHY_NOT}")
def test_compiled_detection_gives_the_same_signals_and_state_as_its_source() -> None:
    compiled, source = _replay("1"), _replay("0")
    assert (compiled["compiled"], source["compiled"]) == (True, False)
    assert any(deviation for _, deviation, _ in source["signals"])  # type: ignore[attr-defined]
    assert compiled["signals"] == source["signals"]
    assert compiled["state"] == source["state"]


def test_detection_doctests_pass_from_source() -> None:
    env = {**os.environ, "MONITOR_NATIVE": "0"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "monitor/detect"],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    assert b" passed" in done.stdout


def test_a_compiled_copy_runs_only_while_it_matches_its_sources() -> None:
    assert native.choose("abc", "abc", compiled=True, env=None) == (True, "")
    stale, why = native.choose("abc", "def", compiled=True, env=None)
    assert not stale
    assert "older than the sources" in why
    assert native.choose(None, "abc", compiled=True, env=None)[0] is False
    assert native.choose("abc", "abc", compiled=True, env="0") == (False, "MONITOR_NATIVE=0")
    assert native.choose("abc", "abc", compiled=False, env=None)[0] is False


def test_an_edited_module_runs_from_source_not_from_its_stale_compiled_copy(tmp_path: Path) -> None:
    # The decision on a copy of the package's sources: an edit changes the digest.
    sources = native.compiled_sources()
    before = native.digest(sources)
    copies = []
    for source in sources:
        copy = tmp_path / source.name
        copy.write_bytes(source.read_bytes())
        copies.append(copy)
    assert native.digest(copies) == before
    copies[0].write_bytes(copies[0].read_bytes() + b"# edited\n")
    assert native.choose(before, native.digest(copies), compiled=True, env=None)[0] is False
