"""Keeping a database's schema at this monitor's revision (Alembic, see docs/database.md).

An empty database gets every table at once and is stamped with the newest revision. An older
one is upgraded through the revisions in ``migrations/versions`` (or refused, in "check"
mode). One made before migrations existed (tables, no ``alembic_version``) counts as the
baseline revision. One newer than this monitor is refused. Every change runs in one
transaction under a lock, so two processes starting together neither race nor half-apply.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool
from sqlmodel import SQLModel

from monitor.store import models as _models  # noqa: F401  (registers the tables)

MigrateMode = Literal["auto", "check"]
"""``[database] migrate``: "auto" upgrades an older database on start; "check" refuses it."""

BASELINE = "0001"
"""The revision of a database made before migrations existed (the first release's schema)."""

MIGRATIONS = Path(__file__).with_name("migrations")
UPGRADE_FIX = "Fix: run `monitor db upgrade --config <your config>` (back the database up first)."

_LOCK_KEY = 0x6D6F6E69  # "moni": the PostgreSQL advisory lock that serialises schema changes
_log = logging.getLogger("monitor.store")


class SchemaError(Exception):
    """The database's schema is not one this monitor can use as it is; the message says why
    and what to do."""


@dataclass(frozen=True)
class SchemaState:
    """Where a database stands: ``current`` is None for an empty database and ``BASELINE``
    for one made before migrations (``stamped`` False)."""

    current: str | None
    head: str
    stamped: bool

    @property
    def known(self) -> bool:
        return self.current is None or _knows(self.current)

    @property
    def pending(self) -> list[str]:
        """Revisions an upgrade would run, oldest first."""
        if self.current is None or self.current == self.head:
            return []
        steps = script().iterate_revisions(self.head, self.current)
        return [step.revision for step in reversed(list(steps))]

    def describe(self) -> str:
        if self.current is None:
            return "empty (no monitor tables)"
        if not self.stamped:
            return f"{self.current} (made before migrations: taken as the baseline)"
        return self.current


@cache
def script() -> ScriptDirectory:
    """The monitor's revisions (read once: open_database is called often)."""
    return ScriptDirectory.from_config(alembic_config())


def head() -> str:
    """The revision this monitor's models are at."""
    revision = script().get_current_head()
    assert revision is not None, "the migrations directory has no revision"
    return revision


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration for the monitor's migrations, running on ``connection``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # Numbered revisions ("0003_outbox_incident.py") read in order and merge visibly.
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    config.attributes["connection"] = connection
    return config


def state(connection: Connection) -> SchemaState:
    """Read where the database on ``connection`` stands, changing nothing."""
    # Read directly rather than through Alembic, which logs two lines per look.
    tables = set(inspect(connection).get_table_names())
    heads = []
    if "alembic_version" in tables:
        heads = list(connection.scalars(text("SELECT version_num FROM alembic_version")))
    if len(heads) > 1:
        raise SchemaError(
            f"the database records several schema revisions ({', '.join(heads)}); "
            "Fix: restore it from a backup or ask the developers."
        )
    if heads:
        return SchemaState(current=heads[0], head=head(), stamped=True)
    if tables & set(SQLModel.metadata.tables):
        return SchemaState(current=BASELINE, head=head(), stamped=False)
    return SchemaState(current=None, head=head(), stamped=False)


def prepare(engine: Engine, mode: MigrateMode) -> list[str]:
    """Bring the database to this monitor's revision; return the revisions that ran.

    Raises :class:`SchemaError` for a database newer than this monitor, or an older one in
    "check" mode. A database already at the head costs two small queries.
    """
    with engine.connect() as connection:
        if state(connection).current == head():
            return []
    with locked(engine) as connection:
        # Read again under the lock: another process may have done the work meanwhile.
        found = state(connection)
        refuse_unusable(found, engine, mode)
        if found.current is None:
            SQLModel.metadata.create_all(connection)
            MigrationContext.configure(connection).stamp(script(), found.head)
            return []
        return upgrade(connection, found)


def refuse_unusable(found: SchemaState, engine: Engine, mode: MigrateMode) -> None:
    """Raise :class:`SchemaError` if ``found`` is newer than this monitor, or older while
    ``mode`` is "check"."""
    where = engine.url.render_as_string(hide_password=True)
    if not found.known:
        raise SchemaError(
            f"database {where} is at schema revision {found.current}, which this monitor "
            f"(newest revision {found.head}) does not know: it was upgraded by a newer "
            "monitor. Fix: run that newer monitor, or restore a backup made before the upgrade."
        )
    if mode == "check" and found.pending:
        raise SchemaError(
            f"database {where} is at schema revision {found.describe()}; this monitor needs "
            f'{found.head} and [database] migrate = "check" forbids upgrading it on start. '
            + UPGRADE_FIX
        )


def upgrade(connection: Connection, found: SchemaState) -> list[str]:
    """Run the revisions ``found`` is missing on ``connection`` (inside its transaction)."""
    if not found.pending:
        return []
    config = alembic_config(connection)
    try:
        if not found.stamped:
            command.stamp(config, BASELINE)
        command.upgrade(config, found.head)
    except Exception as exc:
        raise SchemaError(
            f"upgrading the database schema from {found.describe()} to {found.head} failed: "
            f"{exc}. Nothing was changed: the upgrade runs in one transaction. Fix: correct "
            "what the error names, then start again (or run `monitor db upgrade`)."
        ) from exc
    _log.info(
        "database schema upgraded",
        extra={"from_revision": found.current, "to_revision": found.head, "ran": found.pending},
    )
    return found.pending


@contextmanager
def locked(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that holds the database's schema lock; committed at the
    end, rolled back (nothing changed) on an error."""
    if engine.dialect.name == "sqlite":
        with _sqlite_locked(engine) as connection:
            yield connection
        return
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        yield connection


@contextmanager
def _sqlite_locked(engine: Engine) -> Iterator[Connection]:
    database = engine.url.database
    if not database or database == ":memory:":
        # One connection, nobody to race, and the data lives only in it: use it as it is.
        with engine.begin() as connection:
            yield connection
        return
    # Python's sqlite3 commits around DDL on its own; a driver left in autocommit with our own
    # BEGIN IMMEDIATE makes the whole change one transaction holding the write lock.
    own = create_engine(engine.url, poolclass=NullPool, connect_args={"timeout": 60})
    event.listen(own, "connect", _sqlite_for_migrations)
    event.listen(own, "begin", _begin_immediate)
    try:
        with own.begin() as connection:
            yield connection
    finally:
        own.dispose()


def _sqlite_for_migrations(dbapi_connection: Any, _record: object) -> None:
    dbapi_connection.isolation_level = None
    # Batch mode copies a table to change it; foreign keys checked on the way would refuse
    # to drop the old copy. PRAGMA foreign_keys has no effect inside a transaction.
    dbapi_connection.execute("PRAGMA foreign_keys=OFF")


def _begin_immediate(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _knows(revision: str) -> bool:
    try:
        return script().get_revision(revision) is not None
    except CommandError:
        return False
