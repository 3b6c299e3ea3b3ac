"""bench/evaluate.py: a small fleet through the benchmark's own code path."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import evaluate


def test_a_fleet_that_comes_online_at_another_hour_is_backtested_and_scored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # --start moves the fleet's first timestamp by twelve hours from the benchmark's own:
    # every device comes online at another hour of its day.
    start = evaluate.START + 12 * 3600.0
    result, truth, rows = evaluate.evaluate_seed(
        3, devices=8, days=2.0, workdir=tmp_path, start=start
    )
    assert truth["start"] == start
    assert {r["device_id"] for r in rows} <= set(truth["devices"])
    evaluate.report([(result, truth)])
    evaluate.report_details([(result, truth, rows)])
    printed = capsys.readouterr().out
    assert "seed 3: " in printed
    assert "rows/min" in printed
    assert "fault kind" in printed
    assert "false alarms: " in printed
    assert "healthy device-days" in printed
