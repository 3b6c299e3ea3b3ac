"""Outdoor temperature shared by the fleet: a daily cycle, slow weather fronts, a cold snap."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

DAY = 86400.0
HOUR = 3600.0

Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Site:
    """Where a device stands: its weather offset and the clock its owners live by."""

    name: str
    timezone: str
    utc_offset_h: float
    mean_temp_c: float


@dataclass(frozen=True)
class ColdSnap:
    """A fleet-wide drop of the outdoor temperature by ``depth_c`` between start and end."""

    start: float
    end: float
    depth_c: float


@dataclass(frozen=True)
class Weather:
    """Fleet weather: fronts are sums of slow sinusoids, so any time can be asked in any order.

    ``front_periods_s``, ``front_amplitudes_c`` and ``front_phases`` describe the fronts;
    ``cold_snap`` is the one benign fleet-wide cold event, or None for a short simulation.
    """

    front_periods_s: tuple[float, ...]
    front_amplitudes_c: tuple[float, ...]
    front_phases: tuple[float, ...]
    daily_amplitude_c: float
    cold_snap: ColdSnap | None

    def outdoor_temp(self, ts: Array, site: Site) -> Array:
        """Outdoor temperature in °C at each time for a site (no sensor noise)."""
        hour = local_hour(ts, site)
        # Warmest around 15:00 local time, coldest around 03:00.
        daily = self.daily_amplitude_c * np.cos(2 * np.pi * (hour - 15.0) / 24.0)
        fronts = np.zeros_like(ts)
        for period, amplitude, phase in zip(
            self.front_periods_s, self.front_amplitudes_c, self.front_phases, strict=True
        ):
            fronts += amplitude * np.sin(2 * np.pi * ts / period + phase)
        return site.mean_temp_c + daily + fronts - self.cold_snap_drop(ts)

    def cold_snap_drop(self, ts: Array) -> Array:
        """How many °C the cold snap takes off at each time (0 outside it, smooth edges)."""
        if self.cold_snap is None:
            return np.zeros_like(ts)
        snap = self.cold_snap
        ramp = 6 * HOUR
        rise = np.clip((ts - snap.start) / ramp, 0.0, 1.0)
        fall = np.clip((snap.end - ts) / ramp, 0.0, 1.0)
        return snap.depth_c * np.minimum(rise, fall)


def local_hour(ts: Array, site: Site) -> Array:
    """Hour of the local day (0–24) at each time; daylight saving is ignored."""
    return ((ts + site.utc_offset_h * HOUR) % DAY) / HOUR


def make_weather(rng: np.random.Generator, start: float, end: float) -> Weather:
    """Random fronts, and a cold snap in the middle of the span when the span allows it."""
    periods = tuple(float(p) for p in rng.uniform(3.0, 9.0, size=3) * DAY)
    amplitudes = tuple(float(a) for a in rng.uniform(1.0, 3.0, size=3))
    phases = tuple(float(p) for p in rng.uniform(0, 2 * np.pi, size=3))
    span = end - start
    snap = None
    if span >= 6 * DAY:
        length = float(rng.uniform(2.0, 3.0)) * DAY
        snap_start = float(rng.uniform(start + 0.4 * span, end - 0.1 * span - length))
        snap_start = max(snap_start, start + 0.3 * span)
        snap = ColdSnap(snap_start, snap_start + length, float(rng.uniform(8.0, 12.0)))
    return Weather(periods, amplitudes, phases, float(rng.uniform(3.0, 6.0)), snap)


SITES: tuple[Site, ...] = (
    Site("london-north", "Europe/London", 0.0, 10.0),
    Site("bristol", "Europe/London", 0.0, 11.0),
    Site("berlin-mitte", "Europe/Berlin", 1.0, 8.0),
    Site("munich-east", "Europe/Berlin", 1.0, 6.0),
    Site("tokyo-setagaya", "Asia/Tokyo", 9.0, 12.0),
    Site("sapporo", "Asia/Tokyo", 9.0, 3.0),
)
