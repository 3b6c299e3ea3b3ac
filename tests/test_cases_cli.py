"""`monitor cases …`, `monitor silences …`, `monitor incidents list` on a real database."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from monitor.cli import app
from tests.case_opening_worker import open_one
from tests.test_cases import history, seed

runner = CliRunner()


def monitor(config: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--config", str(config)])
    return result.exit_code, result.output


def test_support_person_walks_a_case_through_its_lifecycle_from_the_cli(
    tmp_path: Path, sqlite_url: str
) -> None:
    seed(sqlite_url)
    [case_id] = open_one(sqlite_url, 0.0)
    config = tmp_path / "monitor.toml"
    config.write_text(f'[database]\nurl = "{sqlite_url}"\n')
    cid = str(case_id)
    steps = [
        ("cases", "ack", cid, "--actor", "alice"),
        ("cases", "assign", cid, "bob", "--actor", "alice"),
        ("cases", "note", cid, "called the customer", "--actor", "bob"),
        ("cases", "schedule-visit", cid, "--at", "2026-05-01T09:00", "--actor", "bob"),
        ("cases", "resolve", cid, "--actor", "tech", "--comment", "bearing replaced"),
        ("cases", "close", cid, "--actor", "bob"),
        ("cases", "reopen", cid, "--actor", "alice"),
        ("cases", "false-alarm", cid, "--actor", "alice"),
    ]
    for step in steps:
        code, output = monitor(config, *step)
        assert code == 0, (step, output)
    code, output = monitor(config, "cases", "close", cid, "--actor", "bob")
    assert code == 1
    assert "refused" in output
    assert "cannot become 'closed'" in output
    assert [kind for kind, _ in history(sqlite_url, case_id)] == [
        "opened",
        "acknowledged",
        "assigned",
        "note",
        "visit_scheduled",
        "resolved",
        "closed",
        "reopened",
        "false_alarm",
    ]
    code, output = monitor(config, "cases", "show", cid)
    shown = json.loads(output)
    assert (shown["status"], shown["assignee"]) == ("false_alarm", "bob")
    assert shown["events"][4]["detail"]["visit_at"] > 0
    code, output = monitor(config, "cases", "stats", "--json")
    assert json.loads(output) == [
        {"rule": "sustained-deviation", "opened": 1, "false_alarms": 1, "precision": 0.0}
    ]


def test_silences_can_be_added_listed_and_expired_from_the_cli(
    tmp_path: Path, sqlite_url: str
) -> None:
    config = tmp_path / "monitor.toml"
    config.write_text(f'[database]\nurl = "{sqlite_url}"\n')
    code, output = monitor(
        config,
        "silences",
        "add",
        "--model",
        "WP-200",
        "--duration",
        "2h",
        "--repeat",
        "daily",
        "--expires",
        "2099-01-01",
        "--maintenance",
        "--comment",
        "nightly backup",
    )
    assert (code, output.strip()) == (0, "silence 1 added for model WP-200")
    code, output = monitor(config, "silences", "list")
    assert "WP-200" in output
    assert "daily" in output
    assert monitor(config, "silences", "expire", "1")[0] == 0
    assert "WP-200" not in monitor(config, "silences", "list")[1]
    assert "WP-200" in monitor(config, "silences", "list", "--all")[1]
    code, output = monitor(config, "silences", "add", "--device", "d1", "--repeat", "weekly")
    assert code == 2
    assert "needs an expiry" in output
    code, output = monitor(config, "incidents", "list", "--json")
    assert (code, json.loads(output)) == (0, [])


def test_engineering_acknowledges_and_resolves_a_fleet_incident_from_the_cli(
    tmp_path: Path, sqlite_url: str
) -> None:
    from sqlmodel import Session

    from monitor.store import open_database
    from monitor.store.models import FleetIncident

    with Session(open_database(sqlite_url)) as session:
        session.add(
            FleetIncident(model="HX-1", problem="overheating", opened_at=1.0, created_wall=1.0)
        )
        session.commit()
    config = tmp_path / "monitor.toml"
    config.write_text(f'[database]\nurl = "{sqlite_url}"\n')
    assert monitor(config, "incidents", "ack", "1", "--actor", "eng")[0] == 0
    code, output = monitor(config, "incidents", "resolve", "1", "--note", "fw rolled back")
    assert (code, output.strip()) == (0, "fleet incident 1 is now resolved")
    code, output = monitor(config, "incidents", "resolve", "1")
    assert code == 1
    assert "already resolved" in output
    [shown] = json.loads(monitor(config, "incidents", "list", "--json")[1])
    assert (shown["status"], shown["note"]) == ("resolved", "fw rolled back")
