"""Score a monitor's service cases against a fleet's ground truth.

A case is ``(device_id, opened_at)``. A fault is *caught* when a case on its device was opened
in [onset, failure): early enough to call the customer before they notice. A case at or after
failure is *late* (the fault is real but the customer already noticed). Any other case — on a
healthy device, or before onset — is a *false alarm*, traced to the nearest benign event
within a day when there is one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

DAY = 86400.0


@dataclass(frozen=True)
class CaseOutcome:
    """How one case scored: ``caught``, ``repeat`` (another case on a caught fault),
    ``late`` or ``false_alarm``; lead time and detection delay are in seconds."""

    device_id: str
    opened_at: float
    outcome: str
    fault: str | None = None
    lead_time: float | None = None
    detection_delay: float | None = None
    nearest_benign: str | None = None


@dataclass(frozen=True)
class FaultOutcome:
    """How one fault scored: ``caught``, ``late``, ``missed``, or ``pending`` (it fails after
    the simulation ends and nothing caught it yet, so it is not counted either way)."""

    device_id: str
    fault: str
    onset: float
    failure: float
    outcome: str
    first_case: float | None


@dataclass(frozen=True)
class Score:
    """The figures of a run. Times are seconds; ``None`` where there is nothing to measure."""

    faults: int
    caught: int
    late: int
    missed: int
    false_alarms: int
    healthy_device_days: float
    recall_before_failure: float | None
    median_lead_time: float | None
    p10_lead_time: float | None
    median_detection_delay: float | None
    cases: list[CaseOutcome]
    fault_outcomes: list[FaultOutcome]

    @property
    def false_alarms_per_1000_device_days(self) -> float | None:
        """False alarms per 1000 healthy device-days."""
        if self.healthy_device_days <= 0:
            return None
        return 1000.0 * self.false_alarms / self.healthy_device_days

    def summary_lines(self) -> list[str]:
        """A plain-text report, one figure per line."""
        rate = self.false_alarms_per_1000_device_days
        recall = self.recall_before_failure
        return [
            f"faults: {self.faults}  caught before failure: {self.caught}  late: {self.late}  "
            f"missed: {self.missed}",
            f"recall before failure: {'n/a' if recall is None else f'{recall:.0%}'}",
            f"lead time: median {_days(self.median_lead_time)}, p10 {_days(self.p10_lead_time)}",
            f"detection delay: median {_days(self.median_detection_delay)}",
            f"false alarms: {self.false_alarms} over {self.healthy_device_days:.1f} healthy "
            f"device-days ({'n/a' if rate is None else f'{rate:.1f}'} per 1000)",
        ]

    def case_lines(self) -> list[str]:
        """One line per case: device, opened at, outcome and its details."""
        lines = []
        for c in self.cases:
            details = [c.fault or "", c.nearest_benign or ""]
            if c.lead_time is not None:
                details.append(f"lead {_days(c.lead_time)}")
            if c.detection_delay is not None:
                details.append(f"delay {_days(c.detection_delay)}")
            lines.append(
                f"{c.device_id}  {c.opened_at:.0f}  {c.outcome}  "
                + "  ".join(d for d in details if d)
            )
        return lines


def _days(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds / DAY:.2f} d"


def score(truth: Mapping[str, Any], cases: Iterable[tuple[str, float]]) -> Score:
    """Score cases ``(device_id, opened_at)`` against a fleet's ``truth()``."""
    devices: Mapping[str, Any] = truth["devices"]
    end = float(truth["end"])
    first_case: dict[tuple[str, int], float] = {}
    outcomes = []
    for device_id, opened_at in sorted(cases, key=lambda c: (c[1], c[0])):
        outcome = _case_outcome(devices.get(device_id), device_id, float(opened_at), first_case)
        outcomes.append(outcome)
    fault_outcomes = _fault_outcomes(devices, end, first_case, outcomes)
    counted = [f for f in fault_outcomes if f.outcome != "pending"]
    caught = [f for f in counted if f.outcome == "caught"]
    leads = [c.lead_time for c in outcomes if c.outcome == "caught" and c.lead_time is not None]
    delays = [
        c.detection_delay
        for c in outcomes
        if c.outcome == "caught" and c.detection_delay is not None
    ]
    return Score(
        faults=len(counted),
        caught=len(caught),
        late=sum(f.outcome == "late" for f in counted),
        missed=sum(f.outcome == "missed" for f in counted),
        false_alarms=sum(c.outcome == "false_alarm" for c in outcomes),
        healthy_device_days=_healthy_days(truth),
        recall_before_failure=len(caught) / len(counted) if counted else None,
        median_lead_time=float(np.median(leads)) if leads else None,
        p10_lead_time=float(np.percentile(leads, 10)) if leads else None,
        median_detection_delay=float(np.median(delays)) if delays else None,
        cases=outcomes,
        fault_outcomes=fault_outcomes,
    )


def _case_outcome(
    device: Mapping[str, Any] | None,
    device_id: str,
    t: float,
    first_case: dict[tuple[str, int], float],
) -> CaseOutcome:
    if device is None:
        return CaseOutcome(device_id, t, "false_alarm")
    for i, fault in enumerate(device["faults"]):
        onset, failure = float(fault["onset"]), float(fault["failure"])
        if onset <= t < failure:
            if (device_id, i) in first_case:
                return CaseOutcome(device_id, t, "repeat", fault["kind"])
            first_case[(device_id, i)] = t
            return CaseOutcome(device_id, t, "caught", fault["kind"], failure - t, t - onset)
    for fault in device["faults"]:
        if t >= float(fault["failure"]):
            return CaseOutcome(device_id, t, "late", fault["kind"])
    return CaseOutcome(device_id, t, "false_alarm", nearest_benign=_nearest_benign(device, t))


def _nearest_benign(device: Mapping[str, Any], t: float) -> str | None:
    best: tuple[float, str] | None = None
    for event in device["benign"]:
        start, stop = float(event["start"]), float(event["end"])
        distance = 0.0 if start <= t <= stop else min(abs(t - start), abs(t - stop))
        if distance <= DAY and (best is None or distance < best[0]):
            best = (distance, str(event["kind"]))
    return None if best is None else best[1]


def _fault_outcomes(
    devices: Mapping[str, Any],
    end: float,
    first_case: dict[tuple[str, int], float],
    outcomes: list[CaseOutcome],
) -> list[FaultOutcome]:
    result = []
    for device_id, device in devices.items():
        late_cases = [
            c.opened_at for c in outcomes if c.device_id == device_id and c.outcome == "late"
        ]
        for i, fault in enumerate(device["faults"]):
            onset, failure = float(fault["onset"]), float(fault["failure"])
            if onset >= end:
                continue
            caught_at = first_case.get((device_id, i))
            after = [t for t in late_cases if t >= failure]
            if caught_at is not None:
                outcome, first = "caught", caught_at
            elif after:
                outcome, first = "late", min(after)
            elif failure > end:
                outcome, first = "pending", None
            else:
                outcome, first = "missed", None
            result.append(FaultOutcome(device_id, fault["kind"], onset, failure, outcome, first))
    return result


def _healthy_days(truth: Mapping[str, Any]) -> float:
    """Device-days before any fault's onset: the only time a case can be a false alarm."""
    start, end = float(truth["start"]), float(truth["end"])
    total = 0.0
    for device in truth["devices"].values():
        onsets = [float(f["onset"]) for f in device["faults"]]
        healthy_until = min([end, *onsets])
        total += max(healthy_until - start, 0.0)
    return total / DAY
