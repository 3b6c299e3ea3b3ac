"""The spine end to end, over a real broker, database, SMTP server and HTTP receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path

import pytest
from sqlmodel import Session, select

from devenv.http_sink import HttpSink
from devenv.postgres import ThrowawayPostgres
from devenv.smtp_sink import SmtpSink
from monitor.config import DetectSettings
from monitor.detect import DetectStage
from monitor.store import Case, Device, DeviceState, Outbox, ParkedMessage, open_database
from tests.helpers import DAY, Publisher, pump_history, running_monitor, wait_until, write_config

pytestmark = pytest.mark.integration


def cases_of(url: str) -> list[Case]:
    with Session(open_database(url)) as session:
        return list(session.exec(select(Case)))


def publish_pumps(publisher: Publisher, start: float, days: float, degrade_from: float) -> int:
    sent = 0
    healthy = pump_history(days, start, seed=1)
    worn = pump_history(days, start, seed=2, degrade_from=degrade_from)
    for (ts, good), (_, bad) in zip(healthy, worn, strict=True):
        publisher.telemetry("pump-healthy", ts, good, model="WP-200")
        publisher.telemetry("pump-worn", ts, bad, model="WP-200")
        sent += 2
    publisher.flush()
    return sent


def test_degrading_device_gets_one_case_one_email_one_webhook_and_healthy_none(
    broker, database_url: str, tmp_path: Path
) -> None:
    start = time.time() - 6 * DAY
    with SmtpSink() as smtp, HttpSink() as hooks:
        engine = open_database(database_url)
        manifest = tmp_path / "devices.csv"
        manifest.write_text(
            "device_id,kind,model,customer_id,customer_name,email,language\n"
            "pump-worn,water_pump,WP-200,c1,Ada,ada@example.com,de\n"
            "pump-healthy,water_pump,WP-200,c2,Bob,bob@example.com,en\n"
        )
        from monitor.store.manifest import import_manifest

        import_manifest(engine, manifest)
        config = write_config(
            tmp_path,
            mqtt_port=broker.port,
            database_url=database_url,
            smtp_port=smtp.port,
            webhook_url=hooks.url + "/cases",
        )
        with running_monitor(config, tmp_path / "monitor.log") as monitor:
            publisher = Publisher(broker.port)
            sent = publish_pumps(publisher, start, days=6, degrade_from=start + 4.5 * DAY)
            wait_until(lambda: monitor.metric("monitor_messages_total") >= sent, 60, "all messages")
            wait_until(lambda: len(smtp.messages) >= 1 and len(hooks.requests) >= 1, 30, "notify")
            time.sleep(1.5)  # long enough for a duplicate delivery to show up
            publisher.close()
            assert monitor.metric("monitor_cases_opened_total") == 1
        cases = cases_of(database_url)
        assert [(c.device_id, c.problem) for c in cases] == [("pump-worn", "degradation")]
        case = cases[0]
        assert start + 4.5 * DAY < case.opened_at < start + 6 * DAY
        assert case.evidence["metrics"][0]["metric"] in {"vibration_mms", "motor_temp_c"}
        assert len(smtp.messages) == 1
        assert smtp.messages[0]["To"] == "ada@example.com"
        assert len(hooks.requests) == 1
        request = hooks.requests[0]
        body = json.loads(request.body)
        assert body["device_id"] == "pump-worn"
        expected = hmac.new(b"test-secret", request.body, hashlib.sha256).hexdigest()
        assert request.headers["X-Monitor-Signature"] == f"sha256={expected}"


BAD_INPUTS = {
    "not_json": b"{nope",
    "not_object": b"[1, 2]",
    "missing_ts": b'{"metrics": {"a": 1}}',
    "bad_ts": b'{"ts": "soon", "metrics": {"a": 1}}',
    "future_ts": None,  # filled in with a timestamp an hour ahead
    "missing_metrics": b'{"ts": 1700000000}',
    "non_numeric_metric": b'{"ts": 1700000000, "metrics": {"a": "x"}}',
    "non_finite_metric": b'{"ts": 1700000000, "metrics": {"a": NaN}}',
    "too_large": b'{"ts": 1700000000, "metrics": {"a": 1}, "pad": "' + b"x" * 20000 + b'"}',
}


def test_each_bad_input_is_rejected_with_its_reason_while_a_good_device_is_served(
    broker, database_url: str, tmp_path: Path
) -> None:
    now = time.time()
    bad = dict(BAD_INPUTS)
    bad["future_ts"] = json.dumps({"ts": now + 3600, "metrics": {"a": 1}}).encode()
    config = write_config(tmp_path, mqtt_port=broker.port, database_url=database_url)
    with running_monitor(config, tmp_path / "monitor.log") as monitor:
        publisher = Publisher(broker.port)
        good = 0
        for i, payload in enumerate(bad.values()):
            publisher.telemetry("good", now - 1000 + i, {"a": float(i)})
            publisher.send("devices/bad/telemetry", payload)
            good += 1
        last = now - 1000 + len(bad) - 1
        publisher.telemetry("good", last, {"a": 0.0})  # a redelivery of the last: duplicate
        publisher.telemetry("good", now - 2000, {"a": 1.0})  # older than the last: out_of_order
        publisher.flush()
        wait_until(lambda: monitor.metric("monitor_messages_total") >= good, 30, "good messages")
        for reason in [*bad, "out_of_order", "duplicate"]:
            label = f'monitor_messages_rejected_total{{reason="{reason}"}}'
            wait_until(lambda label=label: monitor.metric(label) == 1, 10, label)
        publisher.close()
    with Session(open_database(database_url)) as session:
        parked = list(session.exec(select(ParkedMessage)))
        good_device = session.get(Device, "good")
    assert sorted(p.reason for p in parked) == sorted([*bad, "out_of_order", "duplicate"])
    assert next(p for p in parked if p.reason == "not_json").payload == b"{nope"
    assert good_device is not None
    assert good_device.last_ts == pytest.approx(now - 1000 + len(bad) - 1)


def test_no_qos1_message_is_lost_across_broker_and_monitor_restarts(
    own_broker, sqlite_url: str, tmp_path: Path
) -> None:
    start = time.time() - 2 * DAY
    config = write_config(tmp_path, mqtt_port=own_broker.port, database_url=sqlite_url)
    samples = list(pump_history(1.5, start, seed=3))
    thirds = [samples[: len(samples) // 3], samples[len(samples) // 3 : 2 * len(samples) // 3]]
    thirds.append(samples[2 * len(samples) // 3 :])
    publisher = Publisher(own_broker.port)
    with running_monitor(config, tmp_path / "monitor.log") as monitor:
        for ts, metrics in thirds[0]:
            publisher.telemetry("pump", ts, metrics)
        own_broker.restart()  # mid-stream: some of these are in flight when it goes down
        publisher.series("pump", thirds[1])
        monitor.wait_processed(
            len(thirds[0]) + len(thirds[1]),
            "messages from before and during the broker restart",
            60,
        )
    # The monitor is down: the broker keeps its session's messages until it returns.
    publisher.series("pump", thirds[2])
    with running_monitor(config, tmp_path / "monitor2.log") as monitor:
        monitor.wait_processed(len(thirds[2]), "messages published while the monitor was down", 60)
    publisher.close()
    with Session(open_database(sqlite_url)) as session:
        device = session.get(Device, "pump")
    assert device is not None
    assert device.last_ts == pytest.approx(samples[-1][0])


def test_email_arrives_once_after_smtp_server_comes_back(
    broker, sqlite_url: str, tmp_path: Path
) -> None:
    start = time.time() - 6 * DAY
    smtp = SmtpSink()
    smtp.start()
    smtp_port = smtp.port
    smtp.stop()  # down when the case opens
    engine = open_database(sqlite_url)
    manifest = tmp_path / "devices.csv"
    manifest.write_text("device_id,model,customer_id,email\npump-worn,WP-200,c1,a@example.com\n")
    from monitor.store.manifest import import_manifest

    import_manifest(engine, manifest)
    config = write_config(
        tmp_path,
        mqtt_port=broker.port,
        database_url=sqlite_url,
        smtp_port=smtp_port,
    )
    with running_monitor(config, tmp_path / "monitor.log") as monitor:
        publisher = Publisher(broker.port)
        publish_pumps(publisher, start, days=6, degrade_from=start + 4.5 * DAY)
        publisher.close()
        wait_until(lambda: cases_of(sqlite_url), 60, "the case")
        wait_until(
            lambda: (
                monitor.metric('monitor_notifications_total{channel="email",outcome="retry"}') >= 2
            ),
            30,
            "failed delivery attempts while SMTP is down",
        )
        assert smtp.messages == []
        smtp.start()
        wait_until(lambda: smtp.messages, 30, "the email after SMTP came back")
        time.sleep(2)
    smtp.stop()
    assert len(smtp.messages) == 1
    with Session(engine) as session:
        rows = list(session.exec(select(Outbox).where(Outbox.channel == "email")))
    assert [r.status for r in rows] == ["sent"]
    assert rows[0].attempts >= 2


def test_aiomqtt_transport_feeds_the_same_pipeline_and_survives_a_broker_restart(
    own_broker, sqlite_url: str, tmp_path: Path
) -> None:
    start = time.time() - DAY
    config = write_config(
        tmp_path, mqtt_port=own_broker.port, database_url=sqlite_url, transport="aiomqtt"
    )
    samples = list(pump_history(0.5, start, seed=4))
    half = len(samples) // 2
    publisher = Publisher(own_broker.port)
    with running_monitor(config, tmp_path / "monitor.log") as monitor:
        publisher.series("pump", samples[:half])
        monitor.wait_processed(half, "first half", 30)
        own_broker.restart()
        publisher.series("pump", samples[half:])
        monitor.wait_processed(len(samples), "second half", 60)
    publisher.close()


def learned_samples(url: str, device_id: str) -> int:
    with Session(open_database(url)) as session:
        saved = session.get(DeviceState, device_id)
    assert saved is not None, "no checkpoint for the device"
    stage = DetectStage(DetectSettings())
    stage.restore({device_id: saved.state})
    return max(stage.learned_samples(device_id).values())


def test_restarted_monitor_resumes_detection_from_its_checkpoint(
    broker, sqlite_url: str, tmp_path: Path
) -> None:
    start = time.time() - 2 * DAY
    config = write_config(tmp_path, mqtt_port=broker.port, database_url=sqlite_url)
    samples = list(pump_history(1.5, start, seed=5))
    half = len(samples) // 2
    publisher = Publisher(broker.port)
    with running_monitor(config, tmp_path / "monitor.log") as monitor:
        publisher.series("pump", samples[:half])
        monitor.wait_processed(half, "first half", 30)
    first = learned_samples(sqlite_url, "pump")
    with running_monitor(config, tmp_path / "monitor2.log") as monitor:
        publisher.series("pump", samples[half:])
        monitor.wait_processed(len(samples) - half, "second half", 30)
    publisher.close()
    resumed = learned_samples(sqlite_url, "pump")
    # From zero, the second run could have learned at most its own messages.
    assert first > 0
    assert resumed > len(samples) - half
    assert resumed > first


def test_database_outage_holds_the_stream_and_loses_nothing(broker, tmp_path: Path) -> None:
    """Known devices' telemetry needs no database write; a batch that does (a new device to
    register) is held and retried until the database is back, and nothing is lost."""
    start = time.time() - DAY
    samples = list(pump_history(0.5, start, seed=6))
    half = len(samples) // 2
    with ThrowawayPostgres(server_url=None) as own_postgres:
        url = own_postgres.create_database("outage")
        config = write_config(tmp_path, mqtt_port=broker.port, database_url=url)
        publisher = Publisher(broker.port)
        with running_monitor(config, tmp_path / "monitor.log") as monitor:
            publisher.series("pump", samples[:half])
            monitor.wait_processed(half, "first half", 30)
            own_postgres.pause()
            for ts, metrics in samples[half:]:
                publisher.telemetry("pump-new", ts, metrics)
                publisher.telemetry("pump", ts, metrics)
            publisher.flush()
            wait_until(
                lambda: "database write failed" in monitor.log(), 30, "the outage to be reported"
            )
            assert monitor.metric("monitor_messages_total") < len(samples) + (len(samples) - half)
            own_postgres.resume()
            wait_until(
                lambda: (
                    monitor.metric("monitor_messages_total") == len(samples) + (len(samples) - half)
                ),
                60,
                "the held messages after the database came back",
            )
        publisher.close()
        with Session(open_database(url)) as session:
            known = session.get(Device, "pump")
            new = session.get(Device, "pump-new")
        assert known is not None
        assert new is not None
        assert known.last_ts == pytest.approx(samples[-1][0])
        assert new.last_ts == pytest.approx(samples[-1][0])
