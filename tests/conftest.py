"""Fixtures for tests on real services: a private Mosquitto and PostgreSQL, started on demand.

Nothing already running on the machine is used: each broker and the PostgreSQL cluster are
this session's own, on free ports, and are stopped and deleted when the session ends, whatever
the tests did. Set ``MONITOR_TEST_POSTGRES_URL`` to test against an existing PostgreSQL server.
"""

from __future__ import annotations

import re
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devenv.broker import Broker
from devenv.postgres import ThrowawayPostgres

_SERVICE_FIXTURES = frozenset({"broker", "own_broker", "postgres"})


def pytest_sessionstart(session: pytest.Session) -> None:
    # A cancelled CI job gets SIGTERM: treat it like Ctrl-C, so the fixtures below still stop
    # their brokers and PostgreSQL and delete their temp dirs instead of leaving them behind.
    signal.signal(signal.SIGTERM, signal.default_int_handler)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests on a real broker or database ``integration`` (``-m "not integration"``)."""
    for item in items:
        if _SERVICE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def broker() -> Iterator[Broker]:
    """A broker shared by the session. A test that stops or restarts it should use
    ``own_broker`` instead; if one stops it anyway, it is started again for the next test."""
    with Broker() as running:
        yield running


@pytest.fixture(autouse=True)
def _shared_broker_is_running(request: pytest.FixtureRequest) -> None:
    if "broker" in request.fixturenames:
        request.getfixturevalue("broker").start()  # no-op while it runs


@pytest.fixture
def own_broker() -> Iterator[Broker]:
    """A fresh broker for this test alone, to stop, start, restart or kill freely."""
    with Broker() as running:
        yield running


@pytest.fixture(scope="session")
def postgres() -> Iterator[ThrowawayPostgres]:
    """A PostgreSQL server for the session; make databases with ``create_database``."""
    with ThrowawayPostgres() as server:
        yield server


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of an empty SQLite database file in ``tmp_path``."""
    return _sqlite_url(tmp_path)


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)],
    ids=["sqlite", "postgresql"],
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an empty database, once on SQLite and once on PostgreSQL (dropped afterwards)."""
    if request.param == "sqlite":
        yield _sqlite_url(tmp_path)
        return
    server: ThrowawayPostgres = request.getfixturevalue("postgres")
    name = _database_name(request.node.name)
    yield server.create_database(name)
    server.drop_database(name)


def _sqlite_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'monitor.db'}"


def _database_name(test_name: str) -> str:
    """Unique, and recognisable on a shared server: ``t_<test name>_<random>``."""
    slug = re.sub(r"[^a-z0-9]+", "_", test_name.lower()).strip("_")[:40]
    return f"t_{slug}_{uuid.uuid4().hex[:8]}"
