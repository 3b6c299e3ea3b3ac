"""Operating state: is the device running right now?

Many products run in duty cycles: a pump is off most of the night, a charger only draws power
while a car is plugged in. A baseline that mixes "running" and "off" samples learns an average
of two different worlds and flags every switch between them. This module finds, per device and
without being told, a metric that reads (near) zero while the device is off — flow, power,
current — and from then on tells each message's state, so that every metric can keep one
baseline per state.

>>> duty = DutyCycle(decide_after=100)
>>> for i in range(100):
...     _ = duty.observe({"flow": 40.0 if i % 3 else 0.0, "temp": 20.0 + i % 5})
>>> duty.metric, duty.observe({"flow": 0.01, "temp": 21.0}), duty.observe({"flow": 38.0})
('flow', 'off', 'on')
"""

from __future__ import annotations

from typing import Any

from monitor.detect.context import is_context

_NEAR_ZERO = 0.02
"""A reading within 2 % of the metric's largest magnitude counts as zero ("off")."""
_SWITCH_ON = 0.05
"""An "off" device counts as started only above 5 % of the full scale."""
_MOSTLY = 0.5
"""Share of the decision's samples off from which a device is mostly off."""
_SPIKE = 3.0
_SUSTAINED = 3
"""Readings in a row above the spike limit that make a new full scale, not a spike."""
_NOISE = 10.0
"""A full scale that grows this many times over: the decision was made on noise."""
_MIN_SHARE, _MAX_SHARE = 0.05, 0.95
"""A duty metric must be off, and on, at least 5 % of the time."""
_STOPPED = 3
"""Readings in a row near zero that show a device without a duty metric stopping."""
_SECOND_LOOK = 2
"""A device without an on/off metric after its first decision is looked at again after this
many times as many readings: a whole day, every hour of its daily cycle."""


