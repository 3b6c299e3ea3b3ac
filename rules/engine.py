"""Evaluating rules over signals, on event time, with durations and hysteresis."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from monitor.detect.base import SignalSet
from rules.model import AllOf, AnyOf, Comparison, Condition, NotOf, Rule


@dataclass(frozen=True, slots=True)
class Alarm:
    """A rule whose condition has held long enough: the cases stage turns it into a case."""

    device_id: str
    rule: str
    problem: str
    severity: str
    since: float
    """Event time when the condition started to hold."""
    at: float
    """Event time when it had held for the rule's duration."""
    suggested_action: str
    actions: tuple[str, ...]
    evidence: dict[str, Any] = field(default_factory=dict)
    predicted_failure_at: float | None = None


def holds(condition: Condition, signals: SignalSet) -> bool:
    """Evaluate a condition tree; an unknown signal value makes a comparison false."""
    if isinstance(condition, Comparison):
        value = signals.value(condition.signal, condition.metric)
        if value is None:
            return False
        return (condition.above is None or value > condition.above) and (
            condition.below is None or value < condition.below
        )
    if isinstance(condition, AllOf):
        return all(holds(c, signals) for c in condition.all)
    if isinstance(condition, AnyOf):
        return any(holds(c, signals) for c in condition.any)
    if isinstance(condition, NotOf):
        return not holds(condition.not_, signals)
    raise TypeError(f"unknown condition node {condition!r}")


@dataclass(slots=True)
class _RuleState:
    pending_since: float | None = None
    firing: bool = False


class RuleEngine:
    """Holds each device's progress through each rule and emits an :class:`Alarm` once per bout.

    A rule fires when ``when`` has held for ``for`` seconds of event time without the rule
    clearing in between. It clears when ``clear`` holds (or, for a rule without ``clear``, as
    soon as ``when`` stops holding), and does not fire again until it has cleared, so a value
    hovering at a threshold gives one alarm, not a storm.
    """

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = list(rules)
        self._state: dict[tuple[str, str], _RuleState] = {}

    def replace_rules(self, rules: list[Rule]) -> None:
        """Swap in a new rule set, keeping progress of rules that kept their name."""
        names = {rule.name for rule in rules}
        self._state = {k: v for k, v in self._state.items() if k[1] in names}
        self.rules = list(rules)

    def run(self, batch: list[SignalSet]) -> list[Alarm]:
        alarms: list[Alarm] = []
        for signals in batch:
            for rule in self.rules:
                alarm = self._step(rule, signals)
                if alarm is not None:
                    alarms.append(alarm)
        return alarms

    def _step(self, rule: Rule, signals: SignalSet) -> Alarm | None:
        key = (signals.device_id, rule.name)
        state = self._state.get(key)
        if holds(rule.when, signals):
            if state is None:
                state = self._state[key] = _RuleState()
            if state.pending_since is None:
                state.pending_since = signals.ts
            if not state.firing and signals.ts - state.pending_since >= rule.for_:
                state.firing = True
                return _alarm(rule, signals, state.pending_since)
            return None
        if state is None:
            return None
        # With a clear condition, a dip between the thresholds neither re-arms a firing rule
        # nor restarts a pending one: that is what keeps a hovering value from flapping.
        cleared = holds(rule.clear, signals) if rule.clear is not None else True
        if cleared:
            del self._state[key]
        return None


def _alarm(rule: Rule, signals: SignalSet, since: float) -> Alarm:
    return Alarm(
        device_id=signals.device_id,
        rule=rule.name,
        problem=rule.problem,
        severity=rule.severity,
        since=since,
        at=signals.ts,
        suggested_action=rule.suggested_action,
        actions=tuple(rule.actions),
        evidence=evidence_of(signals, since),
        predicted_failure_at=signals.predicted_failure_at,
    )


def evidence_of(signals: SignalSet, since: float) -> dict[str, Any]:
    """The numbers a support agent needs: which metrics moved, from what, to what, since when."""
    deviating = sorted(
        signals.metrics.items(), key=lambda item: abs(item[1].deviation), reverse=True
    )
    return {
        "since": since,
        "at": signals.ts,
        "model": signals.model,
        "metrics": [
            {
                "metric": name,
                "observed": round(m.observed, 4),
                "baseline": round(m.expected, 4),
                "deviation_sigma": round(m.deviation, 2),
            }
            for name, m in deviating
            if abs(m.deviation) >= 2.0
        ][:5],
    }
