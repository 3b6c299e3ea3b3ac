"""Alembic's entry point: runs the revisions on the connection :mod:`monitor.store.schema`
hands over, inside that connection's transaction."""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

from monitor.store import models as _models  # noqa: F401  (registers the tables)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        # SQLite can add a column but not alter or drop one: batch mode copies the table.
        render_as_batch=True,
        compare_type=True,
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def _render_item(kind: str, item: Any, _context: AutogenContext) -> str | Literal[False]:
    # SQLModel's AutoString is a plain VARCHAR here; rendered as such, a revision needs no
    # sqlmodel import and type-checks.
    if kind == "type" and isinstance(item, AutoString):
        return "sa.String()"
    return False


_connection = context.config.attributes.get("connection")
if not isinstance(_connection, Connection):
    raise RuntimeError(
        "the monitor's migrations run through `monitor db upgrade` (or open_database), "
        "not the alembic command line; see docs/database.md"
    )
_run(_connection)
