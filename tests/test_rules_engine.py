"""The rules engine on plain signals: durations on event time, hysteresis, file errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.detect import MetricSignal, SignalSet
from rules import RuleEngine, RuleFileError, load_rule_file, load_rules
from rules.model import RuleFile

RULE = {
    "rules": [
        {
            "name": "drift",
            "problem": "degradation",
            "when": {"signal": "deviation", "above": 4},
            "clear": {"signal": "deviation", "below": 1.5},
            "for": "3h",
        }
    ]
}


def signals(ts: float, deviation: float, device: str = "d1") -> SignalSet:
    return SignalSet(device, ts, "M1", {"flow": MetricSignal(10.0, 12.0, deviation)})


def engine() -> RuleEngine:
    return RuleEngine(list(RuleFile.model_validate(RULE).rules))


def test_condition_must_hold_for_its_duration_in_event_time() -> None:
    rules = engine()
    hour = 3600.0
    assert rules.run([signals(0, 5), signals(2 * hour, 5)]) == []
    alarms = rules.run([signals(3 * hour, 5)])
    assert len(alarms) == 1
    assert alarms[0].since == 0
    assert alarms[0].at == 3 * hour
    assert alarms[0].evidence["metrics"][0]["metric"] == "flow"


def test_duration_counts_only_evidence_seen_during_it() -> None:
    """A sparse state's last reading, carried while the device runs in the other state, is
    old news: it may keep a rule pending but not make it last (seed 3's hp-0034 had one odd
    reading between two runs, and twelve hours later a case said "twelve hours below")."""
    rules = engine()
    hour = 3600.0

    def carried(ts: float, off: float, seen: float) -> SignalSet:
        metrics = {
            "flow (on)": MetricSignal(10.0, 10.0, 0.2, at=ts),
            "flow (off)": MetricSignal(0.0, 0.0, off, at=seen),
        }
        return SignalSet("d1", ts, "M1", metrics)

    # One off-state reading at 5 spreads, then hours of running: the off value is carried.
    stale = [carried(i * 0.5 * hour, 5.0, seen=0.0) for i in range(13)]
    assert rules.run(stale) == []
    # The off state reports again, still at 5 spreads, hours after it first did: now the
    # evidence spans more than the rule's three hours, and the rule fires.
    alarms = rules.run([carried(6.5 * hour, 5.0, seen=6.5 * hour)])
    assert len(alarms) == 1
    assert alarms[0].since == 0


def test_interruption_restarts_the_duration() -> None:
    rules = engine()
    batch = [signals(0, 5), signals(3000, 0.5), signals(3600, 5), signals(3600 * 3.5, 5)]
    assert rules.run(batch) == []


def test_value_hovering_at_threshold_fires_once() -> None:
    rules = engine()
    values = [5, 3.9, 4.2, 3.5, 4.5] * 20
    alarms = rules.run([signals(i * 1800.0, v) for i, v in enumerate(values)])
    assert len(alarms) == 1


def test_rule_fires_again_only_after_clearing() -> None:
    rules = engine()
    first = rules.run([signals(i * 3600.0, 5) for i in range(5)])
    rules.run([signals(6 * 3600.0, 1.0)])
    second = rules.run([signals((7 + i) * 3600.0, 5) for i in range(5)])
    assert len(first) == 1
    assert len(second) == 1


def test_devices_are_tracked_separately() -> None:
    rules = engine()
    batch = [signals(i * 3600.0, 5, d) for i in range(4) for d in ("a", "b")]
    assert sorted(a.device_id for a in rules.run(batch)) == ["a", "b"]


def test_any_and_not_conditions_combine() -> None:
    spec = {
        "rules": [
            {
                "name": "either",
                "problem": "p",
                "when": {
                    "any": [
                        {"signal": "deviation", "metric": "flow", "above": 9},
                        {"not": {"signal": "deviation", "below": 3}},
                    ]
                },
            }
        ]
    }
    rules = RuleEngine(list(RuleFile.model_validate(spec).rules))
    assert rules.run([signals(0, 2)]) == []
    assert len(rules.run([signals(1, 3.5)])) == 1


def test_shipped_rules_load() -> None:
    shipped = load_rules(Path(__file__).parent.parent / "rules")
    assert any(rule.problem == "degradation" for rule in shipped)


def test_broken_rule_file_names_file_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "rules:\n  - name: a\n    problem: p\n    when:\n      signal: deviaton\n"
        "      above: 3\n    for: 3x\n"
    )
    with pytest.raises(RuleFileError) as error:
        load_rule_file(path)
    text = str(error.value)
    assert f"{path}:5: key 'rules.0.when.signal'" in text
    assert f"{path}:7: key 'rules.0.for'" in text


def test_shipped_pump_rule_sees_flow_falling_while_current_rises() -> None:
    shipped = load_rules(Path(__file__).parent.parent / "rules")
    clogging = RuleEngine([r for r in shipped if r.name == "pump-impeller-clogging"])

    def pump(ts: float, flow: float, current: float) -> SignalSet:
        metrics = {
            "flow_lpm (on)": MetricSignal(40.0, 45.0, flow),
            "current_a (on)": MetricSignal(6.6, 6.5, current),
        }
        return SignalSet("wp", ts, "WP-200", metrics)

    hour = 3600.0
    # Less flow on a day of lower demand draws less current: no clogging.
    assert clogging.run([pump(i * hour, -2.0, -1.0) for i in range(12)]) == []
    # Nor does the current's noise while the pump stands idle (seed 2's wp-0005, 60 days).
    idle_noise = [
        SignalSet(
            "wp",
            (12 + i) * hour,
            "WP-200",
            {**pump(0.0, -2.0, -1.0).metrics, "current_a (off)": MetricSignal(0.06, 0.05, 2.0)},
        )
        for i in range(12)
    ]
    assert clogging.run(idle_noise) == []
    clogging = RuleEngine([r for r in shipped if r.name == "pump-impeller-clogging"])
    # Less flow for more current, for six hours: clogging.
    alarms = clogging.run([pump((12 + i) * hour, -2.0, 1.0) for i in range(7)])
    assert [a.rule for a in alarms] == ["pump-impeller-clogging"]


def test_a_rule_on_a_running_metric_judges_a_device_that_never_stops_but_not_its_idle_state() -> (
    None
):
    shipped = load_rules(Path(__file__).parent.parent / "rules")
    leak = RuleEngine([r for r in shipped if r.name == "heat-pump-efficiency-falling"])
    hour = 3600.0

    def heat_pump(ts: float, running: float, idle: float) -> SignalSet:
        # No on/off metric (it ran all winter), but one idle day made an "off" state.
        metrics = {
            "cop": MetricSignal(3.0, 3.2, running),
            "cop (off)": MetricSignal(4.6, 4.8, idle),
        }
        return SignalSet("hp", ts, "HP-8", metrics)

    assert heat_pump(0.0, -0.5, -3.0).value("signed_deviation", "cop (on)") == -0.5
    # Its idle state far off on a warm afternoon: no leak.
    assert leak.run([heat_pump(i * hour, 0.0, -3.0) for i in range(14)]) == []
    # Its running COP below its band for twelve hours: a leak.
    alarms = leak.run([heat_pump((14 + i) * hour, -3.0, 0.0) for i in range(13)])
    assert [a.rule for a in alarms] == ["heat-pump-efficiency-falling"]
