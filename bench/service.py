"""The service a simulated fleet's owners get, with the monitor and without it, side by side.

    .venv/bin/python bench/service.py [--devices 80] [--days 60] [--seed 5]

Generates a fleet (all four product kinds, faults and benign events, a fleet-wide cold snap),
runs its telemetry through the monitor's real pipeline on the messages' own timestamps with
the outbox on, delivers the customer emails through the real dispatcher to a local SMTP sink
(aiosmtpd) and the support webhooks to a local HTTP receiver, with the dispatcher's clock on
simulated time, while the simulated owners and support team act on what arrives
(``simulators.service_run``). Then the same fleet without a monitor: owners call when they
notice. Prints the service report of both side by side and the issue's targets, met or not,
judged against the simulator's ground truth.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from devenv.http_sink import HttpSink
from devenv.smtp_sink import SmtpSink
from monitor.config import (
    DatabaseSettings,
    NotifySettings,
    Settings,
    SmtpSettings,
    WebhookSettings,
)
from monitor.report import Distribution, build_report, quiet_wait, sent_problem_messages
from monitor.report_cli import duration, report_table
from monitor.store import Case, Outbox
from simulators.fleet import Fleet, build_fleet
from simulators.service_run import prepare_database, run_proactive, run_reactive
from simulators.weather import DAY

START = 1_790_000_000.0
"""A fixed start, so the figures are the same on any day the benchmark runs."""
FRT_TARGET_S = 60.0
console = Console(highlight=False, width=120)


@dataclass(frozen=True)
class Target:
    name: str
    value: str
    met: bool


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=80)
    parser.add_argument("--days", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--fault-share", type=float, default=0.25)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    fleet = build_fleet(
        args.seed, args.devices, args.days, step=300.0, start=START, fault_share=args.fault_share
    )
    kinds = sorted({d.product.kind for d in fleet.devices})
    failing = sum(1 for d in fleet.devices for f in d.faults if f.failure < fleet.end)
    console.print(
        f"fleet: {args.devices} devices ({', '.join(kinds)}), {args.days:g} days, seed "
        f"{args.seed}; {sum(len(d.faults) for d in fleet.devices)} faults, {failing} failing "
        "within the span"
    )
    with (
        tempfile.TemporaryDirectory(prefix="bench-service-") as tmp,
        SmtpSink() as smtp,
        HttpSink() as hooks,
    ):
        workdir = Path(tmp)
        settings = Settings(
            database=DatabaseSettings(url=f"sqlite:///{workdir}/proactive.db"),
            notify=NotifySettings(
                smtp=SmtpSettings(port=smtp.port, sender="care@proactive.example"),
                support_webhook=WebhookSettings(url=f"{hooks.url}/helpdesk", secret="bench"),
            ),
        )
        proactive = prepare_database(fleet, settings.database.url, workdir)
        started = time.perf_counter()
        last_day = [-1]

        def progress(sim_ts: float, messages: int) -> None:
            day = int((sim_ts - fleet.start) // DAY)
            if day % 10 == 0 and day != last_day[0]:
                last_day[0] = day
                console.print(
                    f"[dim]  day {day:>3}: {messages:>9,} messages, "
                    f"{len(smtp.messages)} emails, {time.perf_counter() - started:5.0f} s[/dim]"
                )

        loop = asyncio.run(run_proactive(fleet, proactive, settings, on_progress=progress))
        seconds = time.perf_counter() - started
        reactive = prepare_database(fleet, f"sqlite:///{workdir}/reactive.db", workdir)
        run_reactive(fleet, reactive)
        console.print(
            f"proactive run: {seconds:.0f} s; {len(smtp.messages)} customer emails in the SMTP "
            f"sink, {len(hooks.requests)} helpdesk webhooks"
        )
        reports = {"with the monitor": build_report(proactive), "reactive": build_report(reactive)}
        console.print(report_table(reports, title="Service report, simulated customers"))
        truth = fleet_truth_figures(fleet, proactive, loop.repaired_at)
        console.print(truth_table(truth, build_report(proactive)))
    return 0


def fleet_truth_figures(fleet: Fleet, engine: Engine, repaired: dict[str, float]) -> dict[str, Any]:
    """The figures that need the simulator's ground truth, for the proactive run."""
    with Session(engine) as session:
        cases = {c.id: c for c in session.exec(select(Case))}
        rows = session.exec(select(Outbox))
        sent = [(r, cases[case_id]) for case_id, _, r in sent_problem_messages(rows)]
    faults = {d.device_id: d.faults for d in fleet.devices}
    contacted, leads, per_fault = 0, [], []
    failures = [(d, f) for d, fs in faults.items() for f in fs if f.failure < fleet.end]
    for device_id, fault in failures:
        # Messages about this fault: cases opened while it was there (onset to repair).
        fixed = repaired.get(device_id, fleet.end)
        times = sorted(
            r.sent_at
            for r, c in sent
            if c.device_id == device_id
            and fault.onset <= c.opened_at < fixed
            and r.sent_at is not None
        )
        per_fault.append(len(times))
        if times and times[0] < fault.failure:
            contacted += 1
            leads.append(fault.failure - times[0])
        elif fixed < fault.failure:
            # Told by a case opened just before the onset, and repaired before it failed.
            contacted += 1
    frt = [
        r.sent_at - c.opened_at - quiet_wait(r, c.opened_at)
        for r, c in sent
        if c.source == "proactive" and r.sent_at is not None
    ]
    snap = fleet.weather.cold_snap
    benign = [
        r
        for r, c in sent
        if snap is not None
        and snap.start <= (r.sent_at or 0) <= snap.end + DAY
        and not any(f.onset <= c.opened_at for f in faults[c.device_id])
    ]
    healthy = [r for r, c in sent if not any(f.onset <= c.opened_at for f in faults[c.device_id])]
    return {
        "failures": len(failures),
        "contacted": contacted,
        "leads": sorted(leads),
        "frt": sorted(frt),
        "messages_per_fault": per_fault,
        "cold_snap": snap,
        "benign_messages": len(benign),
        "false_alarm_messages": len(healthy),
    }


