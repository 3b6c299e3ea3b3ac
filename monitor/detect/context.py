"""Operating context: how much of a metric's move the device's own surroundings explain.

A heat pump's COP, power and compressor temperature follow the outdoor temperature; a cold
week moves them all, and an hour-of-day profile cannot know the weather. When a device reports
a context metric (its name says outdoor, ambient or outside), each other metric learns, by an
exponentially weighted least-squares slope, how far its residual from the baseline moves per
unit of the context's residual, and is judged net of that. The slope learns only from samples
the baseline learns from, so a fault is not explained away as weather.

>>> s = ContextSlope()
>>> for i in range(500):
...     c = (i % 7) - 3.0
...     s.learn(2.0 * c, c, weight=0.01)
>>> round(s.beta, 2)
2.0
"""

from __future__ import annotations

from typing import Any

CONTEXT_WORDS = ("outdoor", "ambient", "outside")
_MIN_VARIANCE = 1e-6


def context_metric(names: list[str]) -> str:
    """The metric that describes the device's surroundings, or "" if it reports none."""
    return next((n for n in sorted(names) if any(w in n.lower() for w in CONTEXT_WORDS)), "")


class ContextSlope:
    __slots__ = ("beta", "n", "sxx", "sxy")

    def __init__(self) -> None:
        self.sxy = 0.0
        self.sxx = 0.0
        self.beta = 0.0
        self.n = 0

    def learn(self, residual: float, context: float, weight: float) -> None:
        """Fold one (residual, context residual) pair in, weighted like the baseline's level."""
        a = max(weight, 1.0 / (self.n + 1))
        self.sxy += a * (residual * context - self.sxy)
        self.sxx += a * (context * context - self.sxx)
        self.n += 1
        if self.sxx > _MIN_VARIANCE:
            self.beta = self.sxy / self.sxx

    def to_state(self) -> list[Any]:
        return [round(self.sxy, 5), round(self.sxx, 5), self.n]

    def load_state(self, state: list[Any]) -> None:
        self.sxy, self.sxx, self.n = float(state[0]), float(state[1]), int(state[2])
        self.beta = self.sxy / self.sxx if self.sxx > _MIN_VARIANCE else 0.0
