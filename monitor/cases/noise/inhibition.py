"""Inhibition: a device that is offline or silent, or a site that is down, explains its
metric alarms; they open no case of their own (the offline alarm itself still can)."""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import col, select

from monitor.cases.noise.base import BatchContext, Verdict
from monitor.store import Case, Device
from monitor.store.models import OPEN_CASE_STATUSES
from rules.engine import Alarm


class InhibitOffline:
    name = "inhibited"

    def __init__(self, problems: list[str], statuses: list[str], signal: str) -> None:
        self._problems = frozenset(problems)
        self._statuses = frozenset(statuses)
        self._signal = signal

    def judge(self, ctx: BatchContext, alarm: Alarm) -> Verdict | None:
        if alarm.problem in self._problems:
            return None
        because = self._why_offline(ctx, alarm.device_id)
        return None if because is None else Verdict(self.name, {"because": because})

    def _why_offline(self, ctx: BatchContext, device_id: str) -> str | None:
        latest = [s for s in ctx.signals if s.device_id == device_id]
        if latest and latest[-1].extra.get(self._signal, 0.0) > 0:
            return f"signal {self._signal}"
        device = ctx.device(device_id)
        if device is not None and device.status in self._statuses:
            return f"status {device.status}"
        if any(a.device_id == device_id and a.problem in self._problems for a in ctx.alarms):
            return "offline alarm in the same batch"
        case_id = ctx.session.exec(
            select(Case.id).where(
                Case.device_id == device_id,
                col(Case.problem).in_(self._problems),
                col(Case.status).in_(OPEN_CASE_STATUSES),
            )
        ).first()
        return None if case_id is None else f"open case {case_id}"


class InhibitSiteDown:
    name = "site_down"

    def __init__(
        self, problems: list[str], statuses: list[str], share: float, min_devices: int
    ) -> None:
        self._problems = list(problems)
        self._statuses = list(statuses)
        self._share = share
        self._min = min_devices

    def judge(self, ctx: BatchContext, alarm: Alarm) -> Verdict | None:
        if alarm.problem in self._problems:
            return None
        device = ctx.device(alarm.device_id)
        if device is None or not device.site:
            return None
        at_site = ctx.session.exec(
            select(func.count()).select_from(Device).where(Device.site == device.site)
        ).one()
        offline_case = (
            select(Case.device_id)
            .where(col(Case.problem).in_(self._problems))
            .where(col(Case.status).in_(OPEN_CASE_STATUSES))
        )
        down = ctx.session.exec(
            select(func.count())
            .select_from(Device)
            .where(Device.site == device.site)
            .where(col(Device.status).in_(self._statuses) | col(Device.id).in_(offline_case))
        ).one()
        if down < self._min or down < self._share * at_site:
            return None
        return Verdict(self.name, {"site": device.site, "down": down, "devices": at_site})
