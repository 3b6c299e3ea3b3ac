"""Commands for support and engineering: act on cases, silence devices, see fleet incidents,
serve the API. Registered on the ``monitor`` app by :func:`register`."""

from __future__ import annotations

import getpass
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from monitor.api import create_app
from monitor.api.cases import case_with_history
from monitor.cases.feedback import rule_statistics
from monitor.cases.incidents import IncidentError, update_incident
from monitor.cases.lifecycle import TransitionError, act, add_note, assign
from monitor.cases.silencing import SilenceError, add_silence, expire_silence, list_silences
from monitor.config import ConfigError, Settings
from monitor.store import Case
from monitor.store.models import FleetIncident
from rules.model import parse_duration

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML config file (see docs/).")
]
ActorOption = Annotated[
    str, typer.Option("--actor", help="Who does it (default: your login name).")
]
CaseId = Annotated[int, typer.Argument(help="Case id (see `monitor cases list`).")]
err = Console(stderr=True, soft_wrap=True)

_load: Callable[[Path | None], Settings]
_database: Callable[[Settings], Engine]


def register(
    app: typer.Typer,
    cases_app: typer.Typer,
    load: Callable[[Path | None], Settings],
    database: Callable[[Settings], Engine],
) -> None:
    """Add these commands to ``monitor`` (and its ``cases`` group); ``load`` reads --config,
    ``database`` opens the configured database (both the main CLI's, so errors print alike)."""
    global _load, _database  # noqa: PLW0603
    _load = load
    _database = database
    for name, command in _CASE_COMMANDS.items():
        cases_app.command(name)(command)
    app.add_typer(silences_app, name="silences")
    app.add_typer(incidents_app, name="incidents")
    app.command("api")(serve_api)


@contextmanager
def _session(config: Path | None) -> Iterator[Session]:
    with Session(_database(_load(config))) as session:
        yield session


def _me() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def _when(text: str) -> float:
    """ISO date-time (UTC unless it says otherwise) to epoch seconds."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(
            f"{text!r} is not a date-time; write e.g. 2026-05-01T09:00"
        ) from exc
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, default=str, ensure_ascii=False, indent=2))


def _case(session: Session, case_id: int) -> Case:
    case = session.get(Case, case_id)
    if case is None:
        err.print(f"[red]no case {case_id}[/red]")
        raise typer.Exit(1)
    return case


def show(case_id: CaseId, config: ConfigOption = None) -> None:
    """Show a case with its evidence and its whole history (JSON)."""
    with _session(config) as session:
        _print_json(case_with_history(session, _case(session, case_id)))


@contextmanager
def _editing(config: Path | None, case_id: int) -> Iterator[tuple[Session, Case]]:
    """The case, in a session committed on success; a refused move exits with its reason."""
    with _session(config) as session:
        case = _case(session, case_id)
        try:
            yield session, case
        except TransitionError as exc:
            err.print(f"[red]refused[/red]: {exc}")
            raise typer.Exit(1) from exc
        session.commit()
        session.refresh(case)


def _action(action: str, summary: str) -> Callable[..., None]:
    def command(
        case_id: CaseId,
        actor: ActorOption = "",
        comment: Annotated[str, typer.Option(help="Why, for the history.")] = "",
        config: ConfigOption = None,
    ) -> None:
        detail = {"comment": comment} if comment else {}
        with _editing(config, case_id) as (session, case):
            act(session, case, action, actor=actor or _me(), at=time.time(), detail=detail)
        typer.echo(f"case {case_id} is now {case.status}")

    command.__doc__ = summary
    return command


def schedule_visit(
    case_id: CaseId,
    at: Annotated[str, typer.Option("--at", help="Visit date-time, e.g. 2026-05-01T09:00.")],
    actor: ActorOption = "",
    config: ConfigOption = None,
) -> None:
    """Record the technician's visit date; the case becomes visit_scheduled."""
    detail = {"visit_at": _when(at)}
    with _editing(config, case_id) as (session, case):
        act(session, case, "schedule-visit", actor=actor or _me(), at=time.time(), detail=detail)
    typer.echo(f"case {case_id} visit scheduled for {at}")


