"""Peer comparison: what the other devices of the same model do at the same time.

When every heat pump's compressor runs hotter during a cold snap, or a firmware roll-out moves
a reading on every device, that is not a fault of each device. A device's sustained deviation
is therefore judged against its peers': how far it sits from their median, in units of how far
the peers themselves scatter right now (a robust spread, with a floor). Both are taken in the
metric's own units, since a warm front moves every device by the same degrees, not by the same
number of each device's spreads. A fleet-wide move cancels out; a move that scatters the fleet
widely (weather hits each house differently) needs a larger excursion; one device drifting
away from calm peers stands out, magnified (down to :data:`MIN_SPREAD` of its own spread) so
that it is seen early. Whether its baseline may keep learning is judged without that
magnification (:attr:`FleetPeers.gain`). Only peers heard from recently take part, so
devices that are off or silent do not anchor the comparison. Peers are kept per metric and
operating state, and per metric across states, so that a device without states still has
peers among its twins that have them. Where too few of a model are heard from in a state, the
devices that report the same metrics (its kin, of any model) are compared with instead.
"""

from __future__ import annotations

import math
from typing import Any

_FRESH_S = 2 * 3600.0
"""Peers whose last value is older than this (off, silent) do not take part."""
MIN_SPREAD = 0.5
"""Floor of the peer scatter, in the device's own spreads."""


_TYPICAL = 1.0
"""Typical size of a healthy metric's relative deviation; metrics that swing more are scaled."""
_CLIP = 10.0
_MEMORY = 288.0
"""How many of a device's messages its typical-swing estimate averages (about a day of
five-minute telemetry)."""


class _Peers:
    __slots__ = ("latest", "median", "spread", "stale", "swing", "swings")

    def __init__(self) -> None:
        self.latest: dict[str, tuple[float, float]] = {}
        self.median = 0.0
        self.spread = MIN_SPREAD
        self.stale = 0
        self.swings: dict[str, float] = {}
        """Each device's typical relative deviation (clipped, about a day's average)."""
        self.swing = 0.0
        """The median device's: what is typical of the metric on this model."""


