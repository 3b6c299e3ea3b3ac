"""A device's normal message interval, learned online: the unit of every duration in detection.

A running median by stochastic approximation: each interval nudges the estimate a few percent
towards itself, up or down, so one long gap (or a burst of duplicates) moves it one small step
while the typical interval wins. Silence, smoothing, learning and bucket lengths are multiples
of it, so the same defaults fit a five-minute fleet and a 1 Hz test rig.

>>> t = MessageInterval()
>>> for i in range(200):
...     t.observe(i * 300.0 + (7200.0 if i > 100 else 0.0))
>>> 280.0 < t.seconds < 320.0
True
"""

from __future__ import annotations

from typing import Any

_STEP = 0.05
DEFAULT_S = 300.0
"""Assumed until two messages have been seen."""


class MessageInterval:
    __slots__ = ("last_ts", "n", "seconds")

    def __init__(self) -> None:
        self.seconds = DEFAULT_S
        self.last_ts: float | None = None
        self.n = 0

    def observe(self, ts: float) -> None:
        last = self.last_ts
        if last is not None and ts > last:
            dt = ts - last
            if self.n == 0:
                self.seconds = dt
            elif dt > self.seconds:
                self.seconds *= 1.0 + _STEP
            elif dt < self.seconds:
                self.seconds = max(dt, self.seconds * (1.0 - _STEP))
            self.n += 1
        if last is None or ts > last:
            self.last_ts = ts

    def silence(self, now: float, last: float | None = None) -> float:
        """Time since the last message (``last``, default its event time) in units of the
        normal interval; 0 before the interval is known."""
        if self.last_ts is None or self.n == 0:
            return 0.0
        return max(0.0, now - (self.last_ts if last is None else last)) / self.seconds

    def to_state(self) -> list[Any]:
        return [round(self.seconds, 3), self.last_ts, self.n]

    def load_state(self, state: list[Any]) -> None:
        self.seconds = float(state[0])
        self.last_ts = None if state[1] is None else float(state[1])
        self.n = int(state[2])