class DutyCycle:
    """Learns which metric (if any) marks a device's on/off state, then classifies messages."""

    __slots__ = (
        "_above",
        "_decide_after",
        "_higher",
        "_higher_min",
        "_idle",
        "_second",
        "_stats",
        "decided",
        "fraction",
        "metric",
        "n",
        "rescaled",
        "standby",
        "state",
    )

    def __init__(self, decide_after: int) -> None:
        self._decide_after = decide_after
        self._stats: dict[str, list[float]] = {}
        self.n = 0
        self.decided = False
        self.metric: str | None = None
        self.standby: str | None = None
        """On a device that ran throughout its first samples (a heat pump in winter): a
        never-negative metric that would read zero if it stopped, so that an idle day is
        its own state instead of a fault."""
        self.state = ""
        self.fraction = 0.0
        """The duty metric's latest reading as a share of its full scale: how hard the
        device works (a charger at 16 A of 32 A: 0.5)."""
        self._above = 0
        self._higher = 0
        self._higher_min = 0.0
        """Readings in a row above the full scale (up to a spike), and the smallest of them."""
        self._idle: dict[str, list[float]] = {}
        """On a device without a duty metric: per never-negative metric, its full scale and
        how many readings in a row it has been near zero."""
        self._second: dict[str, list[float]] = {}
        """On a device whose first half day showed no on/off metric: the tally of its metrics
        that run both ways (a battery's current), kept for a second decision after a whole
        day. Such a metric rests near zero only where it turns: a battery that came online at
        night discharged steadily until morning, and rests between charging and discharging
        in the afternoon. (A one-way metric that never stopped in half a day is a heat pump
        through a cold night, and has its standby metric.)"""
        self.rescaled = False
        """Set when the full scale turned out to be many times what the decision saw: a
        charger with no car in its first half day split its idle noise into "on" and "off".
        What was learned per state is meaningless; the owner clears this flag."""

    def observe(self, metrics: dict[str, float]) -> str:
        """The state for this message: ``"on"``, ``"off"``, or ``""`` if the device has none."""
        if not self.decided:
            self._learn(metrics)
            return self.state
        if self._second:
            self._look_again(metrics)
        if self.metric is not None and self.metric in metrics:
            magnitude = abs(metrics[self.metric])
            scale = self._rescale(self._stats[self.metric], magnitude)
            # Hysteresis: an idle device's standby draw wobbles around 2 % of full power, and
            # each wobble taken for a start would be judged as a running device gone cold.
            near_zero = _NEAR_ZERO if self.state == "on" else _SWITCH_ON
            self.state = "off" if magnitude <= near_zero * scale else "on"
            self.fraction = min(magnitude / scale, _SPIKE) if scale > 0 else 0.0
            return self.state
        if self._idle:
            self._watch_stops(metrics)
        if self.standby is not None and self.standby in metrics:
            # A device that never stopped in its first day draws a modulating minimum while
            # it runs: anything under 5 % of full scale is standby, wobbles and all.
            magnitude = abs(metrics[self.standby])
            scale = _follow_scale(self._stats[self.standby], magnitude)
            self.state = "off" if magnitude <= _SWITCH_ON * scale else ""
        return self.state

    def mostly_off(self) -> bool:
        """Whether the device was off at least half the time its on/off decision watched (a
        charger, a pump; not a battery)."""
        if self.metric is None:
            return False
        zeros, total, *_ = self._stats[self.metric]
        return total > 0 and zeros >= _MOSTLY * total

    def _watch_stops(self, metrics: dict[str, float]) -> None:
        """Make a metric seen stopping the standby metric: a heat pump that ran all its first
        day was given a standby metric by range alone (its compressor temperature, which never
        reads zero), and its first idle day would be judged as a running pump gone dead.

        Only while the standby metric agrees, reading below anything it read in its first day
        (an idle compressor cools to the weather): a metric falling to zero while the device
        works on is a fault (a blocked pump's flow), not a stop."""
        standby = self.standby
        agrees = (
            standby is not None
            and standby in metrics
            and metrics[standby] < self._stats[standby][3]
        )
        for name, seen in self._idle.items():
            value = metrics.get(name)
            if value is None or seen[0] < 0:
                continue
            if value < 0:
                seen[0] = -1.0  # goes negative: not a draw that stops at zero
                continue
            seen[0] = max(seen[0], value)
            seen[1] = seen[1] + 1 if value <= _NEAR_ZERO * seen[0] else 0
            if seen[1] >= _STOPPED and agrees and name != standby:
                self.standby = name
                # Its first-day minimum is its zero: a standby metric found this way is kept.
                self._stats[name] = [0.0, 0.0, seen[0], 0.0]
                # What was learned so far may mix running and standby (a charger with no car
                # all its first day): learn again, per state.
                self.rescaled = True

    def _rescale(self, stats: list[float], magnitude: float) -> float:
        """The duty metric's full scale after this reading: a spike is one reading, a real
        full scale beyond what was seen (the first car) lasts."""
        scale = stats[2]
        if magnitude <= scale:
            self._above = self._higher = 0
            return scale
        if magnitude <= _SPIKE * scale:
            # Above anything seen, but not by much: a real full scale (a winter's power on a
            # heat pump decided on a mild day) lasts. One spike taken for it would read every
            # later run as a part load: a charger's full current as 69 %.
            self._above = 0
            self._higher += 1
            self._higher_min = magnitude if self._higher == 1 else min(self._higher_min, magnitude)
            if self._higher >= _SUSTAINED:
                stats[2] = self._higher_min
                self._higher = 0
            return stats[2]
        self._above += 1
        if self._above < _SUSTAINED:
            return scale
        self._above = 0
        self.rescaled = magnitude > _NOISE * scale
        stats[2] = magnitude
        return magnitude

    def _learn(self, metrics: dict[str, float]) -> None:
        self.n += 1
        _tally(self._stats, metrics)
        if self.n >= self._decide_after:
            self._decide()

    def _look_again(self, metrics: dict[str, float]) -> None:
        """Decide once more after a whole day; until then the device runs without states."""
        self.n += 1
        _tally(self._second, {k: v for k, v in metrics.items() if k in self._second})
        if self.n < _SECOND_LOOK * self._decide_after:
            return
        metric = _duty_metric(self._second)
        if metric is not None:
            self.metric, self.standby, self._idle = metric, None, {}
            self._stats = {metric: self._second[metric]}
            self.state = "on"
            self.rescaled = True  # what was learned without states mixes both: learn again
        self._second = {}

    def _decide(self) -> None:
        # The weather is not the device: an outdoor temperature above zero all of the first
        # day is no standby draw, and an idle day read through it is judged as a fault.
        self._stats = {k: v for k, v in self._stats.items() if not is_context(k)}
        self.metric = _duty_metric(self._stats)
        if self.metric is None:
            self._second = {k: list(v) for k, v in self._stats.items() if v[3] < 0}
            # Never negative and never near zero so far, but the widest relative range: the
            # metric that follows how hard the device works (power, current).
            ranges = {
                name: st[3] / st[2]
                for name, st in self._stats.items()
                if st[2] > 0 and st[3] > _NEAR_ZERO * st[2] and st[3] >= 0
            }
            self.standby = min(ranges, key=lambda n: (ranges[n], n)) if ranges else None
            self._idle = {
                name: [st[2], 0.0] for name, st in self._stats.items() if st[3] >= 0 and st[2] > 0
            }
        keep = (self.metric, self.standby)
        self._stats = {k: v for k, v in self._stats.items() if k in keep}
        self.decided = True
        self.state = "on" if self.metric is not None else ""

    def to_state(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "d": self.decided,
            "m": self.metric,
            "b": self.standby,
            "s": self._stats,
            "i": self._idle,
            "2": self._second,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.n = int(state["n"])
        self.decided = bool(state["d"])
        self.metric = state["m"]
        self.standby = state.get("b")
        self._stats = {str(k): [float(x) for x in v] for k, v in state["s"].items()}
        self._idle = {str(k): [float(x) for x in v] for k, v in state.get("i", {}).items()}
        self._second = {str(k): [float(x) for x in v] for k, v in state.get("2", {}).items()}
        self.state = "on" if self.metric is not None else ""


def _tally(stats: dict[str, list[float]], metrics: dict[str, float]) -> None:
    for name, value in metrics.items():
        # zero count, total, max |x|, min x
        seen = stats.setdefault(name, [0.0, 0.0, 0.0, value])
        seen[2] = max(seen[2], abs(value))
        seen[3] = min(seen[3], value)
        seen[1] += 1
        if abs(value) <= _NEAR_ZERO * seen[2]:
            seen[0] += 1


def _duty_metric(stats: dict[str, list[float]]) -> str | None:
    """The metric near zero for a share of the time that makes an on/off switch, if any
    (``stats`` holds no context metric: :meth:`DutyCycle._decide` left them out)."""
    shares = {
        name: zeros / total
        for name, (zeros, total, *_) in stats.items()
        if total and _MIN_SHARE <= zeros / total <= _MAX_SHARE
    }
    # The metric that is zero most often is the cleanest switch (flow, not the vibration
    # that lingers while a pump runs down); ties go by name, so the choice is deterministic.
    return min(shares, key=lambda n: (-shares[n], n)) if shares else None


def _follow_scale(stats: list[float], magnitude: float) -> float:
    """The duty metric's full-scale magnitude, still growing after the decision: a heat pump
    decided on a mild day has seen a fraction of its winter power, and "2 % of a mild day's
    maximum" is inside its standby noise. A reading more than three times the largest so far
    is not followed here: one is a spike, and only a lasting run of them makes a new full
    scale (:meth:`DutyCycle._rescale`, the duty metric only)."""
    if stats[2] < magnitude <= _SPIKE * stats[2]:
        stats[2] = magnitude
    return stats[2]
