"""Operating context: how much of a metric's move the device's own surroundings explain.

A heat pump's COP, power and compressor temperature follow the outdoor temperature, and not
in a straight line: the COP of a heat pump at 15 °C is three times the COP at -5 °C, and the
curve bends. A cold week moves them all, and an hour-of-day profile cannot know the weather.
When a device reports a context metric (its name says outdoor, ambient or outside), each other
metric learns a **profile over the context's value**: piecewise linear between knots
:data:`KNOT` context units apart (2 °C), learned online from the metric's residual from its
baseline, and is judged net of it. Beyond the range seen so far (the first cold snap) the
profile continues the slope of its outermost well-learned segment for a few knots rather than
staying flat. The profile learns only from samples the baseline learns from, so a fault is not
explained away as weather.

>>> p = ContextProfile()
>>> for i in range(2000):
...     c = (i % 21) - 10.0
...     p.learn(0.05 * c * c, c, weight=0.001)
>>> round(p.predict(4.0), 1), round(p.predict(-6.0), 1)  # 0.8 and 1.8 on the curve
(0.8, 1.8)
>>> round(p.predict(-12.0), 1)  # beyond the learned range: the outermost slope continues
6.7
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from typing import Any

CONTEXT_WORDS = ("outdoor", "ambient", "outside")
KNOT = 2.0
"""Context units between the profile's knots: fine enough to follow a COP curve to well
within a sensor's noise, coarse enough that a month of weather visits each knot often."""

_LEARNED = 24
"""Samples near a knot before its value is trusted to extend the profile (two hours of
five-minute telemetry)."""
_REACH = 3.0
"""Knots beyond the learned range the profile's slope is continued; flat after that."""


def is_context(name: str) -> bool:
    """Whether a metric describes the device's surroundings rather than the device."""
    lowered = name.lower()
    return any(w in lowered for w in CONTEXT_WORDS)


def context_metric(names: list[str]) -> str:
    """The metric that describes the device's surroundings, or "" if it reports none."""
    return next((n for n in sorted(names) if is_context(n)), "")


class ContextProfile:
    """A metric's residual as a piecewise-linear function of the context's value."""

    __slots__ = ("_keys", "counts", "knot", "values")

    def __init__(self, knot: float = KNOT) -> None:
        self.knot = knot
        """Context units between knots."""
        self.values: dict[int, float] = {}
        self.counts: dict[int, int] = {}
        self._keys: list[int] = []
        """The learned knots in order, for the look-ups outside them."""

    def predict(self, context: float) -> float:
        """How far the context moves the metric from its baseline at this context value."""
        values = self.values
        if not values:
            return 0.0
        x = context / self.knot
        k = math.floor(x)
        lo, hi = values.get(k), values.get(k + 1)
        if lo is not None and hi is not None:
            return lo + (x - k) * (hi - lo)
        return self._beyond(x)

    def _beyond(self, x: float) -> float:
        """Outside the learned knots (or in a hole between them): the line through the two
        nearest well-learned knots on the way in, continued for at most :data:`_REACH`
        knots. A slope from a few samples, carried far, predicts nonsense (a compressor at
        190 °C in a cold snap it never idled in)."""
        values, counts = self.values, self.counts
        keys = [k for k in self._keys if counts[k] >= _LEARNED] or self._keys
        if len(keys) == 1:
            return values[keys[0]]
        i = bisect_left(keys, x)
        i = min(max(i, 1), len(keys) - 1)
        k0, k1 = keys[i - 1], keys[i]
        x = min(max(x, keys[0] - _REACH), keys[-1] + _REACH)
        v0, v1 = values[k0], values[k1]
        return v0 + (x - k0) * (v1 - v0) / (k1 - k0)

    def learn(self, residual: float, context: float, weight: float) -> None:
        """Fold one (residual from the baseline, context value) pair into the two knots
        around the context value, weighted like the baseline's level."""
        x = context / self.knot
        k = math.floor(x)
        f = x - k
        error = residual - self.predict(context)
        for knot, share in ((k, 1.0 - f), (k + 1, f)):
            value = self.values.get(knot)
            if value is None:
                # A new knot starts where the profile already puts it, not at zero.
                value = self.predict(knot * self.knot)
                insort(self._keys, knot)
                self.counts[knot] = 0
            n = self.counts[knot]
            rate = max(weight, 1.0 / (n + 1.0))
            self.values[knot] = value + rate * share * error
            if share >= 0.5:
                self.counts[knot] = n + 1

    def to_state(self) -> list[Any]:
        return [[k, float(f"{self.values[k]:.5g}"), self.counts[k]] for k in self._keys]

    def load_state(self, state: list[Any]) -> None:
        # Checkpoints from before the profile held the linear slope's [sxy, sxx, n]: a list
        # of numbers, not of knots. They start a fresh profile.
        knots = [k for k in state if isinstance(k, list)]
        self.values = {int(k): float(v) for k, v, _ in knots}
        self.counts = {int(k): int(n) for k, _, n in knots}
        self._keys = sorted(self.values)
