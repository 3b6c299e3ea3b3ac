"""Silences and maintenance windows: per device, model, site or customer; one-off or
recurring; each with an expiry. Judged on the alarm's event time, so a late message from
inside a maintenance window is still silenced."""

from __future__ import annotations

from sqlmodel import Session, col, select

from monitor.cases.noise.base import BatchContext, Verdict
from monitor.store import Device
from monitor.store.models import Silence
from rules.engine import Alarm

_PERIOD = {"daily": 86400.0, "weekly": 7 * 86400.0}


def is_active(silence: Silence, at: float) -> bool:
    """True if ``silence`` covers time ``at``.

    >>> s = Silence(scope="device", value="d", starts_at=0, ends_at=3600, repeat="daily",
    ...             expires_at=10 * 86400)
    >>> is_active(s, 86400 + 1800), is_active(s, 86400 + 7200), is_active(s, 11 * 86400)
    (True, False, False)
    """
    if at < silence.starts_at or at >= silence.expires_at:
        return False
    period = _PERIOD.get(silence.repeat)
    if period is None:
        return at < silence.ends_at
    return (at - silence.starts_at) % period < silence.ends_at - silence.starts_at


def matching_silences(session: Session, device: Device, at: float) -> list[Silence]:
    """Silences that cover ``device`` at time ``at``."""
    keys = {("device", device.id), ("model", device.model)}
    if device.site:
        keys.add(("site", device.site))
    if device.customer_id:
        keys.add(("customer", device.customer_id))
    candidates = session.exec(
        select(Silence).where(
            col(Silence.value).in_({value for _, value in keys}),
            Silence.starts_at <= at,
            Silence.expires_at > at,
        )
    )
    return [s for s in candidates if (s.scope, s.value) in keys and is_active(s, at)]


class Silences:
    name = "silenced"

    def judge(self, ctx: BatchContext, alarm: Alarm) -> Verdict | None:
        device = ctx.device(alarm.device_id) or Device(id=alarm.device_id)
        found = matching_silences(ctx.session, device, alarm.at)
        if not found:
            return None
        first = found[0]
        return Verdict(
            self.name, {"silence_id": first.id, "kind": first.kind, "scope": first.scope}
        )
