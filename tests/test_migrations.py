"""The schema follows the code: old databases are upgraded (or refused), new ones created at
the newest revision, and the revisions add up to the models. Real SQLite files and PostgreSQL."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, select
from typer.testing import CliRunner

from monitor.cli import app
from monitor.store import Case, Customer, DatabaseError, Outbox, open_database
from monitor.store.db import connect
from monitor.store.schema import BASELINE, alembic_config, head

CASE_COLUMNS_ADDED = {"source", "assignee", "customer_noticed_at", "notified_at", "resolved_at"}
CUSTOMER_COLUMNS_ADDED = {"channels", "apprise_urls", "quiet_hours", "nps_asked_at"}


def make_old_database(url: str, *, stamped: bool) -> None:
    """The first release's schema (revision 0001); without ``alembic_version`` unless
    ``stamped``, as that release left it: it predates migrations."""
    engine = connect(url)
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), BASELINE)
        if not stamped:
            connection.execute(text("DROP TABLE alembic_version"))
    engine.dispose()


def add_open_case(url: str) -> None:
    """Rows as the first release wrote them: only its columns."""
    engine = connect(url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO customer (id, name, email, language, channel, timezone) "
                "VALUES ('c1', 'Ada', 'ada@example.com', 'en', 'email', 'UTC')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO device (id, kind, model, customer_id, status, registered_wall) "
                "VALUES ('pump-1', 'water_pump', 'WP-200', 'c1', 'online', 1.0)"
            )
        )
        connection.execute(
            text(
                'INSERT INTO "case" (device_id, problem, rule, severity, status, opened_at, '
                "created_wall, suggested_action, evidence) VALUES ('pump-1', 'degradation', "
                "'sustained-deviation', 'warning', 'open', 1000.0, 1000.0, 'Inspect.', '{}')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO outbox (case_id, channel, purpose, recipient, language, payload, "
                "status, attempts, next_attempt_at, last_error, created_wall) VALUES "
                "(1, 'email', 'case_opened', 'ada@example.com', 'en', '{}', 'sent', 1, 0.0, '', "
                "1000.0)"
            )
        )
    engine.dispose()


def revision_of(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return list(connection.scalars(text("SELECT version_num FROM alembic_version")))


def differences_from_models(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, SQLModel.metadata))


def open_case_index_definition(connection: Connection) -> str:
    query = (
        "SELECT sql FROM sqlite_master WHERE name = :name"
        if connection.dialect.name == "sqlite"
        else "SELECT indexdef FROM pg_indexes WHERE indexname = :name"
    )
    return str(connection.scalar(text(query), {"name": "one_open_case_per_device_problem"}))


def test_database_from_the_previous_release_is_upgraded_on_start(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    make_old_database(database_url, stamped=False)
    add_open_case(database_url)

    with caplog.at_level(logging.INFO, logger="monitor.store"):
        engine = open_database(database_url)

    upgraded = [r for r in caplog.records if r.getMessage() == "database schema upgraded"]
    [ran] = [r.__dict__["ran"] for r in upgraded]
    assert (ran[0], ran[-1]) == ("0002", head())
    assert revision_of(engine) == [head()]
    schema = inspect(engine)
    assert {c["name"] for c in schema.get_columns("case")} >= CASE_COLUMNS_ADDED
    assert {c["name"] for c in schema.get_columns("customer")} >= CUSTOMER_COLUMNS_ADDED
    with engine.connect() as connection:
        assert differences_from_models(connection) == []
        assert "visit_scheduled" in open_case_index_definition(connection)
    with Session(engine) as session:
        [case] = session.exec(select(Case)).all()
        [message] = session.exec(select(Outbox)).all()
        assert (message.case_id, message.recipient) == (case.id, "ada@example.com")
        assert (case.device_id, case.status, case.source) == ("pump-1", "open", "proactive")
        customer = session.get(Customer, "c1")
        assert customer is not None
        assert (customer.email, customer.channels, customer.quiet_hours) == (
            "ada@example.com",
            [],
            "",
        )
        case.status = "visit_scheduled"
        session.commit()
        session.add(Case(**{**case.model_dump(exclude={"id"}), "status": "open"}))
        with pytest.raises(IntegrityError):
            session.commit()  # a case with a visit scheduled is still the open one


def test_database_from_a_development_build_between_releases_is_upgraded(sqlite_url: str) -> None:
    make_old_database(sqlite_url, stamped=False)
    add_open_case(sqlite_url)
    half_changed = connect(sqlite_url)
    SQLModel.metadata.create_all(half_changed)  # made the new tables, not the new columns
    half_changed.dispose()

    engine = open_database(sqlite_url)

    assert revision_of(engine) == [head()]
    with engine.connect() as connection:
        assert differences_from_models(connection) == []


def test_check_mode_refuses_an_old_database_with_the_fix(database_url: str) -> None:
    make_old_database(database_url, stamped=True)

    with pytest.raises(DatabaseError) as refused:
        open_database(database_url, migrate="check")

    message = str(refused.value)
    assert f"revision {BASELINE}" in message
    assert f"needs {head()}" in message
    assert "monitor db upgrade" in message
    assert revision_of(connect(database_url)) == [BASELINE]  # nothing was changed


def test_new_database_is_created_at_head(database_url: str) -> None:
    engine = open_database(database_url, migrate="check")

    assert revision_of(engine) == [head()]
    assert set(SQLModel.metadata.tables) <= set(inspect(engine).get_table_names())
    assert revision_of(open_database(database_url, migrate="check")) == [head()]


def test_database_newer_than_the_monitor_is_refused(database_url: str) -> None:
    engine = open_database(database_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))

    with pytest.raises(DatabaseError, match=r"revision 9999, which this monitor .* does not know"):
        open_database(database_url)


def test_revisions_add_up_to_the_models(database_url: str) -> None:
    engine = connect(database_url)
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "head")
    with engine.connect() as connection:
        assert differences_from_models(connection) == []
        # compare_metadata does not look at a partial index's WHERE.
        assert "visit_scheduled" in open_case_index_definition(connection)


def test_processes_starting_together_on_an_empty_database_create_it_once(
    database_url: str,
) -> None:
    errors: list[BaseException] = []

    def start() -> None:
        try:
            open_database(database_url)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert [str(e) for e in errors] == []
    assert revision_of(connect(database_url)) == [head()]


def test_db_commands_show_and_upgrade_the_revision(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    make_old_database(url, stamped=False)
    config = tmp_path / "monitor.toml"
    config.write_text(f'[database]\nurl = "{url}"\n', encoding="utf-8")
    runner = CliRunner()

    before = runner.invoke(app, ["db", "current", "--config", str(config)])
    upgraded = runner.invoke(app, ["db", "upgrade", "--config", str(config)])
    after = runner.invoke(app, ["db", "current", "--config", str(config)])

    assert "needs upgrade: 0002" in before.output
    assert upgraded.exit_code == 0, upgraded.output
    assert "ran 0002" in upgraded.output
    assert "up to date" in after.output


def test_support_commands_on_a_database_they_cannot_use_say_so_plainly(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'newer.db'}"
    engine = open_database(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    config = tmp_path / "monitor.toml"
    config.write_text(f'[database]\nurl = "{url}"\n', encoding="utf-8")
    runner = CliRunner()

    for command_line in (["cases", "list"], ["cases", "show", "1"], ["silences", "list"]):
        result = runner.invoke(app, [*command_line, "--config", str(config)])
        assert result.exit_code == 2, (command_line, result.output)
        assert "database error" in result.output
        assert "9999" in result.output
        assert not isinstance(result.exception, DatabaseError)  # no traceback


def test_asking_about_a_database_that_does_not_exist_yet_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "not-yet.db"
    config = tmp_path / "monitor.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{missing}"\n', encoding="utf-8")

    result = CliRunner().invoke(app, ["db", "current", "--config", str(config)])

    assert result.exit_code == 0, result.output
    assert "will be created on first start" in result.output
    assert not missing.exists()
