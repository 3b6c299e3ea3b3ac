"""``monitor db``: the database schema's revision, upgrading it, and (for developers) the next
revision. See docs/database.md."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from alembic import command
from rich.console import Console
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from monitor.config import Settings
from monitor.store import DatabaseError, open_database
from monitor.store.db import connect
from monitor.store.schema import MIGRATIONS, SchemaError, SchemaState, alembic_config, state

db_app = typer.Typer(help="The database schema: its revision and upgrades.", no_args_is_help=True)
ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML config file (see docs/).")
]
err = Console(stderr=True, soft_wrap=True)
_settings: Callable[[Path | None], Settings]


def register(app: typer.Typer, load: Callable[[Path | None], Settings]) -> None:
    """Add ``monitor db`` to ``app``; ``load`` reads --config (the main CLI's, so errors print
    the same)."""
    global _settings  # noqa: PLW0603
    _settings = load
    app.add_typer(db_app, name="db")


@db_app.command("current")
def current(config: ConfigOption = None) -> None:
    """Show the database's schema revision and the one this monitor needs (changes nothing)."""
    found = _state(_settings(config).database.url)
    typer.echo(f"database: {found.describe()}")
    typer.echo(f"monitor:  {found.head}")
    if not found.known:
        typer.echo("newer than this monitor: upgrade the monitor, do not use it on this database")
    elif found.pending:
        typer.echo(f"needs upgrade: {', '.join(found.pending)} (run `monitor db upgrade`)")
    else:
        typer.echo("up to date" if found.current else "will be created on first start")


@db_app.command("upgrade")
def upgrade(config: ConfigOption = None) -> None:
    """Upgrade the database to this monitor's schema (or create it), in one transaction."""
    url = _settings(config).database.url
    before = _state(url)
    try:
        open_database(url, "auto")
    except DatabaseError as exc:
        err.print(f"[red]upgrade failed[/red]\n{exc}")
        raise typer.Exit(1) from exc
    if before.current is None:
        typer.echo(f"created the database at revision {before.head}")
    elif before.pending:
        typer.echo(
            f"upgraded from {before.describe()} to {before.head}: ran {', '.join(before.pending)}"
        )
    else:
        typer.echo(f"already at revision {before.head}")


@db_app.command("revision")
def revision(
    message: Annotated[str, typer.Option("-m", "--message", help="What the revision changes.")],
) -> None:
    """For developers: write the next revision from the models' changes (autogenerate).

    Runs every revision on a scratch SQLite database, compares it with the models and writes
    ``monitor/store/migrations/versions/<NNNN>_<message>.py``. Review it before committing:
    autogenerate misses a partial index's changed WHERE, and a new NOT NULL column needs a
    ``server_default`` for the rows already there.
    """
    with tempfile.TemporaryDirectory(prefix="monitor-revision-") as tmp:
        scratch = connect(f"sqlite:///{tmp}/scratch.db")
        try:
            with scratch.begin() as connection:
                config = alembic_config(connection)
                command.upgrade(config, "head")
                script = command.revision(
                    config, message=message, autogenerate=True, rev_id=_next_rev_id()
                )
        finally:
            scratch.dispose()
    written = script[0] if isinstance(script, list) else script
    path = written.path if written is not None else "?"
    typer.echo(f"wrote {path}: review it, then `ruff format` it and run the migration tests")


def _next_rev_id() -> str:
    numbers = [
        int(match.group(1))
        for path in (MIGRATIONS / "versions").glob("*.py")
        if (match := re.match(r"(\d{4})_", path.name))
    ]
    return f"{max(numbers, default=0) + 1:04d}"


def _state(url: str) -> SchemaState:
    # Asking about a SQLite file that does not exist yet must not create it: read the
    # state of an empty database instead ("will be created on first start").
    parsed = make_url(url)
    file = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if file not in (None, "", ":memory:") and not Path(str(file)).exists():
        url = "sqlite://"
    engine = connect(url)
    try:
        with engine.connect() as connection:
            return state(connection)
    except (SchemaError, SQLAlchemyError) as exc:
        err.print(f"[red]cannot read the database[/red]\n{exc}")
        raise typer.Exit(1) from exc
    finally:
        engine.dispose()
