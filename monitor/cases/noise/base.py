"""What every noise stage sees and says: one alarm in, a verdict (or nothing) out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlmodel import Session

from monitor.detect.base import SignalSet
from monitor.store import Device
from rules.engine import Alarm


@dataclass(frozen=True, slots=True)
class Verdict:
    """Why a stage kept an alarm from becoming a case."""

    reason: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Suppressed:
    alarm: Alarm
    verdict: Verdict


@dataclass(slots=True)
class BatchContext:
    """One batch's alarms and signals, inside the transaction that will open its cases."""

    session: Session
    alarms: list[Alarm]
    signals: list[SignalSet]
    now: float
    """The monitor's clock for this batch (wall time live, simulated in a simulation)."""
    passed: set[tuple[str, str]] = field(default_factory=set)
    """(device, problem) of alarms already let through in this batch."""
    _devices: dict[str, Device | None] = field(default_factory=dict)

    def device(self, device_id: str) -> Device | None:
        if device_id not in self._devices:
            self._devices[device_id] = self.session.get(Device, device_id)
        return self._devices[device_id]


class NoiseStage(Protocol):
    """A single-purpose filter; stages run in the order composed in ``monitor.cases.noise``."""

    name: str

    def judge(self, ctx: BatchContext, alarm: Alarm) -> Verdict | None:
        """A verdict to suppress ``alarm``, or None to let it on to the next stage."""
        ...
