"""The service report: every figure on a small hand-made database with known answers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session
from typer.testing import CliRunner

from devenv.broker import Broker
from monitor.cli import app
from monitor.report import build_report
from monitor.report_cli import parse_since
from monitor.service_gauges import ServiceFigures, refresh_service_metrics, service_figures
from monitor.store import Case, CaseEvent, Customer, Device, Outbox, SurveyResponse, open_database
from tests.helpers import running_monitor, wait_until, write_config

DAY = 86400.0


def _case(device: str, opened: float, **fields: object) -> Case:
    values: dict[str, object] = {
        "device_id": device,
        "problem": "degradation",
        "rule": "r",
        "severity": "warning",
        "opened_at": opened,
        "created_wall": opened,
    }
    values.update(fields)
    return Case.model_validate(values)


def _message(case_id: int, sent_at: float | None, **fields: object) -> Outbox:
    values: dict[str, object] = {
        "case_id": case_id,
        "channel": "email",
        "purpose": "case_opened",
        "recipient": "owner@example.com",
        "created_wall": 0.0,
        "status": "sent" if sent_at is not None else "pending",
        "sent_at": sent_at,
    }
    values.update(fields)
    return Outbox.model_validate(values)


def _answers(case_id: int, customer: str, **scores: int) -> list[SurveyResponse]:
    return [
        SurveyResponse(case_id=case_id, customer_id=customer, question=q, score=s, answered_at=9e5)
        for q, s in scores.items()
    ]


def fill(url: str) -> None:
    """Four customers; A told early (by email and on the display) and fixed, B told after
    noticing (twice), C phoned in and left, D a false alarm."""
    engine = open_database(url)
    with Session(engine) as session:
        for n in range(1, 5):
            session.add(Customer(id=f"c{n}"))
            session.add(Device(id=f"d{n}", customer_id=f"c{n}"))
        session.flush()
        a = _case(
            "d1",
            1000.0,
            status="closed",
            resolved_at=1000.0 + DAY,
            predicted_failure_at=1000.0 + 5 * DAY,
        )
        b = _case(
            "d2",
            2000.0,
            status="resolved",
            resolved_at=2000.0 + 2 * DAY,
            customer_noticed_at=2050.0,
        )
        c = _case(
            "d3",
            3000.0,
            status="visit_scheduled",
            source="reactive",
            problem="customer_report",
            customer_noticed_at=3000.0,
            notified_at=3000.0 + 3600.0,
        )
        d = _case("d4", 4000.0, status="false_alarm")
        session.add_all([a, b, c, d])
        session.flush()
        assert a.id is not None
        assert b.id is not None
        assert c.id is not None
        assert d.id is not None
        session.add_all(
            [
                _message(a.id, 1030.0),
                _message(a.id, 1031.0, channel="webhook", recipient="https://helpdesk"),
                _message(a.id, 1032.0, channel="display", recipient="d1"),
                _message(b.id, 2060.0),
                _message(b.id, 2000.0 + DAY, purpose="reminder"),
                _message(b.id, 2000.0 + 3 * DAY, purpose="survey"),
                _message(c.id, None, status="dead"),
                _message(d.id, 4010.0),
                CaseEvent(
                    case_id=a.id,
                    at_wall=1000.0,
                    kind="suppressed",
                    detail={"reason": "quiet_hours"},
                ),
                CaseEvent(case_id=c.id, at_wall=9e5, kind="customer_left", actor="customer"),
                *_answers(a.id, "c1", csat=5, ces=7, nps=10, helpful=1),
                *_answers(b.id, "c2", csat=2, ces=3, nps=3, helpful=0),
                *_answers(d.id, "c4", csat=4),
            ]
        )
        session.commit()


def suppress(engine: Engine, row_id: int, at: float, reason: str) -> None:
    """An alarm noise control kept from becoming a case, as it records one."""
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO suppression (id, at_wall, alarm_at, device_id, problem, rule,"
                " reason, detail) VALUES (:id, :at, :at, 'd1', 'p', 'r', :reason, '{}')"
            ),
            {"id": row_id, "at": at, "reason": reason},
        )


def test_report_figures_on_a_known_database(database_url: str) -> None:
    fill(database_url)
    report = build_report(open_database(database_url))
    assert (report.cases, report.problems, report.false_alarms) == (4, 3, 1)
    assert report.proactive_share == pytest.approx(1 / 3)
    assert report.frt.count == 3
    assert report.frt.p50 == pytest.approx(30.0)
    assert report.frt.maximum == pytest.approx(60.0)
    assert report.frt_reactive.maximum == pytest.approx(3600.0)
    assert report.art.mean == pytest.approx(1.5 * DAY)
    assert report.resolution_rate == pytest.approx(2 / 3)
    assert report.lead_time.p50 == pytest.approx(5 * DAY - 0.0)
    assert report.csat == pytest.approx(2 / 3)
    assert report.ces == pytest.approx(5.0)
    assert report.nps == pytest.approx(0.0)
    assert report.helpful_share == pytest.approx(0.5)
    assert report.retention == pytest.approx(0.75)
    assert report.retention_affected == pytest.approx(2 / 3)
    assert report.messages_per_problem == pytest.approx(1.0)
    assert report.max_messages_per_problem == 2
    assert report.suppressed == {"outbox_dead": 1, "quiet_hours": 1}


def test_report_counts_alarms_noise_control_suppressed_by_reason(database_url: str) -> None:
    fill(database_url)
    engine = open_database(database_url)
    with engine.begin() as connection:
        # Rows as noise control writes them (the table is part of every schema now).
        connection.execute(
            text(
                "CREATE TABLE IF NOT EXISTS suppression (id INTEGER PRIMARY KEY, at_wall FLOAT,"
                " alarm_at FLOAT, device_id VARCHAR, problem VARCHAR, rule VARCHAR,"
                " reason VARCHAR, detail JSON)"
            )
        )
    for n, (at, reason) in enumerate([(10.0, "silenced"), (20.0, "fleet_incident")] * 2):
        suppress(engine, n + 100, at + n, reason)
    report = build_report(engine)
    assert report.suppressed == {
        "fleet_incident": 2,
        "outbox_dead": 1,
        "quiet_hours": 1,
        "silenced": 2,
    }
    assert build_report(engine, since=11.0).suppressed["silenced"] == 1


def test_report_since_leaves_out_earlier_cases(sqlite_url: str) -> None:
    fill(sqlite_url)
    report = build_report(open_database(sqlite_url), since=1500.0)
    assert (report.cases, report.problems) == (3, 2)
    assert report.proactive_share == pytest.approx(0.0)


def test_empty_database_reports_no_figures_instead_of_failing(sqlite_url: str) -> None:
    report = build_report(open_database(sqlite_url))
    assert report.problems == 0
    assert report.proactive_share is None
    assert report.csat is None
    assert report.frt.p50 is None


def test_service_figures_are_exported_as_prometheus_gauges(sqlite_url: str) -> None:
    fill(sqlite_url)
    refresh_service_metrics(open_database(sqlite_url))
    value = REGISTRY.get_sample_value
    assert value("monitor_service_proactive_share") == pytest.approx(1 / 3)
    assert value("monitor_service_frt_seconds", {"quantile": "0.5"}) == pytest.approx(30.0)
    assert value("monitor_service_csat") == pytest.approx(2 / 3)
    assert value("monitor_service_suppressed_notifications", {"reason": "quiet_hours"}) == 1
    refresh_service_metrics(open_database(f"{sqlite_url}-empty"))
    assert math.isnan(value("monitor_service_csat") or 0.0)


def test_gauges_have_the_full_reports_figures_without_reading_whole_cases(
    database_url: str,
) -> None:
    fill(database_url)
    engine = open_database(database_url)
    suppress(engine, 1, 2500.0, "quiet_hours")
    for since in (None, 1500.0, 1e9):
        with Session(engine) as session:
            assert service_figures(session, since) == ServiceFigures.of(build_report(engine, since))


def test_monitor_report_prints_json_and_a_table(tmp_path: Path, sqlite_url: str) -> None:
    fill(sqlite_url)
    config = tmp_path / "monitor.toml"
    config.write_text(f'[database]\nurl = "{sqlite_url}"\n')
    runner = CliRunner()
    result = runner.invoke(app, ["report", "--json", "--config", str(config)])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert figures["problems"] == 3
    assert figures["frt"]["p50"] == pytest.approx(30.0)
    table = runner.invoke(app, ["report", "--since", "1970-01-01T00:25", "--config", str(config)])
    assert table.exit_code == 0, table.output
    assert "contacted before" in table.output


def test_monitor_report_refuses_a_bad_since_with_the_fix(tmp_path: Path, sqlite_url: str) -> None:
    config = tmp_path / "monitor.toml"
    config.write_text(f'[database]\nurl = "{sqlite_url}"\n')
    result = CliRunner().invoke(app, ["report", "--since", "last tuesday", "--config", str(config)])
    assert result.exit_code == 2
    assert "Fix:" in result.output


def test_since_accepts_spans_and_iso_times() -> None:
    assert parse_since("12h", now=100_000.0) == pytest.approx(100_000.0 - 43_200.0)
    assert parse_since("1970-01-02T00:00:00+01:00") == pytest.approx(DAY - 3600.0)


def test_daemon_serves_the_service_figures(tmp_path: Path, sqlite_url: str, broker: Broker) -> None:
    fill(sqlite_url)
    config = write_config(tmp_path, mqtt_port=broker.port, database_url=sqlite_url)
    with running_monitor(config, tmp_path / "monitor.log") as monitor:
        # The gauges exist (at 0) from the start: wait for the first refresh's values.
        wait_until(
            lambda: monitor.metric("monitor_service_problems") == 3,
            what="service figures on the metrics endpoint",
        )
        assert monitor.metric("monitor_service_proactive_share") == pytest.approx(1 / 3)
