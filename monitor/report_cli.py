"""``monitor report``: the service report as a table (or JSON), and the table for side-by-sides."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from monitor.config import ConfigError, load_settings
from monitor.report import Distribution, ServiceReport, build_report
from monitor.store import DatabaseError, open_database

_UNITS = {"m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([mhdw])$")


def parse_since(text: str, now: float | None = None) -> float:
    """An ISO 8601 date or time (UTC unless it says otherwise), or a span back from now.

    >>> parse_since("2026-01-02")
    1767312000.0
    >>> parse_since("7d", now=1_000_000.0)
    395200.0
    """
    match = _RELATIVE.match(text.strip())
    if match:
        reference = time.time() if now is None else now
        return reference - float(match.group(1)) * _UNITS[match.group(2)]
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ValueError(
            f"--since {text!r} is neither an ISO date/time nor a span. "
            "Fix: use e.g. 2026-01-31, 2026-01-31T08:00:00+01:00, 12h, 30d or 4w."
        ) from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def report(
    since: Annotated[
        str | None,
        typer.Option(help="Cases opened since: an ISO date/time or a span such as 30d or 12h."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="The figures as one JSON object.")
    ] = False,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="TOML config file (see docs/).")
    ] = None,
) -> None:
    """The service report: proactive share, lead time, FRT, ART, CSAT, CES, NPS, retention."""
    err = Console(stderr=True, soft_wrap=True)
    try:
        settings = load_settings(config)
        start = parse_since(since) if since is not None else None
        result = build_report(
            open_database(settings.database.url, settings.database.migrate), start
        )
    except (ConfigError, DatabaseError, ValueError) as exc:
        err.print(f"[red]report failed[/red]\n{exc}")
        raise typer.Exit(2) from exc
    if as_json:
        typer.echo(json.dumps(result.as_dict()))
        return
    Console().print(report_table({"this monitor": result}))


def report_table(columns: Mapping[str, ServiceReport], title: str = "Service report") -> Table:
    """One row per figure, one column per report (e.g. proactive and reactive side by side)."""
    table = Table("figure", *columns, title=title)
    reports = list(columns.values())
    for label, show in _ROWS:
        table.add_row(label, *(show(r) for r in reports))
    suppressed = sorted({reason for r in reports for reason in r.suppressed})
    for reason in suppressed:
        table.add_row(f"suppressed: {reason}", *(str(r.suppressed.get(reason, 0)) for r in reports))
    return table


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.0f} %"


def _num(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def duration(seconds: float | None) -> str:
    """A duration the way a person says it.

    >>> [duration(s) for s in (0.031, 42, 720, 18720, 267840)]
    ['0.03 s', '42 s', '12 min', '5.2 h', '3.1 d']
    """
    if seconds is None:
        return "n/a"
    if abs(seconds) < 10:
        # Automated responses take fractions of a second: show them, not "0 s".
        return f"{seconds:.2f} s"
    for limit, unit, size in ((120, "s", 1.0), (7200, "min", 60.0), (172800, "h", 3600.0)):
        if abs(seconds) < limit:
            return f"{seconds / size:.0f} {unit}" if unit != "h" else f"{seconds / size:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _dist(pick: Callable[[ServiceReport], Distribution]) -> Callable[[ServiceReport], str]:
    def show(r: ServiceReport) -> str:
        d = pick(r)
        if d.count == 0:
            return "n/a"
        return f"{duration(d.p50)} (p10 {duration(d.p10)}, p90 {duration(d.p90)})"

    return show


_ROWS: tuple[tuple[str, Callable[[ServiceReport], str]], ...] = (
    ("cases (false alarms)", lambda r: f"{r.cases} ({r.false_alarms})"),
    ("problems", lambda r: str(r.problems)),
    ("contacted before the customer noticed", lambda r: _pct(r.proactive_share)),
    ("forecast lead time, median", _dist(lambda r: r.lead_time)),
    ("first response, automated: median", _dist(lambda r: r.frt)),
    ("  … quiet hours aside: median", _dist(lambda r: r.frt_awake)),
    ("first response, support team: median", _dist(lambda r: r.frt_reactive)),
    ("resolution time, mean", lambda r: duration(r.art.mean)),
    ("resolution rate", lambda r: _pct(r.resolution_rate)),
    ("CSAT (share of 4–5)", lambda r: _pct(r.csat)),
    ("CES (1–7, higher is easier)", lambda r: _num(r.ces)),
    ("NPS", lambda r: _num(r.nps, 0)),
    ("'was this helpful?' yes", lambda r: _pct(r.helpful_share)),
    ("survey answers", lambda r: str(r.survey_answers)),
    ("retention, all customers", lambda r: _pct(r.retention)),
    ("retention, customers with a problem", lambda r: _pct(r.retention_affected)),
    (
        "customer messages per problem (max)",
        lambda r: f"{_num(r.messages_per_problem, 2)} ({r.max_messages_per_problem})",
    ),
)
