"""How a simulated support team works: office hours, call-backs, visits and repairs.

Pure timing on plain data, deterministic by seed. Times are epoch seconds; office hours are
the customer's local hours (the technicians work where the customers live), Monday to Friday.
"""

from __future__ import annotations

import numpy as np

from simulators.weather import DAY, HOUR

OPENS_H, CLOSES_H = 8.0, 18.0
_SUPPORT_STREAM = 4
_CALL_BACK, _VISIT, _REPAIR = range(3)


class SupportTeam:
    """The team that calls customers back, schedules visits and repairs products."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def call_back_at(self, called_at: float, utc_offset_h: float, case_key: int) -> float:
        """A human's first response to a customer's call: 1–8 office hours later."""
        hours = float(self._rng(_CALL_BACK, case_key).uniform(1.0, 8.0))
        return add_office_hours(called_at, hours, utc_offset_h)

    def visit_at(
        self, booked_at: float, utc_offset_h: float, case_key: int, *, urgent: bool
    ) -> float:
        """When a technician arrives: the next office day when urgent, else within 1–4 days."""
        rng = self._rng(_VISIT, case_key)
        days = 1.0 if urgent else float(rng.integers(1, 5))
        day_start = _local_midnight(booked_at, utc_offset_h) + days * DAY
        slot = float(rng.uniform(OPENS_H + 1.0, CLOSES_H - 2.0)) * HOUR
        return next_office_time(day_start + slot, utc_offset_h)

    def repair_seconds(self, case_key: int) -> float:
        """How long the repair takes once the technician is there."""
        return float(self._rng(_REPAIR, case_key).uniform(0.5, 3.0)) * HOUR

    def _rng(self, what: int, case_key: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, _SUPPORT_STREAM, what, case_key])


def next_office_time(at: float, utc_offset_h: float) -> float:
    """``at`` if the office is open then, else the next opening (weekends skipped)."""
    local = at + utc_offset_h * HOUR
    hour = (local % DAY) / HOUR
    weekday = _weekday(local)
    if weekday < 5 and OPENS_H <= hour < CLOSES_H:
        return at
    midnight = local - (local % DAY)
    days = 0 if hour < OPENS_H and weekday < 5 else 1
    while _weekday(midnight + days * DAY) >= 5:
        days += 1
    return midnight + days * DAY + OPENS_H * HOUR - utc_offset_h * HOUR


def add_office_hours(at: float, hours: float, utc_offset_h: float) -> float:
    """The time ``hours`` office hours after ``at``."""
    now = next_office_time(at, utc_offset_h)
    left = hours * HOUR
    while True:
        local = now + utc_offset_h * HOUR
        until_close = CLOSES_H * HOUR - (local % DAY)
        if left <= until_close:
            return now + left
        left -= until_close
        now = next_office_time(now + until_close, utc_offset_h)


def _local_midnight(at: float, utc_offset_h: float) -> float:
    local = at + utc_offset_h * HOUR
    return local - (local % DAY) - utc_offset_h * HOUR


def _weekday(local: float) -> int:
    # 1970-01-01 was a Thursday (weekday 3, Monday = 0).
    return int((local // DAY + 3) % 7)
