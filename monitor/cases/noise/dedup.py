"""Dedup: an alarm for a device and problem that already has an open case opens nothing new."""

from __future__ import annotations

from sqlmodel import col, select

from monitor.cases.noise.base import BatchContext, Verdict
from monitor.store import Case
from monitor.store.models import OPEN_CASE_STATUSES
from rules.engine import Alarm


class Dedup:
    name = "duplicate"

    def judge(self, ctx: BatchContext, alarm: Alarm) -> Verdict | None:
        if (alarm.device_id, alarm.problem) in ctx.passed:
            return Verdict(self.name, {"same_batch": True})
        case_id = ctx.session.exec(
            select(Case.id).where(
                Case.device_id == alarm.device_id,
                Case.problem == alarm.problem,
                col(Case.status).in_(OPEN_CASE_STATUSES),
            )
        ).first()
        return None if case_id is None else Verdict(self.name, {"case_id": case_id})
