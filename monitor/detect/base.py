"""The one protocol every detector follows, and the signals detection hands to the rules.

Like River's anomaly detectors, a detector has two verbs on plain data: ``score_one`` says how
unusual an observation is *before* learning from it (pure), ``learn_one`` folds it into the
learned state. Per-device state is plain data, so it can be checkpointed and restored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


class Detector(Protocol):
    """Learns one metric of one device online and scores how unusual a value is."""

    def score_one(self, value: float, ts: float) -> float:
        """Signed deviation of ``value`` at event time ``ts``, in robust standard units."""
        ...

    def learn_one(self, value: float, ts: float) -> None:
        """Fold ``value`` into the learned healthy behaviour."""
        ...

    @property
    def warm(self) -> bool:
        """True once enough healthy data has been seen for scores to be trusted."""
        ...

    def to_state(self) -> dict[str, Any]:
        """Plain, JSON-serialisable state."""
        ...


@dataclass(frozen=True, slots=True)
class MetricSignal:
    """What detection found for one metric of one message: the evidence a case quotes."""

    observed: float
    expected: float
    deviation: float
    """Sustained deviation: smoothed, peer-adjusted, in robust standard units."""


@dataclass(frozen=True, slots=True)
class SignalSet:
    """Every signal of one device after one message; rules test these by name."""

    device_id: str
    ts: float
    model: str
    metrics: dict[str, MetricSignal] = field(default_factory=dict)

    @property
    def deviation(self) -> float:
        """The largest absolute sustained deviation over the device's metrics."""
        return max((abs(m.deviation) for m in self.metrics.values()), default=0.0)

    def strongest(self) -> tuple[str, MetricSignal] | None:
        """The metric that drives :attr:`deviation`, if any is warm."""
        if not self.metrics:
            return None
        return max(self.metrics.items(), key=lambda item: abs(item[1].deviation))

    def value(self, signal: str, metric: str | None = None) -> float | None:
        """A named signal's value, for one metric or the strongest; ``None`` if unknown."""
        if signal != "deviation":
            return None
        if metric is None:
            return self.deviation if self.metrics else None
        found = [
            abs(m.deviation)
            for shown, m in self.metrics.items()
            if shown == metric or shown.startswith(metric + " (")
        ]
        return max(found) if found else None
