"""Case lifecycle: one open case per device and problem under races, who-and-when history,
reopening, false-alarm feedback, the evidence plot."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import pytest
from sqlmodel import Session, select

from monitor.cases.feedback import false_alarms_since, rule_statistics, verdicts_since
from monitor.cases.lifecycle import TransitionError, act, add_note, assign, transition
from monitor.cases.plot import NothingToPlotError, render_case_plot
from monitor.store import Case, CaseEvent, Customer, Device, open_database
from tests.case_opening_worker import alarm, open_one


def seed(url: str) -> None:
    with Session(open_database(url)) as session:
        session.add(Customer(id="c1", name="Ada", email="ada@example.com"))
        session.add(Device(id="pump-1", kind="water_pump", model="WP-200", customer_id="c1"))
        session.commit()


def cases_in(url: str) -> list[Case]:
    with Session(open_database(url)) as session:
        return list(session.exec(select(Case)))


def open_in_threads(url: str) -> list[list[int]]:
    start_at = time.time() + 0.5
    results: list[list[int]] = []
    errors: list[BaseException] = []

    def worker(delay: float) -> None:
        try:
            results.append(open_one(url, start_at + delay))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(d,)) for d in (0.0, 0.001)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    return results


def open_in_processes(url: str) -> list[list[int]]:
    start_at = time.time() + 3.0  # both interpreters are up and connected by then
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.case_opening_worker", url, str(at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for at in (start_at, start_at + 0.001)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    return [json.loads(out) for out, _ in outputs]


@pytest.mark.parametrize("race", [open_in_threads, open_in_processes], ids=["threads", "processes"])
def test_two_concurrent_openings_give_one_case(
    database_url: str, race: Callable[[str], list[list[int]]]
) -> None:
    seed(database_url)
    opened = race(database_url)
    assert sorted(len(ids) for ids in opened) == [0, 1]  # the other one joined the open case
    assert len(cases_in(database_url)) == 1


def opened_case(url: str) -> int:
    seed(url)
    [case_id] = open_one(url, 0.0)
    return case_id


def history(url: str, case_id: int) -> list[tuple[str, str]]:
    with Session(open_database(url)) as session:
        events = session.exec(
            select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.id)  # type: ignore[arg-type]
        )
        return [(e.kind, e.actor) for e in events]


def test_case_lifecycle_records_who_and_when(sqlite_url: str) -> None:
    case_id = opened_case(sqlite_url)
    engine = open_database(sqlite_url)
    steps = [
        ("ack", "alice", 10.0),
        ("schedule-visit", "alice", 20.0),
        ("resolve", "tech-bob", 30.0),
        ("close", "alice", 40.0),
    ]
    with Session(engine) as session:
        case = session.get(Case, case_id)
        assert case is not None
        assign(session, case, "alice", actor="lead", at=5.0)
        add_note(session, case, "customer prefers mornings", actor="alice", at=6.0)
        for action, actor, at in steps:
            act(session, case, action, actor=actor, at=at)
        session.commit()
        events = list(
            session.exec(
                select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.id)
            )  # type: ignore[arg-type]
        )
        assert case.status == "closed"
        assert case.assignee == "alice"
        assert case.resolved_at == 30.0
    assert [(e.kind, e.actor, e.at_wall) for e in events[1:]] == [
        ("assigned", "lead", 5.0),
        ("note", "alice", 6.0),
        ("acknowledged", "alice", 10.0),
        ("visit_scheduled", "alice", 20.0),
        ("resolved", "tech-bob", 30.0),
        ("closed", "alice", 40.0),
    ]
    assert events[0].kind == "opened"
    assert events[2].detail == {"text": "customer prefers mornings"}


def test_impossible_move_is_refused_and_changes_nothing(sqlite_url: str) -> None:
    case_id = opened_case(sqlite_url)
    with Session(open_database(sqlite_url)) as session:
        case = session.get(Case, case_id)
        assert case is not None
        with pytest.raises(TransitionError, match="cannot become 'closed'"):
            act(session, case, "close", actor="alice", at=1.0)
        assert case.status == "open"


def test_reopened_case_keeps_history(sqlite_url: str) -> None:
    case_id = opened_case(sqlite_url)
    with Session(open_database(sqlite_url)) as session:
        case = session.get(Case, case_id)
        assert case is not None
        act(session, case, "resolve", actor="bob", at=1.0)
        act(session, case, "reopen", actor="carol", at=2.0, detail={"comment": "back again"})
        session.commit()
        assert case.status == "open"
        assert case.resolved_at is None
    assert history(sqlite_url, case_id) == [
        ("opened", "monitor"),
        ("resolved", "bob"),
        ("reopened", "carol"),
    ]


def test_reopening_is_refused_while_another_case_is_open_for_the_device_and_problem(
    database_url: str,
) -> None:
    first = opened_case(database_url)
    engine = open_database(database_url)
    with Session(engine) as session:
        case = session.get(Case, first)
        assert case is not None
        act(session, case, "resolve", actor="bob", at=1.0)
        session.commit()
    [second] = open_one(database_url, 0.0)
    with Session(engine) as session:
        case = session.get(Case, first)
        assert case is not None
        with pytest.raises(TransitionError, match=f"case {second} is already open"):
            act(session, case, "reopen", actor="carol", at=2.0)
        session.rollback()
    statuses = sorted((c.id, c.status) for c in cases_in(database_url))
    assert statuses == [(first, "resolved"), (second, "open")]


def test_false_alarm_feeds_rule_statistics_and_the_feedback_feed(sqlite_url: str) -> None:
    case_id = opened_case(sqlite_url)
    engine = open_database(sqlite_url)
    with Session(engine) as session:
        assert false_alarms_since(session, 0) == []
        case = session.get(Case, case_id)
        assert case is not None
        event = act(session, case, "false-alarm", actor="alice", at=3.0)
        session.commit()
        [feedback] = false_alarms_since(session, 0)
        assert (feedback.case_id, feedback.device_id, feedback.rule) == (
            case_id,
            "pump-1",
            "sustained-deviation",
        )
        assert false_alarms_since(session, feedback.event_id) == []
        assert event.id == feedback.event_id
        [stats] = rule_statistics(session)
    assert (stats.rule, stats.opened, stats.false_alarms, stats.precision) == (
        "sustained-deviation",
        1,
        1,
        0.0,
    )


def series_evidence() -> dict[str, object]:
    rows = [[1_700_000_000 + i * 300, 2.0 + i * 0.01, 2.0, 1.8, 2.2] for i in range(100)]
    return {
        "series": {"vibration_mms": rows},
        "forecast": {
            "metric": "vibration_mms",
            "points": [[rows[-1][0] + h * 3600, 3.0 + h * 0.2] for h in range(12)],
            "threshold": 5.0,
            "failure_at": rows[-1][0] + 10 * 3600,
        },
    }


def test_evidence_plot_is_a_png_of_the_series_band_and_forecast() -> None:
    case = Case(
        id=7,
        device_id="pump-1",
        problem="bearing_wear",
        rule="r",
        severity="warning",
        opened_at=0.0,
        created_wall=0.0,
        evidence=series_evidence(),
    )
    png = render_case_plot(case)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) > 10_000  # a real drawing, not an empty canvas


def test_case_without_series_has_no_plot() -> None:
    case = Case(
        id=8, device_id="d", problem="p", rule="r", severity="w", opened_at=0.0, created_wall=0.0
    )
    with pytest.raises(NothingToPlotError, match="no time series"):
        render_case_plot(case)


def test_alarm_fixture_is_for_the_seeded_device() -> None:
    assert alarm(1.0).device_id == "pump-1"


def test_a_resolution_by_a_person_is_a_verdict_and_the_monitors_own_is_not(
    sqlite_url: str,
) -> None:
    first = opened_case(sqlite_url)
    with Session(open_database(sqlite_url)) as session:
        case = session.exec(select(Case).where(Case.id == first)).one()
        # A silent device heard again: the monitor resolves its own connectivity case.
        transition(session, case, "resolved", actor="monitor", at=2.0)
        session.commit()
        assert verdicts_since(session, 0) == []
        act(session, case, "reopen", actor="carol", at=3.0)
        act(session, case, "resolve", actor="carol", at=4.0)
        session.commit()
        [verdict] = verdicts_since(session, 0)
        assert (verdict.kind, verdict.case_id, verdict.actor) == ("resolved", first, "carol")
        assert false_alarms_since(session, 0) == []