def note(
    case_id: CaseId,
    text: Annotated[str, typer.Argument(help="The note.")],
    actor: ActorOption = "",
    config: ConfigOption = None,
) -> None:
    """Add a note to a case's history."""
    with _editing(config, case_id) as (session, case):
        add_note(session, case, text, actor=actor or _me(), at=time.time())
    typer.echo(f"note added to case {case_id}")


def assign_case(
    case_id: CaseId,
    assignee: Annotated[str, typer.Argument(help="Who takes the case ('' to unassign).")],
    actor: ActorOption = "",
    config: ConfigOption = None,
) -> None:
    """Give a case to someone."""
    with _editing(config, case_id) as (session, case):
        assign(session, case, assignee, actor=actor or _me(), at=time.time())
    typer.echo(f"case {case_id} assigned to {assignee or 'nobody'}")


def stats(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
) -> None:
    """Per rule: cases opened, false alarms, precision."""
    with _session(config) as session:
        rows = rule_statistics(session)
    if as_json:
        _print_json([r.as_dict() for r in rows])
        return
    table = Table("rule", "opened", "false alarms", "precision")
    for r in rows:
        shown = "-" if r.precision is None else f"{r.precision:.0%}"
        table.add_row(r.rule, str(r.opened), str(r.false_alarms), shown)
    Console().print(table)


_CASE_COMMANDS: dict[str, Callable[..., None]] = {
    "show": show,
    "ack": _action("ack", "Acknowledge a case: someone is on it."),
    "assign": assign_case,
    "note": note,
    "schedule-visit": schedule_visit,
    "resolve": _action("resolve", "Mark a case resolved (the problem is fixed)."),
    "close": _action("close", "Close a resolved case."),
    "reopen": _action(
        "reopen", "Reopen a resolved, closed or false-alarm case (refused if another is open)."
    ),
    "false-alarm": _action(
        "false-alarm", "Mark a case a false alarm: counts against its rule, and detection learns."
    ),
    "stats": stats,
}

silences_app = typer.Typer(help="Silences and maintenance windows.", no_args_is_help=True)


@silences_app.command("add")
def silences_add(  # noqa: PLR0917  (typer options)
    device: Annotated[str | None, typer.Option(help="Silence one device.")] = None,
    model: Annotated[str | None, typer.Option(help="Silence every device of a model.")] = None,
    site: Annotated[str | None, typer.Option(help="Silence every device at a site.")] = None,
    customer: Annotated[str | None, typer.Option(help="Silence a customer's devices.")] = None,
    duration: Annotated[str, typer.Option(help="How long each window lasts: 30m, 2h, 1d.")] = "2h",
    start: Annotated[str | None, typer.Option(help="Start date-time (default now).")] = None,
    repeat: Annotated[str, typer.Option(help="none, daily or weekly.")] = "none",
    expires: Annotated[str | None, typer.Option(help="End of a recurring silence.")] = None,
    maintenance: Annotated[bool, typer.Option(help="Label it a maintenance window.")] = False,
    comment: Annotated[str, typer.Option(help="Why.")] = "",
    actor: ActorOption = "",
    config: ConfigOption = None,
) -> None:
    """Silence alarms of a device, model, site or customer (one-off or recurring)."""
    given = {
        k: v
        for k, v in {"device": device, "model": model, "site": site, "customer": customer}.items()
        if v
    }
    if len(given) != 1:
        err.print("[red]give exactly one of --device, --model, --site, --customer[/red]")
        raise typer.Exit(2)
    ((scope, value),) = given.items()
    now = time.time()
    starts = _when(start) if start else now
    try:
        seconds = parse_duration(duration)
        with _session(config) as session:
            silence = add_silence(
                session,
                scope=scope,
                value=value,
                starts_at=starts,
                ends_at=starts + seconds,
                repeat=repeat,
                expires_at=_when(expires) if expires else None,
                kind="maintenance" if maintenance else "silence",
                comment=comment,
                actor=actor or _me(),
                now=now,
            )
            session.commit()
            typer.echo(f"silence {silence.id} added for {scope} {value}")
    except (SilenceError, ValueError) as exc:
        err.print(f"[red]silence not added[/red]: {exc}")
        raise typer.Exit(2) from exc


