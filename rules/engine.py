"""Evaluating rules over signals, on event time: durations, counts, hysteresis, schedules,
per-model/per-device thresholds and severity escalation."""

from __future__ import annotations

import json
import math
import zlib
from collections import deque
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any, Final

from monitor.detect.base import IDLE, RUNNING, SignalSet
from rules.attributes import AttributeLookup, Attributes, no_attributes
from rules.model import AllOf, AnyOf, AttributeTest, Comparison, Condition, NotOf, Rule

_NO_NUMBERS: Mapping[str, float] = {}
_NO_ATTRIBUTES: Attributes = {}
_MAX_METRIC_SETS = 1024
"""Distinct metric-name sets whose rule split is remembered; past that the memory starts
over (a device inventing metric names must not grow it without bound)."""


@dataclass(frozen=True, slots=True)
class Alarm:
    """A rule whose condition has held long enough: the cases stage turns it into a case.

    With ``escalation`` set, the rule has kept firing past one of its ``escalate`` steps: the
    cases stage raises the open case of ``device_id`` and ``problem`` to ``severity``.
    """

    device_id: str
    rule: str
    problem: str
    severity: str
    since: float
    """Event time when the condition started to hold."""
    at: float
    """Event time when it had held for the rule's duration (or reached an escalation step)."""
    suggested_action: str
    actions: tuple[str, ...]
    evidence: dict[str, Any] = field(default_factory=dict)
    predicted_failure_at: float | None = None
    escalation: bool = False


@dataclass(frozen=True, slots=True)
class Cleared:
    """A firing rule's clear condition held: the rule is re-armed for this device."""

    device_id: str
    rule: str
    problem: str
    at: float
    resolve: bool = False
    """The rule's ``resolve_on_clear``: its open case resolves itself."""


RuleEvent = Alarm | Cleared


class Facts:
    """Everything a condition may look at for one message of one device.

    ``readings`` are the message's raw metric values: ``signal: value`` works before a
    baseline is warm.
    """

    # Not a frozen dataclass: one is made for every rule of every message, and compiled, a
    # dataclass keeps its generated (Python) __init__, which cost a quarter of the engine's
    # time. Final keeps it as read-only as frozen did.
    def __init__(
        self,
        signals: SignalSet,
        attributes: Attributes = _NO_ATTRIBUTES,
        thresholds: Mapping[str, float] = _NO_NUMBERS,
        readings: Mapping[str, float] = _NO_NUMBERS,
    ) -> None:
        self.signals: Final = signals
        self.attributes: Final = attributes
        self.thresholds: Final = thresholds
        self.readings: Final = readings


def holds(condition: Condition, facts: Facts | SignalSet) -> bool:
    """Evaluate a condition tree; an unknown value makes a comparison false."""
    if isinstance(facts, SignalSet):
        facts = Facts(facts)
    if isinstance(condition, Comparison):
        return _compare(condition, facts)
    if isinstance(condition, AttributeTest):
        return condition.accepts(_attribute(facts, condition.attribute))
    if isinstance(condition, AllOf):
        return all(holds(c, facts) for c in condition.all)
    if isinstance(condition, AnyOf):
        return any(holds(c, facts) for c in condition.any)
    if isinstance(condition, NotOf):
        return not holds(condition.not_, facts)
    raise TypeError(f"unknown condition node {condition!r}")


def _compare(condition: Comparison, facts: Facts) -> bool:
    value = facts.signals.value(condition.signal, condition.metric)
    if value is None and condition.signal == "value" and condition.metric is not None:
        value = facts.readings.get(condition.metric)
    if value is None:
        return False
    # Written out (no generator of the two thresholds): this runs for every rule of every
    # message.
    above = _threshold(condition.above, facts)
    if above is not None and not value > above:
        return False
    below = _threshold(condition.below, facts)
    return below is None or value < below


def _threshold(threshold: float | str | None, facts: Facts) -> float | None:
    if isinstance(threshold, str):
        return facts.thresholds[threshold]
    return threshold


def _attribute(facts: Facts, name: str) -> str | None:
    value = facts.attributes.get(name)
    if value is None and name in ("model", "kind"):
        # A device registered on its first message is known to detection before the database.
        value = getattr(facts.signals, name) or None
    return value


