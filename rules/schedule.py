"""When a rule is active: days of the week and hours of the day, in a given time zone."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
DEVICE_ZONES = ("device", "customer")
"""Time zone words that mean "the device's own": its ``timezone`` / ``customer.timezone``."""


class Schedule(BaseModel):
    """Active on ``days`` between ``hours`` ("08:00-18:00"; "22:00-06:00" spans midnight and
    belongs to the day it starts on), local to ``timezone``: an IANA name, or ``device`` /
    ``customer`` for the device's own zone (UTC when unknown)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    days: list[Day] = Field(default_factory=lambda: list(DAYS), min_length=1)
    hours: str = "00:00-24:00"
    timezone: str = "UTC"

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        _minutes(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        if value not in DEVICE_ZONES and _zone(value) is None:
            raise ValueError(
                f"unknown time zone {value!r}. Fix: an IANA name such as 'Europe/Berlin', "
                "or 'device' / 'customer' for the device's own"
            )
        return value

    def active(self, ts: float, attributes: Mapping[str, str]) -> bool:
        """Whether event time ``ts`` falls inside the schedule for a device."""
        zone = _zone(self._zone_name(attributes)) or _zone("UTC")
        local = datetime.fromtimestamp(ts, zone)
        start, end = _minutes(self.hours)
        minute = local.hour * 60 + local.minute
        if start < end:
            return DAYS[local.weekday()] in self.days and start <= minute < end
        # Spanning midnight: the early hours belong to the previous day's window.
        if minute >= start:
            return DAYS[local.weekday()] in self.days
        return minute < end and DAYS[(local.weekday() - 1) % 7] in self.days

    def _zone_name(self, attributes: Mapping[str, str]) -> str:
        if self.timezone == "device":
            return attributes.get("timezone", "UTC")
        if self.timezone == "customer":
            return attributes.get("customer.timezone", "UTC")
        return self.timezone


@lru_cache(maxsize=64)
def _minutes(hours: str) -> tuple[int, int]:
    match = _HOURS.match(hours)
    if match is None:
        raise ValueError(f"{hours!r} is not a time range. Fix: write e.g. '08:00-18:00'")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if not (0 <= start < 24 * 60 and 0 < end <= 24 * 60 and m1 < 60 and m2 < 60) or start == end:
        raise ValueError(f"{hours!r} is not a time range. Fix: hours 00:00-24:00, start != end")
    return start, end


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
