"""Rule features on plain signals: counts, attributes, overrides, schedules, escalation,
raw values, clear events, and rule files that cannot run code."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from monitor.detect import MetricSignal, SignalSet
from rules import RuleEngine, RuleFileError, load_rule_file
from rules.engine import Alarm, Cleared
from rules.model import RuleFile

MINUTE = 60.0
HOUR = 3600.0
MONDAY_NOON = datetime(2026, 11, 23, 12, 0, tzinfo=UTC).timestamp()


def rule(**fields: Any) -> dict[str, Any]:
    return {"name": "r", "problem": "p", **fields}


def engine_of(
    *rules: dict[str, Any], attributes: dict[str, dict[str, str]] | None = None
) -> RuleEngine:
    parsed = list(RuleFile.model_validate({"rules": list(rules)}).rules)
    book = attributes or {}
    return RuleEngine(parsed, lambda device_id: book.get(device_id, {}))


def pressure(ts: float, value: float, device: str = "d1", model: str = "M1") -> SignalSet:
    return SignalSet(device, ts, model, {"pressure": MetricSignal(value, 3.0, 0.0)})


def test_condition_three_times_within_ten_minutes_fires() -> None:
    engine = engine_of(
        rule(
            when={"signal": "value", "metric": "pressure", "above": 5},
            count={"times": 3, "within": "10m"},
        )
    )
    # Three separate spikes 3 minutes apart: the third one fires, once.
    values = [6, 1, 6, 1, 6, 6, 1]
    alarms = engine.run([pressure(i * 1.5 * MINUTE, v) for i, v in enumerate(values)])
    assert len(alarms) == 1
    assert alarms[0].since == 0.0
    assert alarms[0].at == 4 * 1.5 * MINUTE


def test_three_times_spread_over_more_than_ten_minutes_does_not_fire() -> None:
    engine = engine_of(
        rule(
            when={"signal": "value", "metric": "pressure", "above": 5},
            count={"times": 3, "within": "10m"},
        )
    )
    values = [6, 1, 6, 1, 6, 1, 6, 1]
    assert engine.run([pressure(i * 3 * MINUTE, v) for i, v in enumerate(values)]) == []


def test_one_long_stretch_counts_as_one_occurrence() -> None:
    engine = engine_of(
        rule(
            when={"signal": "value", "metric": "pressure", "above": 5},
            count={"times": 2, "within": "1h"},
        )
    )
    assert engine.run([pressure(i * MINUTE, 6) for i in range(30)]) == []


def test_threshold_override_for_model() -> None:
    spec = rule(
        when={"signal": "value", "metric": "pressure", "above": "high"},
        thresholds={"high": 5.0},
        overrides=[{"model": "BIG", "thresholds": {"high": 8.0}}],
    )
    engine = engine_of(spec)
    alarms = engine.run([pressure(0, 6, "small-1", "M1"), pressure(0, 6, "big-1", "BIG")])
    assert [a.device_id for a in alarms] == ["small-1"]
    assert [a.device_id for a in engine.run([pressure(60, 9, "big-1", "BIG")])] == ["big-1"]


def test_threshold_override_for_device_beats_its_model() -> None:
    spec = rule(
        when={"signal": "value", "metric": "pressure", "above": "high"},
        thresholds={"high": 5.0},
        overrides=[
            {"device": "big-7", "thresholds": {"high": 12.0}},
            {"model": "BIG", "thresholds": {"high": 8.0}},
        ],
    )
    engine = engine_of(spec)
    batch = [pressure(0, 9, "big-1", "BIG"), pressure(0, 9, "big-7", "BIG")]
    assert [a.device_id for a in engine.run(batch)] == ["big-1"]


def test_model_override_uses_the_registered_model_when_messages_carry_none() -> None:
    spec = rule(
        when={"signal": "value", "metric": "pressure", "above": "high"},
        thresholds={"high": 5.0},
        overrides=[{"model": "BIG", "thresholds": {"high": 8.0}}],
    )
    engine = engine_of(spec, attributes={"big-1": {"model": "BIG"}})
    assert engine.run([pressure(0, 6, "big-1", "")]) == []


def test_condition_on_customer_attributes() -> None:
    spec = rule(
        when={
            "all": [
                {"signal": "value", "metric": "pressure", "above": 5},
                {"attribute": "customer.language", "in": ["de", "ja"]},
                {"not": {"attribute": "kind", "equals": "heat_pump"}},
            ]
        }
    )
    book = {
        "de-pump": {"kind": "water_pump", "customer.language": "de"},
        "en-pump": {"kind": "water_pump", "customer.language": "en"},
        "de-heat": {"kind": "heat_pump", "customer.language": "de"},
    }
    engine = engine_of(spec, attributes=book)
    alarms = engine.run([pressure(0, 6, device) for device in book])
    assert [a.device_id for a in alarms] == ["de-pump"]


def test_rule_inactive_outside_schedule() -> None:
    spec = rule(
        when={"signal": "value", "metric": "pressure", "above": 5},
        **{"for": "30m"},
        schedule={"days": ["mon", "tue", "wed", "thu", "fri"], "hours": "08:00-18:00"},
    )
    engine = engine_of(spec)
    saturday_evening = MONDAY_NOON - 2 * 24 * HOUR + 7 * HOUR
    at_night = [pressure(MONDAY_NOON + 8 * HOUR + i * 10 * MINUTE, 6) for i in range(12)]
    at_weekend = [pressure(saturday_evening + i * 10 * MINUTE, 6, "d2") for i in range(12)]
    assert engine.run(at_night + at_weekend) == []
    in_office = [pressure(MONDAY_NOON + i * 10 * MINUTE, 6, "d3") for i in range(4)]
    assert len(engine.run(in_office)) == 1


def test_schedule_follows_the_device_owners_time_zone() -> None:
    spec = rule(
        when={"signal": "value", "metric": "pressure", "above": 5},
        schedule={"hours": "22:00-06:00", "timezone": "customer"},
    )
    book = {"tokyo": {"customer.timezone": "Asia/Tokyo"}, "utc": {}}
    engine = engine_of(spec, attributes=book)
    # 15:00 UTC is midnight in Tokyo: inside the night window there, not in UTC.
    at = MONDAY_NOON + 3 * HOUR
    alarms = engine.run([pressure(at, 6, "tokyo"), pressure(at, 6, "utc")])
    assert [a.device_id for a in alarms] == ["tokyo"]


def test_severity_escalates_when_condition_persists() -> None:
    spec = rule(
        when={"signal": "value", "metric": "pressure", "above": 5},
        clear={"signal": "value", "metric": "pressure", "below": 4},
        severity="warning",
        escalate=[{"after": "2d", "severity": "critical"}],
    )
    engine = engine_of(spec)
    hovering = [6, 4.5] * 40  # stays between the thresholds: still the same problem
    alarms = engine.run([pressure(i * 2 * HOUR, v) for i, v in enumerate(hovering)])
    assert [(a.severity, a.escalation) for a in alarms] == [
        ("warning", False),
        ("critical", True),
    ]
    assert alarms[1].at - alarms[0].at >= 2 * 24 * HOUR
    assert alarms[1].since == alarms[0].since


def test_no_escalation_when_condition_clears_in_time() -> None:
    spec = rule(
        when={"signal": "value", "metric": "pressure", "above": 5},
        escalate=[{"after": "2d", "severity": "critical"}],
    )
    engine = engine_of(spec)
    values = [6] * 10 + [1] + [6] * 10
    alarms = engine.run([pressure(i * 4 * HOUR, v) for i, v in enumerate(values)])
    assert [a.escalation for a in alarms] == [False, False]


def test_clearing_is_reported_with_its_event_time() -> None:
    spec = rule(
        when={"signal": "value", "metric": "pressure", "above": 5},
        clear={"signal": "value", "metric": "pressure", "below": 4},
    )
    engine = engine_of(spec)
    events = engine.evaluate([pressure(t, v) for t, v in [(0, 6), (60, 4.5), (120, 3)]])
    assert [type(e) for e in events] == [Alarm, Cleared]
    assert events[1].at == 120


def test_raw_value_comparison_works_before_any_baseline_is_warm() -> None:
    engine = engine_of(rule(when={"signal": "value", "metric": "pressure", "above": 5}))
    cold = SignalSet("d1", 0.0, "M1")  # detection has nothing to say yet
    assert len(engine.run([cold], [{"pressure": 7.0}])) == 1


HEAD = "rules:\n  - name: a\n    problem: p\n"
CALL = "__import__('os').system('touch {marker}')"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text",
    [
        # A YAML tag that would build a Python object in an unsafe loader.
        "rules: !!python/object/apply:os.system ['touch {marker}']\n",
        # A condition written as an expression string is refused, not evaluated.
        f'{HEAD}    when: "{CALL}"\n',
        f'{HEAD}    when: {{{{signal: value, metric: x, above: "{CALL}"}}}}\n',
    ],
    ids=["python_tag", "expression_string", "expression_threshold"],
)
def test_rule_file_cannot_run_code(tmp_path: Path, text: str) -> None:
    marker = tmp_path / "ran"
    with pytest.raises(RuleFileError):
        load_rule_file(write(tmp_path, text.format(marker=marker)))
    assert not marker.exists()


def test_undefined_threshold_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "rules:\n  - name: a\n    problem: p\n"
        "    when: {signal: value, metric: pressure, above: high}\n",
    )
    with pytest.raises(RuleFileError) as error:
        load_rule_file(path)
    assert f"{path}:2: key 'rules.0.thresholds'" in str(error.value)
    assert "threshold high is used but not defined. Fix: add it under 'thresholds:'" in str(
        error.value
    )


def test_new_syntax_errors_name_file_line_key_and_fix(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "rules:\n  - name: a\n    problem: p\n"
        "    when: {attribute: colour, equals: red}\n"
        "    count: {times: 3, within: soon}\n"
        "    schedule: {hours: '8-18', timezone: Mars/Olympus}\n",
    )
    with pytest.raises(RuleFileError) as error:
        load_rule_file(path)
    lines = str(error.value).splitlines()
    assert lines[0].startswith(f"{path}:4: key 'rules.0.when.attribute': unknown attribute")
    assert lines[1].startswith(f"{path}:5: key 'rules.0.count.within': 'soon' is not a duration")
    assert lines[2].startswith(f"{path}:6: key 'rules.0.schedule.hours'")
    assert lines[3].startswith(f"{path}:6: key 'rules.0.schedule.timezone'")
    assert all("Fix:" in line for line in lines)


def test_escalation_must_raise_the_severity(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "rules:\n  - name: a\n    problem: p\n    severity: critical\n"
        "    when: {signal: deviation, above: 3}\n"
        "    escalate: [{after: 2d, severity: warning}]\n",
    )
    with pytest.raises(RuleFileError) as error:
        load_rule_file(path)
    assert f"{path}:6: key 'rules.0.escalate': escalation steps must raise" in str(error.value)


def test_override_of_an_unknown_threshold_points_at_the_overrides(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"{HEAD}    when: {{signal: value, metric: p, above: high}}\n"
        "    thresholds: {high: 5}\n"
        "    overrides:\n      - {model: X, thresholds: {hihg: 6}}\n",
    )
    with pytest.raises(RuleFileError) as error:
        load_rule_file(path)
    assert f"{path}:7: key 'rules.0.overrides': override for X sets unknown threshold hihg" in str(
        error.value
    )


def test_documented_example_rule_loads(tmp_path: Path) -> None:
    doc = (Path(__file__).parent.parent / "docs" / "rules.md").read_text()
    example = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    (loaded,) = load_rule_file(write(tmp_path, example))
    assert loaded.thresholds_for("WP-400", "pump-0042") == {"high": 7.5, "normal": 8.0}
    assert loaded.thresholds_for("WP-200", "pump-0001") == {"high": 6.0, "normal": 5.0}


def test_rule_watcher_loads_each_change_once_and_keeps_rules_over_a_broken_file(
    tmp_path: Path,
) -> None:
    from prometheus_client import REGISTRY

    from rules.watch import RuleWatcher

    def reloads(outcome: str) -> float:
        value = REGISTRY.get_sample_value("monitor_rules_reloads_total", {"outcome": outcome})
        return value or 0.0

    good = f"{HEAD}    when: {{signal: deviation, above: 3}}\n"
    path = write(tmp_path, good)
    watcher = RuleWatcher(tmp_path, load_rule_file(path))
    rejected, applied = reloads("rejected"), reloads("applied")
    assert watcher.poll() is None
    path.write_text(good.replace("above: 3", "above: [3]"))
    assert watcher.poll() is None
    assert watcher.poll() is None
    assert reloads("rejected") == rejected + 1
    assert [r.name for r in watcher.rules] == ["a"]
    path.write_text(good.replace("name: a", "name: b"))
    assert [r.name for r in watcher.poll() or []] == ["b"]
    assert reloads("applied") == applied + 1
