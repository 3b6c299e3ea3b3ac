"""A fleet-wide shift end to end: real broker, `monitor run`, real SMTP server."""

from __future__ import annotations

import random
import time
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, select

from devenv.http_sink import HttpSink
from devenv.ports import free_port
from devenv.smtp_sink import SmtpSink
from monitor.store import Case, open_database
from monitor.store.manifest import import_manifest
from monitor.store.models import FleetIncident, Suppression
from tests.helpers import STEP, Publisher, running_monitor, wait_until, write_config

pytestmark = pytest.mark.integration

HEAT_RULE = """
rules:
  - name: running-hot
    problem: overheating
    when: {signal: value, metric: temp_c, above: 60}
    clear: {signal: value, metric: temp_c, below: 55}
    for: 1h
    severity: warning
    suggested_action: Check the heat exchanger for blockage.
    actions: [open_case, notify_customer, notify_support]
"""

FLEET = [f"hx-{i}" for i in range(7)]
HEAT_WAVE = FLEET[:6]  # six of seven run hot together; one stays in a cool room


def test_fleet_wide_shift_opens_one_fleet_incident_and_no_customer_messages(
    broker, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Signals from the tenth sample on: the heat wave comes two hours into the recording.
    monkeypatch.setenv("MONITOR_DETECT__WARMUP_SAMPLES", "10")
    monkeypatch.setenv("MONITOR_DETECT__LEARNING_HOURS", "0")
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "heat.yaml").write_text(HEAT_RULE)
    manifest = tmp_path / "devices.csv"
    manifest.write_text(
        "device_id,kind,model,customer_id,customer_name,email,language\n"
        + "".join(f"{d},heat_pump,HX-1,c{d},Owner {d},{d}@example.com,en\n" for d in FLEET)
    )
    import_manifest(open_database(sqlite_url), manifest)
    api_port = free_port()
    with SmtpSink() as smtp, HttpSink() as helpdesk:
        config = write_config(
            tmp_path,
            mqtt_port=broker.port,
            database_url=sqlite_url,
            smtp_port=smtp.port,
            webhook_url=helpdesk.url,
            extra=f'[rules]\ndir = "{rules_dir}"\n\n[api]\nenabled = true\nport = {api_port}\n',
        )
        with running_monitor(config, tmp_path / "monitor.log") as monitor:
            publisher = Publisher(broker.port)
            rng = random.Random(5)
            start = time.time() - 86400
            sent = 0
            for i in range(int(4 * 3600 / STEP)):
                ts = start + i * STEP
                for device in FLEET:
                    hot = device in HEAT_WAVE and ts >= start + 2 * 3600
                    temp = (72.0 if hot else 40.0) + rng.gauss(0, 0.5)
                    publisher.telemetry(device, ts, {"temp_c": temp}, model="HX-1")
                    sent += 1
            publisher.close()
            wait_until(lambda: monitor.metric("monitor_messages_total") >= sent, 60, "messages")
            suppressed = 'monitor_suppressed_total{reason="fleet_incident"}'
            wait_until(lambda: monitor.metric(suppressed) == len(HEAT_WAVE), 30, "suppressions")
            wait_until(lambda: len(helpdesk.requests) >= 1, 30, "engineering told")
            time.sleep(1.5)  # long enough for a wrongly queued message to be delivered
            incidents = httpx.get(f"http://127.0.0.1:{api_port}/incidents", timeout=10).json()
            assert monitor.metric("monitor_cases_opened_total") == 0
        assert smtp.messages == []
        [told] = helpdesk.requests  # engineering hears once; no customer, no case
    [incident] = incidents
    assert (told.json["event"], told.json["incident_id"]) == ("incident_opened", incident["id"])
    assert (incident["model"], incident["problem"], incident["status"]) == (
        "HX-1",
        "overheating",
        "open",
    )
    assert sorted(incident["devices"]) == HEAT_WAVE
    with Session(open_database(sqlite_url)) as session:
        assert list(session.exec(select(Case))) == []
        assert len(list(session.exec(select(FleetIncident)))) == 1
        logged = list(session.exec(select(Suppression)))
    assert sorted(s.device_id for s in logged) == HEAT_WAVE
    assert {s.reason for s in logged} == {"fleet_incident"}
