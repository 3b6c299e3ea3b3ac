"""What support people's verdicts teach: false alarms per rule, and which devices to relearn.

Marking a case a false alarm, or resolved, is a :func:`~monitor.cases.lifecycle.transition`
like any other, so the verdicts are those events: the daemon reads the new ones with
:func:`verdicts_since` (remembering the last event id) and tells detection to accept the
device's current behaviour as normal (a false alarm) or to learn the repaired device afresh (a
resolution); :func:`rule_statistics` sums the false alarms up per rule.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from monitor.store import Case, CaseEvent
from monitor.store.models import MONITOR_ACTOR


@dataclass(frozen=True, slots=True)
class Verdict:
    """A person's word on a case: ``kind`` is "false_alarm" or "resolved" (repaired)."""

    kind: str
    event_id: int
    case_id: int
    device_id: str
    problem: str
    rule: str
    at: float
    actor: str


@dataclass(frozen=True, slots=True)
class RuleStatistics:
    rule: str
    opened: int
    false_alarms: int
    """Cases of the rule whose current status is ``false_alarm``."""

    @property
    def precision(self) -> float | None:
        """Share of the rule's cases that were real problems (None before its first case)."""
        if self.opened == 0:
            return None
        return (self.opened - self.false_alarms) / self.opened

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "precision": self.precision}


VERDICTS = ("false_alarm", "resolved")


def false_alarms_since(session: Session, after_event_id: int) -> list[Verdict]:
    """Every case marked a false alarm by an event newer than ``after_event_id``, oldest first."""
    return verdicts_since(session, after_event_id, kinds=("false_alarm",))


def verdicts_since(
    session: Session, after_event_id: int, *, kinds: tuple[str, ...] = VERDICTS
) -> list[Verdict]:
    """Every verdict of ``kinds`` (false alarms and resolutions) by a person newer than
    ``after_event_id``, oldest first."""
    rows = session.exec(
        select(CaseEvent, Case)
        .join(Case, col(Case.id) == col(CaseEvent.case_id))
        .where(
            col(CaseEvent.kind).in_(kinds),
            CaseEvent.actor != MONITOR_ACTOR,
            col(CaseEvent.id) > after_event_id,
        )
        .order_by(col(CaseEvent.id))
    )
    return [
        Verdict(
            kind=event.kind,
            event_id=event.id or 0,
            case_id=case.id or 0,
            device_id=case.device_id,
            problem=case.problem,
            rule=case.rule,
            at=event.at_wall,
            actor=event.actor,
        )
        for event, case in rows
    ]


def rule_statistics(session: Session) -> list[RuleStatistics]:
    """Cases opened, false alarms and precision for every rule that has opened a case."""
    opened = dict(session.exec(select(Case.rule, func.count()).group_by(col(Case.rule))).all())
    false = dict(
        session.exec(
            select(Case.rule, func.count())
            .where(Case.status == "false_alarm")
            .group_by(col(Case.rule))
        ).all()
    )
    return [
        RuleStatistics(rule=rule, opened=int(count), false_alarms=int(false.get(rule, 0)))
        for rule, count in sorted(opened.items())
    ]