@dataclass(slots=True)
class _RuleState:
    bout_since: float | None = None
    """When the current stretch of ``when`` began (dips that do not clear it included)."""
    counted: bool = False
    """Whether the current stretch has lasted ``for`` and so counts as one occurrence."""
    occurrences: deque[float] = field(default_factory=deque)
    last_occurrence: float = -math.inf
    firing: bool = False
    fired_at: float = 0.0
    since: float = 0.0
    escalations: int = 0


class RuleEngine:
    """Holds each device's progress through each rule and emits an :class:`Alarm` once per bout.

    A rule fires when ``when`` has held for ``for`` seconds of event time without the rule
    clearing in between (with ``count``: when that has happened ``times`` times within
    ``within``). It clears when ``clear`` holds (or, for a rule without ``clear``, as soon as
    ``when`` stops holding; with ``count``, only once no occurrence came for ``within``), and
    does not fire again until it has cleared, so a value hovering at a threshold gives one
    alarm, not a storm. While it keeps firing, each ``escalate`` step it passes gives one
    escalation alarm. Outside its ``schedule`` a rule makes no progress; a rule already
    firing stays so until it clears.

    ``attributes`` looks up a device's attributes (see :mod:`rules.attributes`).
    """

    def __init__(self, rules: list[Rule], attributes: AttributeLookup = no_attributes) -> None:
        self.rules = list(rules)
        self._attributes = attributes
        self._state: dict[tuple[str, str], _RuleState] = {}
        self._thresholds: dict[tuple[str, str, str], dict[str, float]] = {}
        self._changed = False
        self._holds_now: set[tuple[str, str]] = set()
        """(device, rule) whose ``when`` held at the device's latest message."""
        self._split: dict[frozenset[str], tuple[list[Rule], list[Rule]]] = {}
        """By the metric names a message can be judged on: the rules whose ``when`` might
        hold, and those whose ``when`` cannot (it needs a metric that is absent)."""

    def replace_rules(self, rules: list[Rule]) -> None:
        """Swap in a new rule set, keeping progress of rules that kept their name."""
        names = {rule.name for rule in rules}
        self._state = {k: v for k, v in self._state.items() if k[1] in names}
        self._thresholds = {}
        self._split = {}
        self.rules = list(rules)

    def checkpoint(self) -> bytes | None:
        """Every device's progress through the rules, if it changed since the last call."""
        if not self._changed:
            return None
        self._changed = False
        state = {f"{device}\x1f{rule}": _pack(s) for (device, rule), s in self._state.items()}
        return zlib.compress(json.dumps(state, separators=(",", ":")).encode(), 6)

    def mark_unsaved(self) -> None:
        """The last checkpoint was not stored: include the state in the next one."""
        self._changed = True

    def restore(self, blob: bytes) -> None:
        """Resume from :meth:`checkpoint`'s output (progress of rules no longer loaded is
        dropped), so a restart does not restart every ``for`` and ``escalate`` clock."""
        names = {rule.name for rule in self.rules}
        for key, saved in json.loads(zlib.decompress(blob)).items():
            device, rule = key.split("\x1f", 1)
            if rule in names:
                self._state[(device, rule)] = _unpack(saved)

    def run(
        self, batch: list[SignalSet], readings: Sequence[Mapping[str, float]] | None = None
    ) -> list[Alarm]:
        """Alarms (and escalations) for a batch; ``readings`` are the messages' raw metrics."""
        return [e for e in self.evaluate(batch, readings) if isinstance(e, Alarm)]

    def evaluate(
        self, batch: list[SignalSet], readings: Sequence[Mapping[str, float]] | None = None
    ) -> list[RuleEvent]:
        """Like :meth:`run`, with the moments each rule cleared as well."""
        events: list[RuleEvent] = []
        raw: Sequence[Mapping[str, float]] = readings or [_NO_NUMBERS] * len(batch)
        self._changed = self._changed or bool(batch)
        for signals, numbers in zip(batch, raw, strict=True):
            attributes = self._attributes(signals.device_id)
            live, idle = self._rules_for(signals, numbers)
            for rule in live:
                facts = Facts(signals, attributes, self._thresholds_of(rule, signals), numbers)
                events.extend(self._step(rule, facts))
            for rule in idle:
                # ``when`` is false: that only matters to a rule with progress to clear or
                # escalate, or that held at the device's previous message.
                key = (signals.device_id, rule.name)
                if key in self._state or key in self._holds_now:
                    facts = Facts(signals, attributes, self._thresholds_of(rule, signals), numbers)
                    events.extend(self._step(rule, facts))
        return events

    def _rules_for(
        self, signals: SignalSet, numbers: Mapping[str, float]
    ) -> tuple[list[Rule], list[Rule]]:
        names = frozenset(signals.metrics).union(numbers)
        split = self._split.get(names)
        if split is None:
            if len(self._split) >= _MAX_METRIC_SETS:
                self._split.clear()
            # A rule on "flow" judges every state's flow; one on "flow (on)" also judges a
            # device without operating states (it is always running).
            present = set(names)
            for name in names:
                base = _base_name(name)
                present.add(base)
                if base == name:
                    present.add(name + RUNNING)
            live: list[Rule] = []
            idle: list[Rule] = []
            for rule in self.rules:
                (idle if _always_with(rule.when, present) is False else live).append(rule)
            split = self._split[names] = (live, idle)
        return split

    def holding(self, device_id: str, rule: str) -> bool:
        """Whether ``rule``'s condition holds for ``device_id`` now (its duration may not
        have passed yet), as of the last batch this engine evaluated."""
        return (device_id, rule) in self._holds_now

    def _thresholds_of(self, rule: Rule, signals: SignalSet) -> Mapping[str, float]:
        if not rule.overrides:
            return rule.thresholds
        model = self._attributes(signals.device_id).get("model") or signals.model
        key = (rule.name, signals.device_id, model)
        found = self._thresholds.get(key)
        if found is None:
            found = self._thresholds[key] = rule.thresholds_for(model, signals.device_id)
        return found

    def _step(self, rule: Rule, facts: Facts) -> list[RuleEvent]:
        key = (facts.signals.device_id, rule.name)
        state = self._state.get(key)
        ts = facts.signals.ts
        if rule.schedule is not None and not rule.schedule.active(ts, facts.attributes):
            self._holds_now.discard(key)
            if state is not None and not state.firing:
                del self._state[key]
            elif state is not None and not holds(rule.when, facts) and _cleared(rule, facts):
                del self._state[key]
                return [_cleared_event(rule, facts)]
            return []
        if holds(rule.when, facts):
            self._holds_now.add(key)
            if state is None:
                state = self._state[key] = _RuleState()
            return self._holding(rule, facts, state)
        self._holds_now.discard(key)
        if state is None:
            return []
        events: list[RuleEvent] = []
        # With a clear condition, a dip between the thresholds neither re-arms a firing rule
        # nor restarts a pending one: that is what keeps a hovering value from flapping.
        if not _cleared(rule, facts):
            if state.firing:
                events.extend(_escalations(rule, facts, state))
            return events
        state.bout_since, state.counted = None, False
        _forget_old(rule, state, ts)
        within = rule.count.within if rule.count is not None else 0.0
        if state.firing and ts - state.last_occurrence >= within:
            del self._state[key]
            events.append(_cleared_event(rule, facts))
        elif not state.firing and not state.occurrences:
            del self._state[key]
        return events

    def _holding(self, rule: Rule, facts: Facts, state: _RuleState) -> list[RuleEvent]:
        ts = facts.signals.ts
        if state.bout_since is None:
            state.bout_since = ts
        if (
            not state.counted
            and ts - state.bout_since >= rule.for_
            and (rule.for_ == 0 or _evidence_at(rule.when, facts) - state.bout_since >= rule.for_)
        ):
            state.counted = True
            state.occurrences.append(state.bout_since)
            state.last_occurrence = ts
        _forget_old(rule, state, ts)
        if state.firing:
            return _escalations(rule, facts, state)
        times = rule.count.times if rule.count is not None else 1
        if len(state.occurrences) < times:
            return []
        state.firing, state.fired_at, state.since = True, ts, state.occurrences[0]
        return [_alarm(rule, facts.signals, state.since)]


