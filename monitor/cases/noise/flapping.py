"""Flap suppression: a device and problem that keeps opening and ending cases is logged, not
opened again, until its recent cases fall out of the window."""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import col, select

from monitor.cases.noise.base import BatchContext, Verdict
from monitor.store import Case
from rules.engine import Alarm


class Flapping:
    name = "flapping"

    def __init__(self, window_seconds: float, max_cases: int) -> None:
        self._window = window_seconds
        self._max = max_cases

    def judge(self, ctx: BatchContext, alarm: Alarm) -> Verdict | None:
        recent = ctx.session.exec(
            select(func.count())
            .select_from(Case)
            .where(
                Case.device_id == alarm.device_id,
                Case.problem == alarm.problem,
                col(Case.opened_at) >= alarm.at - self._window,
            )
        ).one()
        if recent < self._max:
            return None
        return Verdict(self.name, {"recent_cases": recent, "window_s": self._window})
