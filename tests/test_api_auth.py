"""Who may use the API, over real HTTP (uvicorn on loopback, httpx as the client)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlmodel import Session, select
from typer.testing import CliRunner

from devenv.ports import free_port
from monitor.api import create_app
from monitor.api.server import ApiServer
from monitor.cli import app as cli
from monitor.config import ApiSettings, ConfigError, DatabaseSettings, NotifySettings, Settings
from monitor.daemon import Daemon
from monitor.notify.links import VISIT, LinkClaim, make_token
from monitor.store import Case, SurveyResponse, open_database
from tests.case_opening_worker import open_one
from tests.test_cases import seed

TOKEN = "support-token-0123456789"
SECRET = "feedback-secret"


@pytest.fixture
def guarded(sqlite_url: str) -> Iterator[str]:
    """The API with ``[api] token`` set, serving on loopback; yields its base URL."""
    seed(sqlite_url)
    settings = Settings(
        database=DatabaseSettings(url=sqlite_url),
        api=ApiSettings(token=SecretStr(TOKEN)),
        notify=NotifySettings(feedback_secret=SECRET),
    )
    server = ApiServer(create_app(settings), "127.0.0.1", free_port())
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def test_support_routes_need_the_token(guarded: str, sqlite_url: str) -> None:
    [case_id] = open_one(sqlite_url, 0.0)
    silence = {"scope": "site", "value": "a", "duration_seconds": 60, "actor": "ops"}
    routes = [
        ("GET", "/cases", None),
        ("GET", f"/cases/{case_id}", None),
        ("POST", f"/cases/{case_id}/ack", {"actor": "mallory"}),
        ("GET", "/silences", None),
        ("POST", "/silences", silence),
        ("GET", "/suppressions", None),
        ("GET", "/incidents", None),
        ("GET", "/stats/rules", None),
    ]
    with httpx.Client(base_url=guarded, timeout=10) as client:
        for bad in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"X-Token": TOKEN}):
            for method, path, body in routes:
                response = client.request(method, path, json=body, headers=bad)
                assert response.status_code == 401, (method, path, bad)
                assert response.headers["www-authenticate"] == "Bearer"
        assert client.get("/health").json() == {"status": "ok"}
        with Session(open_database(sqlite_url)) as session:
            case = session.get(Case, case_id)
            assert case is not None
            assert case.status == "open"  # mallory's ack was refused

        good = {"Authorization": f"Bearer {TOKEN}"}
        for method, path, body in routes:
            response = client.request(method, path, json=body, headers=good)
            assert response.is_success, (method, path, response.text)


def test_customer_links_work_without_the_token(guarded: str, sqlite_url: str) -> None:
    [case_id] = open_one(sqlite_url, 0.0)
    expires = time.time() + 3600

    def link(route: str, question: str, score: int | None) -> str:
        claim = LinkClaim(case_id, "c1", question, score, expires)
        return f"{guarded}/{route}/{make_token(SECRET, claim)}"

    with httpx.Client(timeout=10) as client:
        assert client.get(link("feedback", "helpful", 1)).status_code == 200
        assert client.post(link("feedback", "helpful", 1)).status_code == 200
        assert client.get(link("visit", VISIT, None)).status_code == 200
        booked = client.post(link("visit", VISIT, None))
    assert booked.status_code == 303
    with Session(open_database(sqlite_url)) as session:
        [answer] = session.exec(select(SurveyResponse))
        case = session.get(Case, case_id)
        assert case is not None
    assert (answer.question, answer.score, case.status) == ("helpful", 1, "acknowledged")


def test_api_on_public_host_without_token_is_refused(tmp_path: Path, sqlite_url: str) -> None:
    config = tmp_path / "monitor.toml"
    config.write_text(f'[database]\nurl = "{sqlite_url}"\n\n[api]\nhost = "0.0.0.0"\n')
    result = CliRunner().invoke(cli, ["api", "--config", str(config)])
    assert result.exit_code == 2
    assert "'api.token' is not set" in result.output
    assert "Fix: set 'token' in the [api] section" in result.output

    public = Settings(
        database=DatabaseSettings(url=sqlite_url), api=ApiSettings(host="0.0.0.0", enabled=True)
    )
    with pytest.raises(ConfigError, match=r"api\.host"):
        Daemon(public)  # `monitor run` with [api] enabled: refused before anything starts
    with pytest.raises(ConfigError, match=r"api\.token"):
        create_app(public)
    # With a token, or on loopback, the API may be built (this test listens nowhere).
    create_app(public.model_copy(update={"api": ApiSettings(host="0.0.0.0", token=TOKEN)}))
    create_app(public.model_copy(update={"api": ApiSettings(host="::1")}))


def test_short_api_token_is_refused() -> None:
    with pytest.raises(ValueError, match="shorter than 16 characters"):
        ApiSettings(token=SecretStr("short"))
