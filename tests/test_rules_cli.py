"""``monitor rules check`` and ``monitor rules test`` from the command line."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

runner = CliRunner()
SHIPPED = Path(__file__).parent.parent / "rules"
START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC).timestamp()

HYSTERESIS = """\
rules:
  - name: pressure-high
    problem: pressure
    when: {signal: value, metric: pressure_bar, above: 5}
    clear: {signal: value, metric: pressure_bar, below: 4}
    for: 10m
"""


def invoke(*args: str) -> tuple[int, str]:
    from monitor.cli import app

    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_rules_check_accepts_the_shipped_rules() -> None:
    code, output = invoke("rules", "check", str(SHIPPED))
    assert code == 0, output
    assert "sustained-deviation" in output


def test_rules_check_prints_file_line_key_and_fix_and_exits_1(tmp_path: Path) -> None:
    (tmp_path / "ok.yaml").write_text(HYSTERESIS)
    bad = tmp_path / "zz-bad.yaml"
    bad.write_text(
        "rules:\n  - name: b\n    problem: p\n    when: {signal: value, metric: x, above: 1}\n"
        "    count: {times: 0, within: 10m}\n"
    )
    code, output = invoke("rules", "check", str(tmp_path))
    assert code == 1
    assert f"{bad}:5: key 'rules.0.count.times'" in output
    assert "Fix:" in output


def test_rules_test_prints_when_each_rule_opened_and_cleared(tmp_path: Path) -> None:
    rule_file = tmp_path / "pressure.yaml"
    rule_file.write_text(HYSTERESIS)
    telemetry = tmp_path / "telemetry.csv"
    # Every 5 minutes: normal, then high (dipping to 4.5, which must not clear), then low.
    values = [3.0] * 4 + [6.0, 4.5, 6.0, 4.5, 6.0] + [3.0] * 3
    rows = [f"p-1,{START + i * 300:.0f},{v}" for i, v in enumerate(values)]
    rows += [f"p-2,{START + i * 300:.0f},3.0" for i in range(len(values))]
    telemetry.write_text("device_id,ts,pressure_bar\n" + "\n".join(rows) + "\n")
    code, output = invoke("rules", "test", str(rule_file), "--telemetry", str(telemetry))
    assert code == 0, output
    lines = output.splitlines()
    assert lines[0] == (
        "p-1  pressure-high  opened 2026-01-05T08:30:00+00:00  "
        "cleared 2026-01-05T08:45:00+00:00  severity warning  "
        "condition since 2026-01-05T08:20:00+00:00"
    )
    assert lines[-1].startswith("1 openings of 1 rules")


def test_rules_test_refuses_a_broken_rule_file(tmp_path: Path) -> None:
    rule_file = tmp_path / "broken.yaml"
    rule_file.write_text("rules:\n  - name: a\n    problem: p\n    when: {signal: nope}\n")
    telemetry = tmp_path / "t.csv"
    telemetry.write_text("device_id,ts,x\n")
    code, output = invoke("rules", "test", str(rule_file), "--telemetry", str(telemetry))
    assert code == 1
    assert f"{rule_file}:4: key 'rules.0.when.signal'" in output


def test_rules_test_shows_escalations(tmp_path: Path) -> None:
    rule_file = tmp_path / "pressure.yaml"
    rule_file.write_text(HYSTERESIS + "    escalate: [{after: 20m, severity: critical}]\n")
    telemetry = tmp_path / "telemetry.jsonl"
    lines = [
        f'{{"device_id": "p-1", "ts": {START + i * 300:.0f}, "metrics": {{"pressure_bar": 6}}}}'
        for i in range(8)
    ]
    telemetry.write_text("\n".join(lines) + "\n")
    code, output = invoke("rules", "test", str(rule_file), "--telemetry", str(telemetry))
    assert code == 0, output
    assert output.splitlines()[0].endswith(
        "cleared (still open)  severity warning  condition since 2026-01-05T08:00:00+00:00"
        "  escalated to critical 2026-01-05T08:30:00+00:00"
    )
