"""Bucketed history of one metric: trend, change point, forecast and the evidence series.

A bucket spans a fixed number of the device's own message intervals (an hour on five-minute
telemetry, twelve seconds on a 1 Hz test rig), so every duration here is relative to how often
the device reports and one default works on any fleet. Per bucket two numbers are kept, both
as integers in tenths of a robust standard unit, so the state stays small: the mean raw
deviation from the baseline (for the evidence chart) and the mean peer-adjusted deviation
(for trend and change point, so that a fleet-wide move is not a device's trend).

From the closed buckets:

* **trend**: a Theil–Sen-style slope, the median of pairwise slopes at half the window's lag
  (robust to outlier buckets and to gaps, linear in the window);
* **forecast**: the buckets until the deviation reaches the failure threshold at that slope,
  with a band from the slopes' quartiles;
* **change point**: a two-sided CUSUM (Page) of the bucket deviations with a one-sigma
  allowance, so only a shift that persists accumulates;
* **sustained**: the smallest absolute bucket deviation over the last buckets, i.e. how far
  the metric has *stayed* away, which lets a rule ask for persistence in samples, not hours.

>>> h = BucketHistory()
>>> for b in range(30):
...     h.close(b, z=0.5 * b, dev=0.5 * b)
>>> round(h.trend, 2), h.level
(0.5, 14.0)
>>> round(h.buckets_to(10.0)[0], 1)  # already beyond a threshold of 10
0.0
"""

from __future__ import annotations

from array import array
from typing import Any

KEEP = 72
"""Buckets kept: the evidence chart's span (three days of hourly points)."""
TREND_WINDOW = 48
MIN_TREND = 12
SUSTAIN = 12
"""Buckets the deviation must have stayed away for ``sustained`` (12 h on 5-minute data)."""
_CUSUM_K = 1.0
_CUSUM_CAP = 500.0
_SCALE = 10.0
_CLIP = 300


def _q(x: float) -> int:
    return max(-_CLIP, min(_CLIP, round(x * _SCALE)))


class BucketHistory:
    """Closed buckets of one metric and the statistics derived from them."""

    __slots__ = (
        "cusum_hi",
        "cusum_lo",
        "dev",
        "index",
        "level",
        "slope_hi",
        "slope_lo",
        "sustained",
        "trend",
        "z",
    )

    def __init__(self) -> None:
        # Packed arrays, not lists of int objects: a full history of ten trackers took
        # tens of kilobytes per device in RAM.
        self.index = array("l")
        self.z = array("h")
        self.dev = array("h")
        self.cusum_hi = 0.0
        self.cusum_lo = 0.0
        self.trend = 0.0
        self.slope_lo = 0.0
        self.slope_hi = 0.0
        self.level = 0.0
        self.sustained = 0.0

    def close(self, bucket: int, z: float, dev: float) -> None:
        """Record a finished bucket's mean raw deviation ``z`` and peer-adjusted ``dev``."""
        self.index.append(bucket)
        self.z.append(_q(z))
        self.dev.append(_q(dev))
        if len(self.index) > KEEP:
            del self.index[0], self.z[0]
        if len(self.dev) > TREND_WINDOW:
            # Trend and persistence look back TREND_WINDOW buckets; only the chart needs more.
            del self.dev[: len(self.dev) - TREND_WINDOW]
        self.cusum_hi = min(_CUSUM_CAP, max(0.0, self.cusum_hi + dev - _CUSUM_K))
        self.cusum_lo = min(_CUSUM_CAP, max(0.0, self.cusum_lo - dev - _CUSUM_K))
        self._derive()

    def _derive(self) -> None:
        devs = self.dev
        idx = self.index[-len(devs) :] if devs else array("l")
        n = len(devs)
        last = sorted(devs[-3:])
        self.level = last[len(last) // 2] / _SCALE
        recent = devs[-SUSTAIN:]
        self.sustained = (
            min(map(abs, recent)) / _SCALE * (1 if self.level >= 0 else -1)
            if len(recent) == SUSTAIN
            else 0.0
        )
        if n < MIN_TREND:
            self.trend = self.slope_lo = self.slope_hi = 0.0
            return
        lag = n // 2
        slopes = sorted(
            (devs[i + lag] - devs[i]) / (_SCALE * (idx[i + lag] - idx[i])) for i in range(n - lag)
        )
        m = len(slopes)
        self.trend = slopes[m // 2]
        self.slope_lo = slopes[m // 4]
        self.slope_hi = slopes[(3 * m) // 4]

    @property
    def change(self) -> float:
        """The CUSUM statistic of a persistent shift, in sigma-buckets (largest direction)."""
        return max(self.cusum_hi, self.cusum_lo)

    def buckets_to(self, threshold: float) -> tuple[float, float, float] | None:
        """Buckets until ``|deviation|`` reaches ``threshold``: (central, early, late).

        ``None`` when the deviation is not moving steadily towards the threshold (the
        slope's quartiles disagree in sign with the current level, or there is no level).
        """
        level = self.level
        if abs(level) >= threshold:
            return (0.0, 0.0, 0.0)
        sign = 1.0 if level >= 0 else -1.0
        lo, mid, hi = sorted((self.slope_lo * sign, self.trend * sign, self.slope_hi * sign))
        if lo <= 0.0 or abs(level) < 1.0:
            return None
        gap = threshold - abs(level)
        return (gap / mid, gap / hi, gap / lo)

    def reset(self) -> None:
        """Forget the statistics, keep the chart: behaviour from now on is the new normal."""
        self.dev = array("h", bytes(self.dev.itemsize * len(self.dev)))
        self.cusum_hi = self.cusum_lo = 0.0
        self.trend = self.slope_lo = self.slope_hi = self.level = self.sustained = 0.0

    def to_state(self) -> list[Any]:
        # Bucket numbers as deltas (mostly 1): they compress to almost nothing.
        deltas = [b - a for a, b in zip([0, *self.index], self.index, strict=False)]
        return [
            deltas,
            self.z.tolist(),
            self.dev.tolist(),
            round(self.cusum_hi, 2),
            round(self.cusum_lo, 2),
        ]

    def load_state(self, state: list[Any]) -> None:
        deltas, z, dev, hi, lo = state
        total = 0
        self.index = array("l")
        for d in deltas:
            total += int(d)
            self.index.append(total)
        self.z = array("h", (int(v) for v in z))
        self.dev = array("h", (int(v) for v in dev))
        self.cusum_hi, self.cusum_lo = float(hi), float(lo)
        if self.index:
            self._derive()

    def series(self) -> list[tuple[int, float]]:
        """(bucket, mean raw deviation) of every kept bucket, for the evidence chart."""
        return [(b, z / _SCALE) for b, z in zip(self.index, self.z, strict=True)]
