"""Rules whose condition needs a metric a message cannot have are skipped, with the same
outcome as evaluating them: ``not`` and ``any`` of such a metric, and progress to clear."""

from __future__ import annotations

from typing import Any

from monitor.detect import MetricSignal, SignalSet
from rules import RuleEngine
from rules.engine import Alarm, Cleared, RuleEvent
from rules.model import RuleFile

VIBRATION_HIGH = {"signal": "value", "metric": "vibration_mms", "above": 5}


def engine(*rules: dict[str, Any]) -> RuleEngine:
    named = [{"problem": "degradation", **rule} for rule in rules]
    return RuleEngine(list(RuleFile.model_validate({"rules": named}).rules))


def message(ts: float, **metrics: float) -> tuple[SignalSet, dict[str, float]]:
    signals = {name: MetricSignal(value, value, 0.0) for name, value in metrics.items()}
    return SignalSet("pump-1", ts, "WP-200", signals, kind="water_pump"), metrics


def evaluate(rules: RuleEngine, *messages: tuple[SignalSet, dict[str, float]]) -> list[RuleEvent]:
    return rules.evaluate([s for s, _ in messages], [m for _, m in messages])


def names(events: list[RuleEvent]) -> list[tuple[str, str]]:
    return [(type(e).__name__, e.rule) for e in events]


def test_rule_on_an_absent_metric_stays_quiet_and_its_negation_fires() -> None:
    rules = engine(
        {"name": "vibration", "when": VIBRATION_HIGH},
        {"name": "calm", "when": {"not": VIBRATION_HIGH}},
        {"name": "either", "when": {"any": [VIBRATION_HIGH, {"signal": "deviation", "above": -1}]}},
        {"name": "both", "when": {"all": [VIBRATION_HIGH, {"signal": "deviation", "above": -1}]}},
    )
    events = evaluate(rules, message(0.0, flow_lpm=30.0))
    assert names(events) == [("Alarm", "calm"), ("Alarm", "either")]
    assert rules.holding("pump-1", "calm")
    assert not rules.holding("pump-1", "vibration")


def test_firing_rule_clears_when_its_metric_stops_being_reported() -> None:
    rules = engine({"name": "vibration", "when": VIBRATION_HIGH})
    (alarm,) = evaluate(rules, message(0.0, vibration_mms=9.0))
    assert isinstance(alarm, Alarm)
    assert rules.holding("pump-1", "vibration")
    (cleared,) = evaluate(rules, message(300.0, flow_lpm=30.0))
    assert isinstance(cleared, Cleared)
    assert cleared.at == 300.0
    assert not rules.holding("pump-1", "vibration")
    # Armed again: the next high reading fires.
    assert names(evaluate(rules, message(600.0, vibration_mms=9.0))) == [("Alarm", "vibration")]


def test_firing_rule_escalates_and_clears_on_messages_without_its_metric() -> None:
    rules = engine(
        {
            "name": "vibration",
            "when": VIBRATION_HIGH,
            "clear": {"signal": "value", "metric": "flow_lpm", "above": 100},
            "escalate": [{"after": "1h", "severity": "critical"}],
        }
    )
    evaluate(rules, message(0.0, vibration_mms=9.0))
    (escalation,) = evaluate(rules, message(3600.0, flow_lpm=30.0))
    assert isinstance(escalation, Alarm)
    assert escalation.escalation
    (cleared,) = evaluate(rules, message(7200.0, flow_lpm=120.0))
    assert isinstance(cleared, Cleared)


def test_per_state_metric_names_count_as_the_metric() -> None:
    rules = engine({"name": "flow-low", "when": {"signal": "value", "metric": "flow", "below": 5}})
    signals = SignalSet("pump-1", 0.0, "WP-200", {"flow (on)": MetricSignal(2.0, 30.0, 0.0)})
    assert names(rules.evaluate([signals])) == [("Alarm", "flow-low")]
