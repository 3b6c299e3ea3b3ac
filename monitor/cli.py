"""The ``monitor`` command: run the daemon, import devices, look at cases."""

from __future__ import annotations

import asyncio
import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from monitor import cases_cli, db_cli, report_cli
from monitor.backtest import TelemetryFileError, run_backtest
from monitor.config import ConfigError, DatabaseSettings, Settings, load_settings
from monitor.daemon import Daemon
from monitor.logs import configure_logging
from monitor.rules_cli import rules_app
from monitor.store import Case, DatabaseError, open_database
from monitor.store.manifest import ManifestError, import_manifest
from rules import RuleFileError, load_rules

app = typer.Typer(help="IoT proactive service monitor.", no_args_is_help=True)
devices_app = typer.Typer(help="Devices and their owners.", no_args_is_help=True)
cases_app = typer.Typer(help="Proactive service cases.", no_args_is_help=True)
app.add_typer(devices_app, name="devices")
app.add_typer(cases_app, name="cases")
app.add_typer(rules_app, name="rules")

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML config file (see docs/).")
]
err = Console(stderr=True, soft_wrap=True)
app.command("report")(report_cli.report)


def _settings(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        err.print(f"[red]configuration error[/red]\n{exc}")
        raise typer.Exit(2) from exc


def database_of(settings: Settings) -> Engine:
    """The configured database, or a plain error and exit 2 (unreachable, too old in check
    mode, newer than this monitor)."""
    try:
        return open_database(settings.database.url, settings.database.migrate)
    except DatabaseError as exc:
        err.print(f"[red]database error[/red]\n{escape(str(exc))}")
        raise typer.Exit(2) from exc


@app.command()
def run(config: ConfigOption = None) -> None:
    """Run the monitor daemon until SIGTERM or Ctrl-C."""
    settings = _settings(config)
    configure_logging(settings.log.level, settings.log.json_format)
    try:
        daemon = Daemon(settings)
    except (ConfigError, DatabaseError, RuleFileError) as exc:
        err.print(f"[red]cannot start[/red]\n{escape(str(exc))}")
        raise typer.Exit(2) from exc
    asyncio.run(daemon.run())


@app.command()
def backtest(
    telemetry: Annotated[Path, typer.Argument(help="Wide CSV (device_id,ts,<metric>…) or JSONL.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write cases.csv.")],
    scores: Annotated[
        Path | None, typer.Option("--scores", help="Also write each row's score here.")
    ] = None,
    rules_dir: Annotated[
        Path | None, typer.Option("--rules", help="Rules directory (default: config's).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Replay recorded telemetry through the daemon's pipeline; write the cases it opens."""
    settings = _settings(config)
    # The summary line reports refusals; a log line per refused row would drown it.
    configure_logging("ERROR", settings.log.json_format)
    with tempfile.TemporaryDirectory(prefix="monitor-backtest-") as tmp:
        if config is None or "database" not in settings.model_fields_set:
            settings = settings.model_copy(
                update={"database": DatabaseSettings(url=f"sqlite:///{tmp}/backtest.db")}
            )
        try:
            rules = load_rules(rules_dir or settings.rules.dir)
            result = run_backtest(telemetry, settings, rules, out, scores)
        except (RuleFileError, TelemetryFileError, DatabaseError, OSError) as exc:
            err.print(f"[red]backtest failed[/red]\n{exc}")
            raise typer.Exit(2) from exc
    rate = result.rows / max(result.seconds, 1e-9) * 60
    typer.echo(
        f"{result.rows} rows ({result.rejected} refused) in {result.seconds:.1f} s "
        f"({rate:,.0f} rows/min): {result.cases} cases written to {out}"
    )


@devices_app.command("import")
def import_devices(
    manifest: Annotated[Path, typer.Argument(help="CSV or JSON manifest of devices.")],
    config: ConfigOption = None,
) -> None:
    """Import devices and their customers from a manifest (updates existing ones)."""
    settings = _settings(config)
    try:
        devices, customers = import_manifest(
            open_database(settings.database.url, settings.database.migrate), manifest
        )
    except (ManifestError, DatabaseError, OSError) as exc:
        err.print(f"[red]import failed[/red]\n{exc}")
        raise typer.Exit(1) from exc
    typer.echo(f"imported {devices} devices and {customers} customers from {manifest}")


@cases_app.command("list")
def list_cases(
    config: ConfigOption = None,
    status: Annotated[str | None, typer.Option(help="Only cases with this status.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """List cases, newest first."""
    settings = _settings(config)
    engine = database_of(settings)
    with Session(engine) as session:
        query = select(Case).order_by(col(Case.opened_at).desc())
        if status:
            query = query.where(Case.status == status)
        cases = list(session.exec(query))
    if as_json:
        for case in cases:
            typer.echo(json.dumps(case.model_dump(), default=str))
        return
    table = Table(
        "id", "device", "problem", "severity", "status", "opened (event time)", "top metric"
    )
    for case in cases:
        metrics = case.evidence.get("metrics") or [{}]
        table.add_row(
            str(case.id),
            case.device_id,
            case.problem,
            case.severity,
            case.status,
            datetime.fromtimestamp(case.opened_at, UTC).strftime("%Y-%m-%d %H:%M"),
            str(metrics[0].get("metric", "")),
        )
    Console().print(table)


cases_cli.register(app, cases_app, _settings, database_of)
db_cli.register(app, _settings)


def main() -> None:
    app()
