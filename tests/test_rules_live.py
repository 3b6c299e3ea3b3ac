"""Rules in the running daemon, over a real broker: hysteresis and hot reload."""

from __future__ import annotations

import time
from pathlib import Path

from sqlmodel import Session, select

from monitor.store import Case, open_database
from tests.helpers import MonitorProcess, Publisher, running_monitor, wait_until, write_config

PRESSURE_RULE = """\
rules:
  - name: {name}
    problem: {problem}
    when: {{signal: value, metric: pressure_bar, above: 5}}
    clear: {{signal: value, metric: pressure_bar, below: 4}}
    for: 10m
"""
RELOADS = 'monitor_rules_reloads_total{{outcome="{}"}}'


def rules_config(tmp_path: Path, port: int, url: str, rule_text: str) -> tuple[Path, Path]:
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    rule_file = rules_dir / "pressure.yaml"
    rule_file.write_text(rule_text)
    extra = f'[rules]\ndir = "{rules_dir}"\nreload_seconds = 0.2\n'
    return write_config(tmp_path, mqtt_port=port, database_url=url, extra=extra), rule_file


def cases_of(url: str) -> list[tuple[str, str]]:
    with Session(open_database(url)) as session:
        return sorted((c.device_id, c.problem) for c in session.exec(select(Case)))


def publish(publisher: Publisher, device: str, values: list[float], start: float) -> None:
    publisher.series(device, [(start + i * 60, {"pressure_bar": v}) for i, v in enumerate(values)])


def test_value_hovering_at_threshold_opens_one_case(
    broker, sqlite_url: str, tmp_path: Path
) -> None:
    rule = PRESSURE_RULE.format(name="pressure-high", problem="pressure")
    config, _ = rules_config(tmp_path, broker.port, sqlite_url, rule)
    # Two hours of hovering around the line, never back below 4 bar: the dips neither restart
    # the 10 minutes (without the clear condition the rule would never fire) nor re-arm it.
    values = [3.0] * 10 + [5.3, 4.7, 5.2, 4.4, 5.9, 4.1, 5.05, 4.95] * 15
    with running_monitor(config, tmp_path / "monitor.log") as monitor:
        publisher = Publisher(broker.port)
        publish(publisher, "valve-1", values, time.time() - len(values) * 60 - 60)
        monitor.wait_processed(len(values), "every reading")
        publisher.close()
        assert monitor.metric("monitor_cases_opened_total") == 1
    assert cases_of(sqlite_url) == [("valve-1", "pressure")]


def wait_reloads(monitor: MonitorProcess, outcome: str, count: int) -> None:
    wait_until(lambda: monitor.metric(RELOADS.format(outcome)) == count, 30, f"reload {outcome}")


def test_broken_rule_file_on_reload_keeps_old_rules(
    broker, sqlite_url: str, tmp_path: Path
) -> None:
    old = PRESSURE_RULE.format(name="old-rule", problem="pressure-old")
    config, rule_file = rules_config(tmp_path, broker.port, sqlite_url, old)
    start = time.time() - 3600
    with running_monitor(config, tmp_path / "monitor.log") as monitor:
        publisher = Publisher(broker.port)
        rule_file.write_text(old.replace("for: 10m", "for: ten minutes"))
        wait_reloads(monitor, "rejected", 1)
        assert "rule reload refused; the previous rules keep running" in monitor.log()
        assert f"{rule_file}:6: key 'rules.0.for'" in monitor.log()
        publish(publisher, "valve-1", [6.0] * 15, start)
        monitor.wait_processed(15, "readings under the old rules")
        wait_until(lambda: cases_of(sqlite_url), 30, "a case from the old rule")

        rule_file.write_text(PRESSURE_RULE.format(name="new-rule", problem="pressure-new"))
        wait_reloads(monitor, "applied", 1)
        publish(publisher, "valve-2", [6.0] * 15, start)
        monitor.wait_processed(30, "readings under the new rules")
        wait_until(lambda: len(cases_of(sqlite_url)) == 2, 30, "a case from the new rule")
        publisher.close()
    assert cases_of(sqlite_url) == [("valve-1", "pressure-old"), ("valve-2", "pressure-new")]