def _evidence_at(condition: Condition, facts: Facts) -> float:
    """When the evidence that makes ``condition`` hold was observed. A duration counts only
    what was seen: a sparse operating state's last reading, carried while the device runs
    in the other state, says nothing new about the hours since (a heat pump's one odd
    reading between runs must not become "twelve hours below its band")."""
    if isinstance(condition, Comparison):
        return facts.signals.seen_at(condition.signal, condition.metric)
    if isinstance(condition, AllOf):
        return min(_evidence_at(c, facts) for c in condition.all)
    if isinstance(condition, AnyOf):
        return max(_evidence_at(c, facts) for c in condition.any if holds(c, facts))
    # An attribute or a negation holds on what is known now.
    return facts.signals.ts


def _pack(state: _RuleState) -> list[Any]:
    last = state.last_occurrence if math.isfinite(state.last_occurrence) else None
    return [
        state.bout_since,
        state.counted,
        list(state.occurrences),
        last,
        state.firing,
        state.fired_at,
        state.since,
        state.escalations,
    ]


def _unpack(saved: list[Any]) -> _RuleState:
    bout_since, counted, occurrences, last, firing, fired_at, since, escalations = saved
    return _RuleState(
        bout_since,
        counted,
        deque(occurrences),
        -math.inf if last is None else last,
        firing,
        fired_at,
        since,
        escalations,
    )


