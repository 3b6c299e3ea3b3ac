"""Quiet hours: the local hours in which a customer is not messaged unless it is critical.

>>> quiet_until("22:00-07:00", "Europe/Berlin", 1_767_232_800.0)  # 03:00 in Berlin
1767247200.0
>>> quiet_until("22:00-07:00", "Europe/Berlin", 1_767_268_800.0) is None  # 13:00
True
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_SPAN = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


class QuietHoursError(ValueError):
    """A quiet-hours value that cannot be read; the message shows the expected form."""


def parse_quiet_hours(text: str) -> tuple[time, time] | None:
    """``"22:00-07:00"`` → (start, end) local times; ``""`` → None (no quiet hours)."""
    if not text.strip():
        return None
    match = _SPAN.match(text)
    if match is None:
        raise QuietHoursError(f"quiet hours {text!r}: use 'HH:MM-HH:MM', such as '22:00-07:00'")
    h1, m1, h2, m2 = (int(part) for part in match.groups())
    try:
        span = time(h1, m1), time(h2, m2)
    except ValueError as exc:
        raise QuietHoursError(
            f"quiet hours {text!r}: {exc}; use times from 00:00 to 23:59"
        ) from exc
    if span[0] == span[1]:
        raise QuietHoursError(f"quiet hours {text!r}: start equals end; leave it empty for none")
    return span


def customer_zone(timezone: str) -> ZoneInfo:
    """The customer's time zone, or UTC when the name is unknown."""
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def quiet_until(quiet_hours: str, timezone: str, now: float) -> float | None:
    """If ``now`` falls in the quiet hours (local to ``timezone``), when they end; else None."""
    try:
        span = parse_quiet_hours(quiet_hours)
    except QuietHoursError:
        # Refused at import; a value that slipped in must not silence the customer forever.
        return None
    if span is None:
        return None
    start, end = span
    local = datetime.fromtimestamp(now, tz=customer_zone(timezone))
    clock = local.time().replace(tzinfo=None)
    wraps = start > end  # "22:00-07:00" spans midnight
    inside = (clock >= start or clock < end) if wraps else (start <= clock < end)
    if not inside:
        return None
    day = local.date() if clock < end else local.date() + timedelta(days=1)
    wake = datetime.combine(day, end, tzinfo=local.tzinfo)
    return wake.timestamp()