def truth_table(t: dict[str, Any], report: Any) -> Table:
    share = t["contacted"] / t["failures"] if t["failures"] else 0.0
    leads = t["leads"]
    frt = t["frt"]
    snap = t["cold_snap"]
    per_fault = max((n for n in t["messages_per_fault"] if n), default=0)
    per_case = report.max_messages_per_problem
    targets = [
        Target(
            "≥ 95 % of failures contacted before the customer would notice",
            f"{t['contacted']}/{t['failures']} = {100 * share:.0f} %"
            + (f"; true lead time {_spread(leads)}" if leads else ""),
            share >= 0.95,
        ),
        Target(
            "automated FRT ≤ 1 min (quiet hours aside)",
            f"max {duration(max(frt))}, median {duration(frt[len(frt) // 2])} over {len(frt)}"
            if frt
            else "no automated contact",
            bool(frt) and max(frt) <= FRT_TARGET_S,
        ),
        Target(
            "one customer message per problem (no reminders configured)",
            f"max {per_fault} per fault, {per_case} per case",
            per_fault <= 1 and per_case <= 1,
        ),
        Target(
            "no messages to healthy devices' customers in the fleet-wide cold snap",
            f"{t['benign_messages']} (cold snap {_span(snap)}); "
            f"{t['false_alarm_messages']} false-alarm messages over the whole run",
            snap is not None and t["benign_messages"] == 0,
        ),
    ]
    table = Table("target", "measured", "", title="The issue's targets (against ground truth)")
    for target in targets:
        table.add_row(
            target.name, target.value, "[green]met[/green]" if target.met else "[red]not met[/red]"
        )
    return table


def _spread(values: list[float]) -> str:
    d = Distribution.of(values)
    return f"median {duration(d.p50)} (p10 {duration(d.p10)}, p90 {duration(d.p90)})"


def _span(snap: Any) -> str:
    if snap is None:
        return "none in this span"
    return f"{(snap.end - snap.start) / DAY:.1f} d, {snap.depth_c:.0f} °C"


if __name__ == "__main__":
    raise SystemExit(main())
