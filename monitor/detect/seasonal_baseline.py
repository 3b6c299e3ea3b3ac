"""A robust, daily-seasonal baseline of one metric, learned online on event time.

The baseline is a slow level plus an hour-of-day profile; the spread is an exponentially
weighted mean absolute residual. Updates are weighted by the time since the previous sample,
not by sample count, so a device that reports every minute and one that reports every
fifteen minutes forget at the same rate, and a gap does not distort what was learned.

>>> b = SeasonalBaseline(level_halflife_s=86400, season_halflife_s=4 * 86400, warmup=20)
>>> for i in range(200):
...     b.learn_one(10.0 + (0.5 if i % 2 else -0.5), ts=i * 300.0)
>>> b.warm, abs(b.score_one(10.0, ts=200 * 300.0)) < 0.1, b.score_one(20.0, ts=200 * 300.0) > 5
(True, True, True)
"""

from __future__ import annotations

import math
from array import array
from functools import lru_cache
from typing import Any

_LN2 = math.log(2.0)
_HOURS = 24
_MAX_STEP_S = 6 * 3600.0
_HOUR_S = 3600.0
_MAX_Z = 20.0
_SETTLED_HL_S = 30 * 86400.0
_WIDEN = 1.5
"""How many times its settled value a spread may grow to (2 let seed 5's hp-0034 leak go
unreported until after failure on a 60-day fleet; 1.5 caught it with no other change on the
tuning and report seeds)."""
_SEASON_CLIP = 10.0
"""How many times the level's clip (three spreads) one reading may move its hour's profile by."""
_NEIGHBOURS = ((-2, 1.0), (-1, 2.0), (0, 3.0), (1, 2.0), (2, 1.0))
"""Hours either side of an hour, and their weight, in the smoothed daily cycle: it keeps
95 % of a daily cosine's amplitude."""
_MAD_TO_SIGMA = 1.2533  # mean absolute deviation of a normal distribution × this = sigma


@lru_cache(maxsize=4096)
def decay(dt: float, halflife: float) -> float:
    """The weight an exponentially weighted mean gives a sample ``dt`` seconds after the last.

    Cached: devices report on a few fixed periods, so the same few values recur millions of
    times, and ``exp`` was the detector's largest single cost.
    """
    return 1.0 - math.exp(-_LN2 * min(max(dt, 1.0), _MAX_STEP_S) / halflife)


