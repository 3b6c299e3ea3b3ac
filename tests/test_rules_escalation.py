"""The cases stage applies a rule's escalation to the open case."""

from __future__ import annotations

from sqlmodel import Session, select

from monitor.cases import CaseOpener
from monitor.config import NotifySettings
from monitor.store import Case, CaseEvent, Device, open_database
from rules.engine import Alarm


def test_escalation_raises_the_open_case_and_records_an_event(sqlite_url: str) -> None:
    engine = open_database(sqlite_url)
    with Session(engine) as session:
        session.add(Device(id="d1"))
        session.flush()
        case = Case(
            device_id="d1", problem="p", rule="r", severity="warning", opened_at=0, created_wall=0
        )
        session.add(case)
        session.commit()
        alarm = Alarm("d1", "r", "p", "critical", 0.0, 99.0, "", ("open_case",), escalation=True)
        assert CaseOpener(NotifySettings(), enqueue=False).run(session, [alarm]) == []
        session.commit()
        session.refresh(case)
        events = list(session.exec(select(CaseEvent).where(CaseEvent.case_id == case.id)))
    assert case.severity == "critical"
    assert [(e.kind, e.detail["from"], e.detail["to"]) for e in events] == [
        ("escalated", "warning", "critical")
    ]


def test_escalation_without_an_open_case_opens_nothing(sqlite_url: str) -> None:
    engine = open_database(sqlite_url)
    alarm = Alarm("d1", "r", "p", "critical", 0.0, 99.0, "", ("open_case",), escalation=True)
    with Session(engine) as session:
        assert CaseOpener(NotifySettings(), enqueue=False).run(session, [alarm]) == []
        session.commit()
        assert list(session.exec(select(Case))) == []