class FleetPeers:
    """Latest sustained deviation of every device, per (model, metric and state)."""

    def __init__(self, min_peers: int) -> None:
        self._min_peers = min_peers
        self._groups: dict[tuple[str, str], _Peers] = {}
        self.gain = 1.0
        """How many times the last :meth:`adjust` magnified the deviation because its peers
        scatter less than the device's own spread (1 when they do not)."""

    def adjust(
        self,
        model: str,
        metric: str,
        device_id: str,
        deviation: float,
        ts: float,
        *,
        scale: float = 1.0,
        kin: str = "",
    ) -> float:
        """Record ``deviation`` (in the device's own spreads, ``scale`` each) at ``ts``;
        return it relative to the peers' median and scatter, in the device's own spreads.

        The peers are compared in the metric's own units: a warm front lifts every charger's
        connector by the same degrees, which is many spreads for a charger with a tight
        baseline and few for one with a loose baseline.

        When too few of the model's devices are heard from in this state right now (three of
        seven batteries charging), the devices of ``kin`` (those reporting the same metrics,
        of whatever model) are the peers. Without enough of those either, the deviation is
        returned as it is.
        """
        # Written out without max/min/abs calls: this runs for every metric of every message.
        own = deviation * scale
        group = self._record(model, metric, device_id, own, ts)
        base, state, _ = metric.partition("|")
        if state:
            # Devices of one model need not share their operating states: one battery found
            # an on/off metric in its first day, its twin did not. The twin without states is
            # compared with every state of the others (a warm front moves the metric in each
            # by the same degrees); the states themselves keep their own peers.
            self._record(model, base, device_id, own, ts)
        floor = MIN_SPREAD * scale
        if kin:
            # Not also under the metric across states, as for the model: a device without
            # states that lacks peers of its model is rare, and the record cost a tenth of
            # detection's time.
            wider = self._record(kin, metric, device_id, own, ts)
            if math.isnan(group.median):
                group = wider
                # Devices of other models explain what they share, but they are not twins
                # calm enough to magnify a deviation: healthy chargers of the small model,
                # magnified against the large one's, read "hot" in a fleet's second month.
                floor = scale
        median = group.median
        self.gain = 1.0
        if math.isnan(median):  # too few recent peers
            return deviation
        # Peers explain away what they share, but moving the other way they do not make a
        # device worse: a few chargers running at once in a cold snap, all colder than usual,
        # made the one whose surroundings were already explained look hot against them. So
        # they explain at most the device's own move: taking off all of theirs or none as
        # the device crossed zero made its deviation jump by their whole median at once.
        if own * median <= 0:
            shared = 0.0
        elif median > 0:
            shared = median if median < own else own
        else:
            shared = median if median > own else own
        spread = group.spread
        divisor = spread if spread > floor else floor
        if divisor < scale:
            self.gain = scale / divisor
        relative = (own - shared) / divisor
        # Some metrics swing far from their baseline as a matter of course (a battery's charge
        # on a cloudy week, a charger's sessions): the model's typical swing says how much,
        # and such a metric must move correspondingly further to count. Typical is the median
        # device's swing, so that failing devices cannot hide themselves by raising it: when
        # the swing was the average over the group, leaking heat pumps raised it from 1 to
        # nearly 5 within days, and a leak read a fifth of its size.
        size = relative if relative >= 0.0 else -relative
        swings = group.swings
        own_swing = swings.get(device_id, 0.0)
        swings[device_id] = own_swing + ((size if size < _CLIP else _CLIP) - own_swing) / _MEMORY
        swing = group.swing
        return relative if swing <= _TYPICAL else relative * _TYPICAL / swing

    def shared(self, model: str, metric: str) -> float:
        """The peers' median deviation in the metric's own units (what the surroundings do to
        all of them now), or NaN without enough recent peers."""
        group = self._groups.get((model, metric))
        return group.median if group is not None else math.nan

    def _record(self, model: str, metric: str, device_id: str, own: float, ts: float) -> _Peers:
        group = self._groups.get((model, metric))
        if group is None:
            group = self._groups[(model, metric)] = _Peers()
        latest = group.latest
        latest[device_id] = (own, ts)
        group.stale += 1
        # Recomputing once per fleet round keeps the cost per message constant (and small: a
        # median over the peers for every message was a tenth of detection's cost); the
        # sustained deviations it compares move slowly, so a round-old median is current.
        if group.stale >= len(latest):
            self._recompute(group, ts)
        return group

    def _recompute(self, group: _Peers, now: float) -> None:
        group.stale = 0
        recent = [v for v, t in group.latest.values() if now - t <= _FRESH_S]
        if len(recent) < self._min_peers:
            group.median = float("nan")
            return
        median = _median(recent)
        mad = _median([abs(v - median) for v in recent])
        group.median = median
        group.spread = 1.4826 * mad
        # Typical needs the word of enough devices: a device's state-less twins alone (two
        # heat pumps of nine, both leaking) do not say what is typical of the model. Those
        # missing count as swinging typically.
        swings = list(group.swings.values())
        if len(swings) < self._min_peers:
            swings += [_TYPICAL] * (self._min_peers - len(swings))
        group.swing = _median(swings)

    def to_state(self) -> dict[str, Any]:
        return {
            "groups": [
                [m, k, g.latest, {d: round(w, 3) for d, w in g.swings.items()}]
                for (m, k), g in self._groups.items()
            ]
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self._groups = {}
        for model, metric, latest, swings in state.get("groups", []):
            group = self._groups[(model, metric)] = _Peers()
            group.latest = {str(d): (float(v), float(t)) for d, (v, t) in latest.items()}
            # Older checkpoints kept one swing for the whole group: each device starts there.
            group.swings = (
                {str(d): float(w) for d, w in swings.items()}
                if isinstance(swings, dict)
                else dict.fromkeys(group.latest, float(swings))
            )
            if group.latest:
                self._recompute(group, max(t for _, t in group.latest.values()))


def _median(values: list[float]) -> float:
    """``statistics.median``, compiled: it ran once per peer group and fleet round, which is
    about once per message."""
    values.sort()
    n = len(values)
    mid = n // 2
    return values[mid] if n % 2 else (values[mid - 1] + values[mid]) / 2.0
