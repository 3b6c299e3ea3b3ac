"""Dedup: an alarm for a device and problem that already has an open case opens nothing new."""

from __future__ import annotations

from monitor.cases.lifecycle import open_case
from monitor.cases.noise.base import BatchContext, Verdict
from rules.engine import Alarm


class Dedup:
    name = "duplicate"

    def judge(self, ctx: BatchContext, alarm: Alarm) -> Verdict | None:
        if (alarm.device_id, alarm.problem) in ctx.passed:
            return Verdict(self.name, {"same_batch": True})
        case = open_case(ctx.session, alarm.device_id, alarm.problem)
        return None if case is None else Verdict(self.name, {"case_id": case.id})
