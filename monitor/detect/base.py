"""The one protocol every detector follows, and the signals detection hands to the rules.

Like River's anomaly detectors, a detector has two verbs on plain data: ``score_one`` says how
unusual an observation is *before* learning from it (pure), ``learn_one`` folds it into the
learned state. Per-device state is plain data, so it can be checkpointed and restored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Final, Protocol

SIGNAL_NAMES: dict[str, str] = {
    "deviation": "sustained deviation from the device's own baseline, peer-adjusted, in robust "
    "standard units (absolute; per metric or the strongest metric)",
    "signed_deviation": "the deviation with its sign: positive above the baseline, negative "
    "below (a connector running hot, not cold)",
    "value": "the metric's observed value as reported (needs 'metric')",
    "trend": "robust slope (median of pairwise slopes) of the metric's peer-adjusted deviation, "
    "in standard units per 24 history buckets (per day on five-minute telemetry; a bucket is "
    "12 of the device's message intervals)",
    "days_to_failure": "forecast days until the deviation reaches the failure threshold "
    "(failure_sigma healthy spreads) at the current trend; absent when not heading there",
    "days_to_failure_low": "early end of the forecast band (upper-quartile slope)",
    "days_to_failure_high": "late end of the forecast band (lower-quartile slope)",
    "change": "two-sided CUSUM of the bucket deviations with a one-sigma allowance: how much "
    "persistent level shift has accumulated, in sigma-buckets",
    "sustained": "smallest absolute bucket deviation over the last 12 buckets: how far the "
    "metric has stayed away from its baseline (persistence counted in samples, not hours)",
    "anomaly": "multivariate anomaly of the device's metrics taken together (relationships "
    "between metrics), in robust standard units of the device's own healthy scores",
    "silence": "time since the device's last message, in its own normal message intervals "
    "(device-level; only reported while the device is silent)",
}
"""Every signal a rule may test, with what it means. A detector that adds a signal adds its
name here, and :meth:`SignalSet.value` finds it in :attr:`MetricSignal.extra` or
:attr:`SignalSet.extra`; the rules loader refuses names not listed."""

DEVICE_SIGNALS = frozenset({"anomaly", "silence"})
"""Signals only ever device-level (never per metric): absent from ``extra``, they are absent."""


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


_NO_SIGNALS: Final[Mapping[str, float]] = MappingProxyType({})
"""The default of no further signals: one shared, read-only empty mapping."""


class MetricSignal:
    """What detection found for one metric of one message: the evidence a case quotes."""

    # Not frozen dataclasses (this and SignalSet): several are made for every message, and
    # compiled, a dataclass keeps its generated (Python) __init__. Final keeps them as
    # read-only as frozen did.
    def __init__(
        self,
        observed: float,
        expected: float,
        deviation: float,
        extra: Mapping[str, float] = _NO_SIGNALS,
        *,
        at: float | None = None,
    ) -> None:
        self.observed: Final = observed
        self.expected: Final = expected
        self.deviation: Final = deviation
        """Sustained deviation: smoothed, peer-adjusted, in robust standard units."""
        self.extra: Final = extra
        """Further per-metric signals by name (see :data:`SIGNAL_NAMES`)."""
        self.at: Final = at
        """When the metric was observed, if earlier than the signal set it is part of: a
        running pump's vibration is still the news while the pump is off, but it is old news,
        and a rule's ``for`` must not run on it (see :meth:`SignalSet.seen_at`)."""

    def _fields(self) -> tuple[object, ...]:
        return (self.observed, self.expected, self.deviation, dict(self.extra), self.at)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MetricSignal) and self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash((self.observed, self.expected, self.deviation))

    def __repr__(self) -> str:
        return (
            f"MetricSignal(observed={self.observed!r}, expected={self.expected!r}, "
            f"deviation={self.deviation!r}, extra={dict(self.extra)!r}, at={self.at!r})"
        )


class SignalSet:
    """Every signal of one device after one message; rules test these by name."""

    def __init__(
        self,
        device_id: str,
        ts: float,
        model: str,
        metrics: dict[str, MetricSignal] | None = None,
        *,
        kind: str = "",
        extra: Mapping[str, float] = _NO_SIGNALS,
        predicted_failure_at: float | None = None,
        peers: str = "",
    ) -> None:
        self.device_id: Final = device_id
        self.ts: Final = ts
        self.model: Final = model
        self.metrics: Final[dict[str, MetricSignal]] = {} if metrics is None else metrics
        self.kind: Final = kind
        self.extra: Final = extra
        """Device-level signals by name (see :data:`SIGNAL_NAMES`)."""
        self.predicted_failure_at: Final = predicted_failure_at
        """Event time at which a forecast says a metric will cross its failure threshold."""
        self.peers: Final = peers
        """Whom the device is compared with: its model, or for a device that does not say
        its model, the devices reporting the same metrics (so a fleet incident can still be
        told)."""

    def __repr__(self) -> str:
        return (
            f"SignalSet(device_id={self.device_id!r}, ts={self.ts!r}, model={self.model!r}, "
            f"metrics={self.metrics!r}, kind={self.kind!r}, extra={dict(self.extra)!r}, "
            f"predicted_failure_at={self.predicted_failure_at!r}, peers={self.peers!r})"
        )

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
        """A named signal's value, for one metric or the largest over metrics.

        ``None`` when the signal is not known for this message, which makes a comparison on
        it false. A metric name matches its per-state trackers too ("flow" is "flow (on)").
        """
        # Rules ask this several times for every message: direct look-ups, no lists.
        if metric is None:
            extra = self.extra
            if signal in extra:
                return extra[signal]
            if signal in DEVICE_SIGNALS:
                return None
        m = self._deciding(signal, metric)
        return None if m is None else _metric_value(m, signal)

    def seen_at(self, signal: str, metric: str | None = None) -> float:
        """When the evidence behind :meth:`value` was observed: this message's time, or, where
        the value comes from a metric's other operating state, when that state last reported.
        """
        if metric is None and (signal in self.extra or signal in DEVICE_SIGNALS):
            return self.ts
        m = self._deciding(signal, metric)
        return self.ts if m is None or m.at is None else m.at

    def _deciding(self, signal: str, metric: str | None) -> MetricSignal | None:
        """The metric signal whose value :meth:`value` reports: the largest in magnitude."""
        if metric is None:
            candidates: Iterable[MetricSignal] = self.metrics.values()
        else:
            ms = self.metrics
            on, off = _state_names(metric)
            own = ms.get(metric)
            if own is None and metric.endswith(RUNNING):
                # A device that never reports being off is always running: its "cop" is what
                # a rule on "cop (on)" means.
                own = ms.get(metric[: -len(RUNNING)])
            candidates = (m for m in (own, ms.get(on), ms.get(off)) if m is not None)
        best: MetricSignal | None = None
        largest = -1.0
        for m in candidates:
            v = _metric_value(m, signal)
            if v is not None and abs(v) > largest:
                best, largest = m, abs(v)
        return best


RUNNING = " (on)"
"""The suffix of a metric's signal while its device runs ("flow_lpm (on)")."""
IDLE = " (off)"
"""The suffix of a metric's signal while its device is off ("flow_lpm (off)")."""


@lru_cache(maxsize=1024)
def _state_names(metric: str) -> tuple[str, str]:
    return f"{metric}{RUNNING}", f"{metric}{IDLE}"


def _metric_value(m: MetricSignal, signal: str) -> float | None:
    if signal == "deviation":
        return abs(m.deviation)
    if signal == "signed_deviation":
        return m.deviation
    if signal == "value":
        return m.observed
    return m.extra.get(signal)