@silences_app.command("list")
def silences_list(
    include_expired: Annotated[bool, typer.Option("--all", help="Expired ones too.")] = False,
    config: ConfigOption = None,
) -> None:
    """List silences and maintenance windows (active and future by default)."""
    with _session(config) as session:
        found = list_silences(session, now=time.time(), include_expired=include_expired)
    table = Table("id", "kind", "scope", "value", "starts", "ends", "repeat", "expires", "by")
    for s in found:
        table.add_row(
            str(s.id),
            s.kind,
            s.scope,
            s.value,
            _iso(s.starts_at),
            _iso(s.ends_at),
            s.repeat,
            _iso(s.expires_at),
            s.created_by,
        )
    Console().print(table)


@silences_app.command("expire")
def silences_expire(
    silence_id: Annotated[int, typer.Argument(help="Silence id.")], config: ConfigOption = None
) -> None:
    """End a silence now."""
    with _session(config) as session:
        try:
            expire_silence(session, silence_id, now=time.time())
        except SilenceError as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from exc
        session.commit()
    typer.echo(f"silence {silence_id} expired")


incidents_app = typer.Typer(help="Fleet incidents for engineering.", no_args_is_help=True)


@incidents_app.command("list")
def incidents_list(
    status: Annotated[str | None, typer.Option(help="Only open, acknowledged or resolved.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
    config: ConfigOption = None,
) -> None:
    """List fleet incidents, newest first."""
    with _session(config) as session:
        query = select(FleetIncident).order_by(col(FleetIncident.id).desc())
        if status:
            query = query.where(FleetIncident.status == status)
        found = list(session.exec(query))
    if as_json:
        _print_json([i.model_dump() for i in found])
        return
    table = Table("id", "model", "problem", "status", "opened (event time)", "devices", "active")
    for i in found:
        table.add_row(
            str(i.id),
            i.model,
            i.problem,
            i.status,
            _iso(i.opened_at),
            str(len(i.devices)),
            str(i.active_devices),
        )
    Console().print(table)


def _incident_command(status: str, summary: str) -> Callable[..., None]:
    def command(
        incident_id: Annotated[int, typer.Argument(help="Incident id.")],
        note: Annotated[str, typer.Option(help="What engineering found or did.")] = "",
        actor: ActorOption = "",
        config: ConfigOption = None,
    ) -> None:
        with _session(config) as session:
            try:
                update_incident(
                    session, incident_id, status, actor=actor or _me(), note=note, now=time.time()
                )
            except IncidentError as exc:
                err.print(f"[red]refused[/red]: {exc}")
                raise typer.Exit(1) from exc
            session.commit()
        typer.echo(f"fleet incident {incident_id} is now {status}")

    command.__doc__ = summary
    return command


incidents_app.command("ack")(_incident_command("acknowledged", "Engineering is on it."))
incidents_app.command("resolve")(
    _incident_command("resolved", "The fleet-wide cause is dealt with.")
)


def serve_api(config: ConfigOption = None) -> None:
    """Serve the support API (host, port and token from the api section) until Ctrl-C."""
    settings = _load(config)
    try:
        api = create_app(settings)
    except ConfigError as exc:
        err.print(f"[red]configuration error[/red]\n{escape(str(exc))}")
        raise typer.Exit(2) from exc
    uvicorn.run(api, host=settings.api.host, port=settings.api.port)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")
