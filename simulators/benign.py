"""Benign events: things that look unusual in telemetry but must not open a service case.

Planned per device from its own random generator, applied to its arrays, and reported in the
fleet's truth so that a false alarm can be traced to the event that provoked it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simulators.products import BoolArray, ProductKind
from simulators.weather import DAY, HOUR, Array, Weather

JsonValue = str | float | int


@dataclass(frozen=True)
class Spike:
    """A single-sample outlier: ``size`` added to ``metric`` at sample ``index``."""

    index: int
    metric: str
    size: float


@dataclass(frozen=True)
class FirmwareUpdate:
    """From sample ``index`` on, ``metric`` reads ``offset`` higher and ``fw`` is ``after``."""

    index: int
    metric: str
    offset: float
    before: str
    after: str


@dataclass
class DeviceBenign:
    """A device's benign events; sample indexes refer to the device's regular time grid.

    ``late`` maps an index to the delay (seconds) with which that reading is delivered;
    ``duplicates`` are indexes delivered twice.
    """

    idle: tuple[int, int] | None = None
    gap: tuple[int, int] | None = None
    firmware: FirmwareUpdate | None = None
    spikes: list[Spike] = field(default_factory=list)
    late: dict[int, float] = field(default_factory=dict)
    duplicates: list[int] = field(default_factory=list)

    def idle_mask(self, n: int) -> BoolArray:
        """True for samples during the idle day."""
        mask = np.zeros(n, dtype=np.bool_)
        if self.idle is not None:
            mask[self.idle[0] : self.idle[1]] = True
        return mask

    def sent_mask(self, n: int) -> BoolArray:
        """False for samples never sent because the device had no connectivity."""
        mask = np.ones(n, dtype=np.bool_)
        if self.gap is not None:
            mask[self.gap[0] : self.gap[1]] = False
        return mask

    def apply(self, metrics: dict[str, Array]) -> None:
        """Add the firmware recalibration offset and the spikes to the metric arrays."""
        if self.firmware is not None:
            metrics[self.firmware.metric][self.firmware.index :] += self.firmware.offset
        for spike in self.spikes:
            metrics[spike.metric][spike.index] += spike.size

    def truth(self, ts: Array, step: float, weather: Weather) -> list[dict[str, JsonValue]]:
        """The events as JSON-ready dicts with ``kind``, ``start``, ``end`` and details."""
        events: list[dict[str, JsonValue]] = []

        def at(i: int) -> float:
            return float(ts[i])

        if weather.cold_snap is not None:
            snap = weather.cold_snap
            events.append(
                {"kind": "cold_snap", "start": snap.start, "end": snap.end, "depth_c": snap.depth_c}
            )
        if self.idle is not None:
            events.append(
                {"kind": "idle_day", "start": at(self.idle[0]), "end": at(self.idle[1] - 1) + step}
            )
        if self.gap is not None:
            events.append(
                {
                    "kind": "connectivity_gap",
                    "start": at(self.gap[0]),
                    "end": at(self.gap[1] - 1) + step,
                }
            )
        if self.firmware is not None:
            fw = self.firmware
            events.append(
                {
                    "kind": "firmware_update",
                    "start": at(fw.index),
                    "end": at(fw.index),
                    "metric": fw.metric,
                    "offset": fw.offset,
                    "fw_before": fw.before,
                    "fw_after": fw.after,
                }
            )
        events.extend(
            {
                "kind": "spike",
                "start": at(s.index),
                "end": at(s.index),
                "metric": s.metric,
                "size": s.size,
            }
            for s in self.spikes
        )
        events.extend(
            {
                "kind": "late_message",
                "start": at(i),
                "end": at(i) + delay,
                "seq": i + 1,
                "delay": delay,
            }
            for i, delay in sorted(self.late.items())
        )
        events.extend(
            {"kind": "duplicate_message", "start": at(i), "end": at(i), "seq": i + 1}
            for i in self.duplicates
        )
        return sorted(events, key=lambda e: (float(e["start"]), str(e["kind"])))


def plan_benign(
    rng: np.random.Generator, product: ProductKind, n: int, step: float
) -> DeviceBenign:
    """Choose which benign events a device sees and when (indexes into its n samples)."""
    plan = DeviceBenign()
    per_day = max(round(DAY / step), 1)
    # Leave the first two days alone so that every device has some clean history.
    first = min(2 * per_day, n // 3)
    if n - first > per_day and rng.random() < 0.3:
        begin = int(rng.integers(first, n - per_day))
        plan.idle = (begin, begin + per_day)
    gap_len = max(int(rng.uniform(2, 10) * HOUR / step), 1)
    if n - first > gap_len + 1 and rng.random() < 0.25:
        begin = int(rng.integers(first, n - gap_len))
        plan.gap = (begin, begin + gap_len)
    if n - first > 1 and rng.random() < 0.3:
        metric, offset = product.fw_shift
        before, after = product.fw_versions
        plan.firmware = FirmwareUpdate(int(rng.integers(first, n)), metric, offset, before, after)
    sent = plan.sent_mask(n)

    def pick(count: int) -> list[int]:
        candidates = np.flatnonzero(sent[first:]) + first
        if len(candidates) == 0:
            return []
        chosen = rng.choice(candidates, size=min(count, len(candidates)), replace=False)
        return sorted(int(i) for i in chosen)

    for index in pick(int(rng.integers(0, 4))):
        spiked = product.metrics[int(rng.integers(len(product.metrics)))]
        sign = 1.0 if rng.random() < 0.7 else -1.0
        plan.spikes.append(Spike(index, spiked.name, sign * spiked.spike))
    if rng.random() < 0.35:
        plan.late = {i: float(rng.uniform(2, 18)) * step for i in pick(int(rng.integers(1, 4)))}
    if rng.random() < 0.35:
        plan.duplicates = pick(int(rng.integers(1, 4)))
    return plan
