"""Opening the database: SQLite by default, PostgreSQL by URL, through the same code."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import create_engine

from monitor.store.schema import MigrateMode, SchemaError, prepare


class DatabaseError(Exception):
    """The database cannot be reached or prepared; the message says which and why."""


def open_database(url: str, migrate: MigrateMode = "auto") -> Engine:
    """Create an engine for ``url`` with the schema at this monitor's revision.

    An empty database gets every table; an older one is upgraded (``migrate="auto"``) or
    refused (``"check"``); one newer than this monitor is refused (see docs/database.md).
    """
    engine = connect(url)
    try:
        prepare(engine, migrate)
    except SchemaError as exc:
        raise DatabaseError(str(exc)) from exc
    except Exception as exc:
        where = engine.url.render_as_string(hide_password=True)
        raise DatabaseError(
            f"database {where} is not usable: {exc or repr(exc)}. "
            "Fix: check database.url and that the server is running."
        ) from exc
    return engine


def connect(url: str) -> Engine:
    """An engine for ``url`` as it is: no table is created or changed."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _tune_sqlite)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True)


def _tune_sqlite(dbapi_connection: Any, _record: object) -> None:
    # WAL lets the API and CLI read while the daemon writes; NORMAL sync is safe under WAL.
    cursor = dbapi_connection.cursor()
    _use_wal(cursor)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _use_wal(cursor: Any) -> None:
    # The mode is stored in the file, so this is a no-op after the first connection. The first
    # switch needs a moment's exclusive lock and SQLite does not wait for it: processes
    # starting together on a new file take turns.
    for delay in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 0.0):
        if cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
            return
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or not delay:
                raise
            time.sleep(delay)
