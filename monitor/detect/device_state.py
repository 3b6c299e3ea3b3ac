"""Everything detection remembers about one device, and how it turns a message into signals."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from monitor.config import DetectSettings
from monitor.detect.base import MetricSignal
from monitor.detect.duty_cycle import DutyCycle
from monitor.detect.peers import FleetPeers
from monitor.detect.seasonal_baseline import SeasonalBaseline, decay


@dataclass(slots=True)
class MetricTracker:
    """One metric: its learned baseline and its smoothed (sustained) deviation."""

    baseline: SeasonalBaseline
    smoothed: float = 0.0
    last_ts: float = 0.0
    first_ts: float = 0.0


_RECENT_S = 24 * 3600.0
"""How long a metric's signal from the other operating state still counts."""


class DeviceState:
    """Per-device detector state: one tracker per metric and operating state."""

    __slots__ = ("_learning_s", "_settings", "duty", "model", "recent", "trackers")

    def __init__(self, model: str, settings: DetectSettings) -> None:
        self.model = model
        self._settings = settings
        self._learning_s = settings.learning_hours * 3600.0
        self.trackers: dict[str, MetricTracker] = {}
        self.duty = DutyCycle(decide_after=settings.warmup_samples)
        self.recent: dict[str, tuple[float, MetricSignal]] = {}
        """Latest signal of every metric in every state, by display name, with its time."""

    def observe(
        self, device_id: str, ts: float, metrics: dict[str, float], peers: FleetPeers
    ) -> dict[str, MetricSignal]:
        """Score every metric of one message, then learn from the ones that look healthy.

        Returns the device's current signals: this message's, plus the latest of each metric
        in the device's other operating state (a pump's vibration while running is still the
        news while the pump is off), named ``"metric (state)"`` on devices with a duty cycle.
        """
        smoothing_s = self._settings.smoothing_halflife_minutes * 60.0
        undecided = not self.duty.decided
        state = self.duty.observe(metrics)
        if undecided and self.duty.metric is not None:
            # Baselines learned before the on/off metric was known mixed both states: restart.
            self.trackers.clear()
            self.recent.clear()
        for name, value in metrics.items():
            key = f"{name}|{state}" if state else name
            tracker = self.trackers.get(key)
            if tracker is None:
                tracker = self.trackers[key] = MetricTracker(self._new_baseline(), 0.0, ts, ts)
            baseline = tracker.baseline
            z = baseline.score_one(value, ts)
            # After a gap the first sample is still one sample: it must not set the level alone.
            dt = min(ts - tracker.last_ts, smoothing_s / 4.0)
            tracker.smoothed += decay(dt, smoothing_s) * (z - tracker.smoothed)
            tracker.last_ts = ts
            deviation = 0.0
            learning = ts - tracker.first_ts < self._learning_s
            if baseline.warm and not learning:
                deviation = peers.adjust(self.model, key, device_id, tracker.smoothed, ts)
                shown = f"{name} ({state})" if state else name
                self.recent[shown] = (ts, MetricSignal(value, baseline.expected(ts), deviation))
            # Hold the baseline while the metric is far off: a slow fault must not become normal.
            # Not while still learning, though: the first days must see every operating state.
            if learning or abs(deviation) < self._settings.hold_z:
                baseline.learn_one(value, ts)
        return {
            shown: signal for shown, (seen, signal) in self.recent.items() if ts - seen <= _RECENT_S
        }

    def _new_baseline(self) -> SeasonalBaseline:
        s = self._settings
        return SeasonalBaseline(
            level_halflife_s=s.baseline_halflife_hours * 3600.0,
            season_halflife_s=s.season_halflife_hours * 3600.0,
            warmup=s.warmup_samples,
        )

    def to_state(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "duty": self.duty.to_state(),
            "metrics": {
                name: {
                    "b": t.baseline.to_state(),
                    "s": t.smoothed,
                    "t": t.last_ts,
                    "f": t.first_ts,
                }
                for name, t in self.trackers.items()
            },
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], settings: DetectSettings) -> DeviceState:
        device = cls(str(state["model"]), settings)
        device.duty.load_state(state["duty"])
        for name, saved in state["metrics"].items():
            baseline = device._new_baseline()
            baseline.load_state(saved["b"])
            device.trackers[name] = MetricTracker(
                baseline, float(saved["s"]), float(saved["t"]), float(saved["f"])
            )
        return device