def _always_with(condition: Condition, present: AbstractSet[str]) -> bool | None:
    """What ``condition`` is for every message whose metrics are all in ``present``: a
    comparison on an absent metric is false (its value is unknown); ``None``: it depends on
    the values."""
    if isinstance(condition, Comparison):
        absent = condition.metric is not None and condition.metric not in present
        return False if absent else None
    if isinstance(condition, AllOf):
        parts = [_always_with(c, present) for c in condition.all]
        return False if False in parts else True if all(parts) else None
    if isinstance(condition, AnyOf):
        parts = [_always_with(c, present) for c in condition.any]
        return True if True in parts else False if all(p is False for p in parts) else None
    if isinstance(condition, NotOf):
        inner = _always_with(condition.not_, present)
        return None if inner is None else not inner
    return None


def _base_name(name: str) -> str:
    # Detection names a per-state tracker "flow (on)"; a rule on "flow" looks at it too.
    for suffix in (RUNNING, IDLE):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _cleared(rule: Rule, facts: Facts) -> bool:
    return holds(rule.clear, facts) if rule.clear is not None else not holds(rule.when, facts)


def _forget_old(rule: Rule, state: _RuleState, ts: float) -> None:
    within = rule.count.within if rule.count is not None else math.inf
    while state.occurrences and ts - state.occurrences[0] > within:
        state.occurrences.popleft()
    if rule.count is None and state.firing:
        state.occurrences.clear()


def _escalations(rule: Rule, facts: Facts, state: _RuleState) -> list[RuleEvent]:
    events: list[RuleEvent] = []
    while state.escalations < len(rule.escalate):
        step = rule.escalate[state.escalations]
        if facts.signals.ts - state.fired_at < step.after:
            break
        state.escalations += 1
        events.append(_alarm(rule, facts.signals, state.since, step.severity))
    return events


def _cleared_event(rule: Rule, facts: Facts) -> Cleared:
    return Cleared(
        facts.signals.device_id, rule.name, rule.problem, facts.signals.ts, rule.resolve_on_clear
    )


def _alarm(rule: Rule, signals: SignalSet, since: float, escalated_to: str | None = None) -> Alarm:
    return Alarm(
        device_id=signals.device_id,
        rule=rule.name,
        problem=rule.problem,
        severity=escalated_to or rule.severity,
        since=since,
        at=signals.ts,
        suggested_action=rule.suggested_action,
        actions=tuple(rule.actions),
        evidence=evidence_of(signals, since),
        predicted_failure_at=signals.predicted_failure_at,
        escalation=escalated_to is not None,
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
