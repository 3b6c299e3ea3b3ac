"""``monitor rules``: validate rule files, and replay recorded telemetry through one."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from monitor.backtest import TelemetryFileError, read_telemetry
from monitor.config import ConfigError, DatabaseSettings, Settings, load_settings
from monitor.logs import configure_logging
from monitor.pipeline import Pipeline
from monitor.store import DatabaseError, open_database
from monitor.store.manifest import ManifestError, import_manifest
from rules import RuleEngine, RuleFileError, load_rule_file, load_rules
from rules.engine import Alarm, RuleEvent
from rules.model import Rule

rules_app = typer.Typer(help="Rule files: check them, try them on recorded telemetry.")
err = Console(stderr=True, soft_wrap=True)
ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML config file (see docs/).")
]


@rules_app.command("check")
def check(
    path: Annotated[
        Path | None, typer.Argument(help="Rules directory or one file (default: config's).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Validate rule files; exit 1 with file:line, key and fix for each problem."""
    target = path or _settings(config).rules.dir
    try:
        rules = load_rule_file(target) if target.is_file() else load_rules(target)
    except (RuleFileError, OSError, UnicodeDecodeError) as exc:
        _fail("rules invalid", exc)
        raise typer.Exit(1) from exc
    typer.echo(f"{target}: {len(rules)} rules ok: {', '.join(rule.name for rule in rules)}")


@rules_app.command("test")
def try_rule_file(
    rule_file: Annotated[Path, typer.Argument(help="The rule file to try.")],
    telemetry: Annotated[
        Path, typer.Option("--telemetry", help="Wide CSV (device_id,ts,<metric>…) or JSONL.")
    ],
    devices: Annotated[
        Path | None,
        typer.Option("--devices", help="Device manifest, for rules on kind, model, customer …"),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Replay telemetry through decode, detect and RULE_FILE; print when each rule would have
    opened and cleared, per device, in event time (ISO 8601, UTC)."""
    settings = _settings(config)
    configure_logging("ERROR", settings.log.json_format)
    try:
        rules = load_rule_file(rule_file)
    except (RuleFileError, OSError, UnicodeDecodeError) as exc:
        _fail("rules invalid", exc)
        raise typer.Exit(1) from exc
    try:
        bouts = _replay(settings, rules, telemetry, devices)
    except (TelemetryFileError, ManifestError, DatabaseError, OSError) as exc:
        _fail("replay failed", exc)
        raise typer.Exit(2) from exc
    for bout in sorted(bouts, key=lambda b: (b.device_id, b.opened, b.rule)):
        typer.echo(bout.line())
    typer.echo(f"{len(bouts)} openings of {len(rules)} rules from {rule_file}")


@dataclass(slots=True)
class Bout:
    """One stretch in which a rule fired for a device."""

    device_id: str
    rule: str
    severity: str
    since: float
    opened: float
    cleared: float | None = None
    escalated: list[tuple[str, float]] = field(default_factory=list)

    def line(self) -> str:
        cleared = _iso(self.cleared) if self.cleared is not None else "(still open)"
        steps = "".join(f"  escalated to {s} {_iso(at)}" for s, at in self.escalated)
        return (
            f"{self.device_id}  {self.rule}  opened {_iso(self.opened)}  cleared {cleared}  "
            f"severity {self.severity}  condition since {_iso(self.since)}{steps}"
        )


def _replay(
    settings: Settings, rules: list[Rule], telemetry: Path, devices: Path | None
) -> list[Bout]:
    with tempfile.TemporaryDirectory(prefix="monitor-rules-test-") as tmp:
        # A private database: detector state must start fresh and nothing may be written
        # to the monitor's own one.
        settings = settings.model_copy(
            update={"database": DatabaseSettings(url=f"sqlite:///{tmp}/rules-test.db")}
        )
        db = open_database(settings.database.url)
        if devices is not None:
            import_manifest(db, devices)
        pipeline = Pipeline(settings, db, [], notify=False)
        engine = RuleEngine(rules, pipeline.attributes.get)
        bouts: list[Bout] = []
        for batch in read_telemetry(telemetry, settings.mqtt.topic_prefix):
            work = pipeline.compute([message for _, _, message in batch])
            readings = [t.metrics for t in work.admitted.telemetry]
            _collect(bouts, engine.evaluate(work.signals, readings))
        db.dispose()
    return bouts


def _collect(bouts: list[Bout], events: list[RuleEvent]) -> None:
    current = {(b.device_id, b.rule): b for b in bouts if b.cleared is None}
    for event in events:
        key = (event.device_id, event.rule)
        if isinstance(event, Alarm) and event.escalation and key in current:
            current[key].escalated.append((event.severity, event.at))
        elif isinstance(event, Alarm):
            bout = Bout(event.device_id, event.rule, event.severity, event.since, event.at)
            bouts.append(bout)
            current[key] = bout
        elif key in current:
            current.pop(key).cleared = event.at


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def _settings(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        _fail("configuration error", exc)
        raise typer.Exit(2) from exc


def _fail(what: str, error: Exception) -> None:
    err.print(f"[red]{what}[/red]")
    # The message quotes the user's file: never read it as markup.
    err.print(str(error), markup=False, highlight=False)
