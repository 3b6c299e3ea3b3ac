"""The demo: broker, monitor, a simulated fleet, cases opening live, emails, a scored summary,
then the simulated customers acting on what they were sent and the service report (with the
monitor, and for the same fleet without it) side by side.

Run through ``scripts/demo.sh`` (which installs what is missing first). Everything it starts —
a Mosquitto on a free port, an SMTP sink, a webhook receiver, the ``monitor run`` process and
the simulated devices — lives in a temporary directory and is stopped at the end, also on
Ctrl-C.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from devenv.broker import Broker
from devenv.http_sink import HttpSink
from devenv.ports import free_port
from devenv.prometheus import scrape
from devenv.smtp_sink import SmtpSink
from monitor.report import build_report
from monitor.report_cli import report_table
from monitor.store import Case, Outbox, open_database
from simulators.files import write_manifest
from simulators.fleet import Fleet, build_fleet
from simulators.publisher import publish_fleet
from simulators.scoring import score
from simulators.service_run import (
    LINGER_DAYS,
    align_to_simulated_time,
    prepare_database,
    run_reactive,
)
from simulators.service_sim import CustomerLoop

console = Console(highlight=False)
DAY = 86400.0


def main() -> int:
    parser = argparse.ArgumentParser(description="Run the proactive service monitor demo.")
    parser.add_argument("--devices", type=int, default=60)
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=100.0, help="wall time to publish in")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="monitor-demo-") as tmp:
        return Demo(Path(tmp), args).run()


class Demo:
    def __init__(self, workdir: Path, args: argparse.Namespace) -> None:
        self.workdir = workdir
        self.args = args
        self.db_url = f"sqlite:///{workdir}/monitor.db"
        self.metrics_port = free_port()
        self.stop = threading.Event()
        self.monitor: subprocess.Popen[bytes] | None = None
        self.fleet: Fleet | None = None
        self.truth: dict[str, Any] = {}
        self.seen_cases: set[int] = set()
        self.engine: Engine | None = None

    def run(self) -> int:
        signal.signal(signal.SIGTERM, lambda *_: self.stop.set())
        console.rule("[bold]IoT proactive service monitor — demo")
        with (
            Broker() as broker,
            SmtpSink(on_message=self._email_arrived) as smtp,
            HttpSink() as hooks,
        ):
            console.print(
                f"broker 127.0.0.1:{broker.port} · SMTP sink 127.0.0.1:{smtp.port} · "
                f"helpdesk webhook {hooks.url} · metrics http://127.0.0.1:{self.metrics_port}/metrics"
            )
            fleet = self._build_fleet()
            self._start_monitor(broker, smtp, hooks)
            try:
                report = self._publish(fleet, broker)
                self._wait_until_processed(report.published)
                self._show_new_cases()
                self._wait_for_outbox()
                metrics = self._scrape()
            except KeyboardInterrupt:
                console.print("[yellow]interrupted: stopping everything[/yellow]")
                return 130
            finally:
                self._stop_monitor()
            self._summary(smtp.messages, len(hooks.requests), metrics, report.wall_seconds)
            self._customer_loop(fleet)
        return 0

    def _build_fleet(self) -> Fleet:
        a = self.args
        fleet = build_fleet(a.seed, a.devices, a.days, step=300.0)
        self.fleet, self.truth = fleet, fleet.truth()
        faulty = sum(1 for d in self.truth["devices"].values() if d["faults"])
        kinds = sorted({d["kind"] for d in self.truth["devices"].values()})
        console.print(
            f"fleet: {a.devices} devices ({', '.join(kinds)}), {a.days:.0f} simulated days, "
            f"5-minute telemetry, seed {a.seed}; {faulty} devices will develop a fault"
        )
        manifest = self.workdir / "devices.csv"
        # The demo fast-forwards a month through a live daemon whose dispatcher keeps wall
        # time: the owners' quiet hours would be judged at tonight's hour, not the fleet's,
        # and hold every message. bench/service.py drives a simulated clock and keeps them.
        rows = [{**row, "quiet_hours": ""} for row in fleet.manifest_rows()]
        write_manifest(rows, manifest)
        return fleet

    def _config(self, broker: Broker, smtp: SmtpSink, hooks: HttpSink) -> Path:
        path = self.workdir / "monitor.toml"
        path.write_text(
            f'[mqtt]\nport = {broker.port}\nclient_id = "demo-monitor"\n'
            f"[ingest]\nrequire_registration = true\n"
            f'[database]\nurl = "{self.db_url}"\n'
            f"[notify]\npoll_seconds = 0.5\n"
            f'[notify.smtp]\nport = {smtp.port}\nsender = "care@proactive.example"\n'
            f'[notify.support_webhook]\nurl = "{hooks.url}/helpdesk"\nsecret = "demo"\n'
            f"[metrics]\nport = {self.metrics_port}\n"
        )
        return path

    def _monitor_cli(self, *argv: str) -> None:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "monitor",
                *argv,
                "--config",
                str(self.workdir / "monitor.toml"),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def _start_monitor(self, broker: Broker, smtp: SmtpSink, hooks: HttpSink) -> None:
        config = self._config(broker, smtp, hooks)
        self._monitor_cli("devices", "import", str(self.workdir / "devices.csv"))
        log = (self.workdir / "monitor.log").open("wb")
        self.monitor = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", "--config", str(config)],
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + 30
        while self._scrape().get("monitor_broker_connected") != 1:
            if time.monotonic() > deadline or self.monitor.poll() is not None:
                raise SystemExit("the monitor did not start:\n" + self._monitor_log())
            time.sleep(0.2)
        console.print(f"monitor running (pid {self.monitor.pid}), logs in its temp dir")

    def _publish(self, fleet: Fleet, broker: Broker) -> Any:
        speed = self.args.days * DAY / self.args.seconds
        console.print(f"publishing over MQTT at {speed:,.0f}× real time …\n")
        result: dict[str, Any] = {}
        last_day = [-1]

        def progress(sim_ts: float, published: int) -> None:
            day = int((sim_ts - fleet.start) // DAY)
            if day != last_day[0]:
                last_day[0] = day
                self._progress_line(sim_ts, published)

        def publish() -> None:
            result["report"] = publish_fleet(
                fleet,
                "127.0.0.1",
                broker.port,
                speed=speed,
                stop=self.stop,
                on_progress=progress,
                client_id_prefix="demo",
            )

        thread = threading.Thread(target=publish, name="fleet", daemon=True)
        thread.start()
        while thread.is_alive():
            self._show_new_cases()
            thread.join(0.5)
        return result["report"]

    def _progress_line(self, sim_ts: float, published: int) -> None:
        day = datetime.fromtimestamp(sim_ts, UTC).strftime("%Y-%m-%d")
        metrics = self._scrape()
        console.print(
            f"[dim]{day}  published {published:>7,}  processed "
            f"{int(metrics.get('monitor_messages_total', 0)):>7,}  cases "
            f"{int(metrics.get('monitor_cases_opened_total', 0))}[/dim]"
        )

    def _show_new_cases(self) -> None:
        with Session(self._engine()) as session:
            query = select(Case).where(col(Case.id).not_in(self.seen_cases or {-1}))
            new = list(session.exec(query.order_by(col(Case.id))))
        for case in new:
            assert case.id is not None
            self.seen_cases.add(case.id)
            device = self.truth["devices"].get(case.device_id, {})
            faults = [f for f in device.get("faults", []) if f["onset"] <= case.opened_at]
            verdict = (
                f"[green]real fault: {faults[0]['kind']}, customer would notice in "
                f"{(faults[0]['failure'] - case.opened_at) / DAY:.1f} days[/green]"
                if faults and case.opened_at < faults[0]["failure"]
                else "[red]no fault here (false alarm)[/red]"
            )
            top = ", ".join(
                f"{m['metric']} {m['observed']:g} vs {m['baseline']:g} "
                f"({m['deviation_sigma']:+.1f}σ)"
                for m in case.evidence.get("metrics", [])[:2]
            )
            when = datetime.fromtimestamp(case.opened_at, UTC).strftime("%Y-%m-%d %H:%M")
            console.print(
                f"[bold]CASE #{case.id}[/bold] {when}  {case.device_id} "
                f"({device.get('kind', '?')} {device.get('model', '')}): {case.problem} — {top}\n"
                f"          {verdict}"
            )

    def _email_arrived(self, message: EmailMessage) -> None:
        console.print(f"  [cyan]✉ email to {message['To']}: {message['Subject']}[/cyan]")

    def _wait_until_processed(self, published: int) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            m = self._scrape()
            done = m.get("monitor_messages_total", 0) + sum(
                v for k, v in m.items() if k.startswith("monitor_messages_rejected_total")
            )
            if done >= published:
                return
            time.sleep(0.5)
        console.print("[yellow]the monitor had not processed everything after 60 s[/yellow]")

    def _wait_for_outbox(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with Session(self._engine()) as session:
                pending = session.exec(select(Outbox).where(Outbox.status == "pending")).first()
            if pending is None:
                return
            time.sleep(0.5)

    def _engine(self) -> Engine:
        # One engine for every poll: opening the database also checks its schema.
        if self.engine is None:
            self.engine = open_database(self.db_url)
        return self.engine

    def _scrape(self) -> dict[str, float]:
        return scrape(self.metrics_port) or {}

    def _stop_monitor(self) -> None:
        if self.monitor is None or self.monitor.poll() is not None:
            return
        self.monitor.send_signal(signal.SIGTERM)
        try:
            self.monitor.wait(30)
        except subprocess.TimeoutExpired:
            self.monitor.kill()
            self.monitor.wait()

    def _monitor_log(self) -> str:
        return (self.workdir / "monitor.log").read_text(errors="replace")[-3000:]

    def _summary(
        self, emails: list[EmailMessage], webhooks: int, metrics: dict[str, float], wall: float
    ) -> None:
        with Session(self._engine()) as session:
            cases = list(session.exec(select(Case).order_by(col(Case.opened_at))))
        result = score(self.truth, [(c.device_id, c.opened_at) for c in cases])
        console.print()
        console.rule("[bold]Summary, scored against the simulator's ground truth")
        table = Table("case", "device", "kind", "opened (sim time)", "outcome", "lead time")
        by_key = {(o.device_id, o.opened_at): o for o in result.cases}
        for case in cases:
            outcome = by_key.get((case.device_id, case.opened_at))
            lead = (
                ""
                if outcome is None or outcome.lead_time is None
                else f"{outcome.lead_time / DAY:.1f} d"
            )
            table.add_row(
                str(case.id),
                case.device_id,
                self.truth["devices"].get(case.device_id, {}).get("kind", "?"),
                datetime.fromtimestamp(case.opened_at, UTC).strftime("%Y-%m-%d %H:%M"),
                "" if outcome is None else outcome.outcome.replace("_", " "),
                lead,
            )
        console.print(table)
        for line in result.summary_lines():
            console.print("  " + line)
        rejected = {
            k.split('"')[1]: int(v)
            for k, v in metrics.items()
            if k.startswith("monitor_messages_rejected_total{") and v
        }
        console.print(
            f"  messages processed: {int(metrics.get('monitor_messages_total', 0)):,} in "
            f"{wall:.0f} s of publishing; refused and parked: "
            + (", ".join(f"{k} {v}" for k, v in sorted(rejected.items())) or "none")
        )
        console.print(
            f"  notifications: {len(emails)} customer emails in the SMTP sink, "
            f"{webhooks} helpdesk webhooks"
        )
        if emails:
            console.print("\n[bold]One of the emails, as the customer sees it:[/bold]")
            sample = emails[0]
            body = sample.get_body(("plain",))
            text = body.get_content() if body is not None else ""
            console.print(f"To: {sample['To']}\nSubject: {sample['Subject']}\n\n{text.strip()}")

    def _customer_loop(self, fleet: Fleet) -> None:
        console.print()
        console.rule("[bold]The customers act: read, book, get visited, answer the survey")
        # The monitor ran live while the fleet was fast-forwarded: its wall-clock stamps are
        # moved onto the fleet's clock, keeping their distance from each case's opening.
        engine = self._engine()
        align_to_simulated_time(engine)
        CustomerLoop(fleet, engine).advance(fleet.end + LINGER_DAYS * DAY)
        reactive = prepare_database(fleet, f"sqlite:///{self.workdir}/reactive.db", self.workdir)
        run_reactive(fleet, reactive)
        console.print(
            f"owners of {len(fleet.devices)} devices read their messages (later at night), book "
            f"visits and answer surveys; {LINGER_DAYS:.0f} more simulated days for the last "
            "visits. The same fleet without a monitor: owners phone when the product fails."
        )
        columns = {"with the monitor": build_report(engine), "reactive": build_report(reactive)}
        console.print(report_table(columns, title="Service report (monitor report)"))
        console.rule("demo finished; every process it started has stopped")


if __name__ == "__main__":
    sys.exit(main())
