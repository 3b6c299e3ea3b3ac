"""The support API over real HTTP: uvicorn on loopback, httpx as the client."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlmodel import Session

from devenv.ports import free_port
from monitor.api import create_app
from monitor.api.server import ApiServer
from monitor.config import DatabaseSettings, Settings
from monitor.store import Case, open_database
from monitor.store.models import FleetIncident
from tests.case_opening_worker import open_one
from tests.test_cases import seed, series_evidence


@pytest.fixture
def client(database_url: str) -> Iterator[httpx.Client]:
    seed(database_url)
    settings = Settings(database=DatabaseSettings(url=database_url))
    server = ApiServer(create_app(settings), "127.0.0.1", free_port())
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            yield http
    finally:
        server.stop()


def test_support_api_walks_a_case_through_its_lifecycle(
    client: httpx.Client, database_url: str
) -> None:
    [case_id] = open_one(database_url, 0.0)
    assert client.get("/health").json() == {"status": "ok"}
    assert [c["id"] for c in client.get("/cases", params={"status": "open"}).json()] == [case_id]
    assert client.post(f"/cases/{case_id}/ack", json={"actor": "alice"}).status_code == 200
    assert client.post(
        f"/cases/{case_id}/assign", json={"actor": "alice", "assignee": "bob"}
    ).is_success
    note = client.post(f"/cases/{case_id}/notes", json={"actor": "bob", "text": "called"})
    assert note.status_code == 201
    visit = {"actor": "bob", "detail": {"visit_at": 1_800_000_000}}
    assert client.post(f"/cases/{case_id}/schedule-visit", json=visit).is_success
    resolved = client.post(f"/cases/{case_id}/resolve", json={"actor": "tech"}).json()
    assert (resolved["status"], resolved["assignee"]) == ("resolved", "bob")
    assert [(e["kind"], e["actor"]) for e in resolved["events"]] == [
        ("opened", "monitor"),
        ("acknowledged", "alice"),
        ("assigned", "alice"),
        ("note", "bob"),
        ("visit_scheduled", "bob"),
        ("resolved", "tech"),
    ]
    refused = client.post(f"/cases/{case_id}/ack", json={"actor": "alice"})
    assert refused.status_code == 409
    assert "cannot become 'acknowledged'" in refused.json()["detail"]
    assert client.post(f"/cases/{case_id}/explode", json={"actor": "x"}).status_code == 404
    assert client.get("/cases/9999").status_code == 404
    assert client.post(f"/cases/{case_id}/ack", json={"actor": ""}).status_code == 422


def test_case_plot_is_served_as_png(client: httpx.Client, database_url: str) -> None:
    [case_id] = open_one(database_url, 0.0)
    assert client.get(f"/cases/{case_id}/plot.png").status_code == 404  # no series yet
    with Session(open_database(database_url)) as session:
        case = session.get(Case, case_id)
        assert case is not None
        case.evidence = series_evidence()
        session.add(case)
        session.commit()
    plot = client.get(f"/cases/{case_id}/plot.png")
    assert plot.status_code == 200
    assert plot.headers["content-type"] == "image/png"
    assert plot.content.startswith(b"\x89PNG")


def test_silences_are_managed_and_bad_ones_refused_over_the_api(client: httpx.Client) -> None:
    body = {"scope": "site", "value": "plant-a", "duration_seconds": 3600, "actor": "ops"}
    created = client.post("/silences", json=body)
    assert created.status_code == 201
    silence_id = created.json()["id"]
    assert [s["id"] for s in client.get("/silences").json()] == [silence_id]
    assert client.post(f"/silences/{silence_id}/expire").is_success
    assert client.get("/silences").json() == []
    assert len(client.get("/silences", params={"include_expired": True}).json()) == 1
    bad = client.post("/silences", json={**body, "scope": "planet"})
    assert bad.status_code == 422
    assert "scope 'planet' is unknown" in bad.json()["detail"]
    assert client.get("/suppressions").json() == []


def test_fleet_incidents_and_rule_statistics_over_the_api(
    client: httpx.Client, database_url: str
) -> None:
    [case_id] = open_one(database_url, 0.0)
    client.post(f"/cases/{case_id}/false-alarm", json={"actor": "alice"})
    assert client.get("/stats/rules").json() == [
        {"rule": "sustained-deviation", "opened": 1, "false_alarms": 1, "precision": 0.0}
    ]
    with Session(open_database(database_url)) as session:
        session.add(
            FleetIncident(
                model="WP-200",
                problem="degradation",
                opened_at=1.0,
                created_wall=1.0,
                devices=["a", "b", "c"],
                active_devices=6,
            )
        )
        session.commit()
    [incident] = client.get("/incidents", params={"status": "open"}).json()
    assert incident["devices"] == ["a", "b", "c"]
    update = {"actor": "eng", "status": "resolved", "note": "firmware 2.1.1 rolled back"}
    resolved = client.post(f"/incidents/{incident['id']}", json=update).json()
    assert (resolved["status"], resolved["resolved_by"]) == ("resolved", "eng")
    assert client.post(f"/incidents/{incident['id']}", json=update).status_code == 409
    assert client.get("/incidents", params={"status": "open"}).json() == []