class SeasonalBaseline:
    """Learns a metric's healthy level, daily shape and spread; scores deviations in sigmas."""

    __slots__ = (
        "_level_hl",
        "_season_hl",
        "_season_prior",
        "_warmup",
        "last_ts",
        "level",
        "n",
        "scale",
        "season",
        "season_n",
        "settled",
    )

    def __init__(
        self,
        level_halflife_s: float,
        season_halflife_s: float,
        warmup: int,
        season_prior: int = 0,
    ) -> None:
        self._level_hl = level_halflife_s
        self._season_prior = season_prior
        """Samples' worth of belief that an hour looks like the others: a state seen an hour a
        day fills each hour from a handful of samples, and one odd start must not become
        that hour's shape."""
        # Each hour bucket is visited 1/24 of the time: its own clock runs 24 times slower.
        self._season_hl = season_halflife_s / _HOURS
        self._warmup = warmup
        self.n = 0
        self.level = 0.0
        self.scale = 0.0
        self.settled = 0.0
        """The spread's slow average (a month's half-life): what the band may widen from."""
        # Packed arrays: a list of 24 float objects took four times the memory.
        self.season = array("d", bytes(8 * _HOURS))
        self.season_n = array("l", bytes(8 * _HOURS))
        self.last_ts = 0.0

    @property
    def warm(self) -> bool:
        return self.n >= self._warmup

    @property
    def warmup(self) -> int:
        return self._warmup

    def expected(self, ts: float) -> float:
        return self.level + self.daily(ts)

    def daily(self, ts: float) -> float:
        """The hour-of-day profile's offset at ``ts``, without the level."""
        return self.season[int(ts % 86400.0) // 3600]

    def daily_smooth(self, ts: float) -> float:
        """The hour-of-day profile at ``ts`` as a smooth curve: each hour averaged with its
        neighbours, weighted by how often each was seen, and linear between the middles of
        the hours. The raw profile is a staircase, and an hour seen on few days keeps the
        weather of those days; another state borrowing the cycle (see
        ``DeviceState._carried``) would read both as deviations."""
        x = (ts % 86400.0) / 3600.0 - 0.5
        hour = math.floor(x)
        share = x - hour
        before, after = self._smoothed_hour(hour), self._smoothed_hour(hour + 1)
        return before + share * (after - before)

    def _smoothed_hour(self, hour: int) -> float:
        season, seen = self.season, self.season_n
        total = weight = 0.0
        for offset, taper in _NEIGHBOURS:
            h = (hour + offset) % _HOURS
            w = taper * seen[h]
            total += w * season[h]
            weight += w
        return total / weight if weight > 0 else season[hour % _HOURS]

    def score_one(self, value: float, ts: float) -> float:
        if self.n == 0:
            return 0.0
        residual = value - self.level - self.season[int(ts % 86400.0) // 3600]
        z = residual / max(self.scale, 0.01 * abs(self.level), 1e-3)
        return _MAX_Z if z > _MAX_Z else -_MAX_Z if z < -_MAX_Z else z

    def learn_one(self, value: float, ts: float) -> None:
        n = self.n
        if n == 0:
            self.level, self.last_ts, self.n = value, ts, 1
            return
        dt = ts - self.last_ts
        hour = int(ts % 86400.0) // 3600
        season = self.season
        # Learn at least as fast as a running mean, so the first days are not sticky.
        catch_up = 1.0 / (n + 1)
        a_level = max(decay(dt, self._level_hl), catch_up)
        a_scale = max(decay(dt, self._level_hl / 4.0), catch_up)
        seen = self.season_n[hour] + self._season_prior
        # An hour's profile learns from at most an hour of elapsed time: after a gap of six
        # hours the first reading weighed a quarter, and one spike there moved its hour's
        # profile by twelve spreads (every later reading at that hour read low).
        a_season = max(decay(min(dt, _HOUR_S), self._season_hl), 1.0 / (seen + 1))
        level = self.level
        residual = value - level - season[hour]
        # Outliers do not teach the spread: neither a spike nor a fault creeping up may widen
        # the band that is meant to judge them.
        limit = 3.0 * max(self.scale, 0.01 * abs(level), 1e-3)
        if n < self._warmup or abs(residual) < limit:
            self.scale += a_scale * (abs(residual) * _MAD_TO_SIGMA - self.scale)
            # A slow fault's residuals each stay within three spreads of a band they keep
            # widening: seed 5's hp-0034 leaked for nine days while its COP band grew tenfold
            # and its deviation stayed near one spread. The band may grow, but not beyond
            # _WIDEN times what it has been for weeks.
            self.settled += max(decay(dt, _SETTLED_HL_S), catch_up) * (self.scale - self.settled)
            if n >= self._warmup and self.scale > _WIDEN * self.settled:
                self.scale = _WIDEN * self.settled
        if self.scale > 0:
            limit = 3.0 * max(self.scale, 0.01 * abs(level), 1e-3)
            residual = max(-limit, min(limit, residual))
        level += a_level * residual
        self.level = level
        seasonal = value - level - season[hour]
        if n >= self._warmup:
            # Clipped too, far more loosely than the level: a heat pump's hour still adapting
            # to the weather after its first week moves by 15 spreads and more, a spike by
            # hundreds.
            wide = _SEASON_CLIP * limit
            seasonal = max(-wide, min(wide, seasonal))
        season[hour] += a_season * seasonal
        self.season_n[hour] += 1
        self.last_ts = ts
        self.n = n + 1

    def floor_scale(self) -> float:
        # A perfectly constant metric must not turn its first wobble into infinite sigmas
        # (written out in score_one and learn_one, which run for every sample).
        return max(self.scale, 0.01 * abs(self.level), 1e-3)

    def to_state(self) -> dict[str, Any]:
        # Levels to a two-hundredth of the spread (a z-score off by 0.005 at most): the
        # digits beyond that were most of a checkpoint's bytes.
        places = _places(self.floor_scale() / 200.0)
        return {
            "n": self.n,
            "level": round(self.level, places),
            "scale": _sig(self.scale),
            # Three digits: it only caps how far the band may widen.
            "settled": float(f"{self.settled:.3g}"),
            "season": [round(v, places) for v in self.season],
            "season_n": self.season_n.tolist(),
            "last_ts": self.last_ts,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.n = int(state["n"])
        self.level = float(state["level"])
        self.scale = float(state["scale"])
        # Checkpoints from before the slow average was kept start it at the spread.
        self.settled = float(state.get("settled", self.scale))
        self.season = array("d", (float(v) for v in state["season"]))
        self.season_n = array("l", (int(v) for v in state["season_n"]))
        self.last_ts = float(state["last_ts"])


def _sig(x: float) -> float:
    return float(f"{x:.7g}")


def _places(resolution: float) -> int:
    """Decimal places that keep a value to within ``resolution``."""
    return max(0, math.ceil(-math.log10(resolution)))
