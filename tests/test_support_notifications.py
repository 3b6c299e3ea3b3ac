# ruff: noqa: F401, F811  (the engine, smtp and hooks fixtures are imported from test_notify)
"""What support and engineering hear on their own channels, over a real HTTP receiver and a
real SMTP server: fleet incidents and escalations."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from devenv.http_sink import HttpSink
from devenv.smtp_sink import SmtpSink
from monitor.cases import CaseOpener
from monitor.cases.incidents import update_incident
from monitor.cases.noise import NoiseControl
from monitor.config import NoiseSettings, NotifySettings, SmtpSettings, WebhookSettings
from monitor.notify import Dispatcher
from monitor.notify.support import enqueue_incident_opened
from monitor.store import Case, Customer, Device, Outbox, open_database
from monitor.store.models import FleetIncident
from rules.engine import Alarm, RuleEngine
from tests.test_noise import HOT, T0, alarm, reading, see
from tests.test_notify import engine, hooks, smtp

HOUR = 3600.0


def notify_settings(smtp: SmtpSink, hooks: HttpSink, *, chat: bool = False) -> NotifySettings:
    """Support's webhook on ``hooks`` (path "/"), and its chat there too (path "/chat")."""
    port = hooks.url.rsplit(":", 1)[1].rstrip("/")
    return NotifySettings(
        smtp=SmtpSettings(port=smtp.port, timeout=2.0),
        support_webhook=WebhookSettings(url=hooks.url, secret="s", timeout=2.0),
        support_apprise_urls=[f"json://127.0.0.1:{port}/chat"] if chat else [],
        retry_base_seconds=10.0,
    )


def add_customers_and_devices(engine: Engine, count: int, **customer: str) -> None:
    with Session(engine) as session:
        for i in range(count):
            owner = {"id": f"c{i}", "name": f"Owner {i}", "email": f"o{i}@example.com"}
            session.add(Customer.model_validate({**owner, **customer}))
        session.flush()
        for i in range(count):
            session.add(Device(id=f"d{i}", kind="heat_pump", model="HX-1", customer_id=f"c{i}"))
        session.commit()


def batch(engine: Engine, noise: NoiseControl, opener: CaseOpener, alarms: list[Alarm]) -> None:
    """What ``Pipeline.commit`` does with a batch's alarms: noise control, cases, incidents."""
    with Session(engine) as session:
        passed, suppressed = noise.run(session, alarms, [])
        opener.run(session, passed)
        opener.announce_incidents(session, suppressed)
        session.commit()


async def deliver(engine: Engine, settings: NotifySettings, at: float | None = None) -> int:
    clock = (lambda: at) if at is not None else time.time
    return await Dispatcher(engine, settings, clock).deliver_due()


def rows(engine: Engine) -> list[Outbox]:
    with Session(engine) as session:
        return list(session.exec(select(Outbox).order_by(col(Outbox.id))))


# --- fleet incidents ------------------------------------------------------------------------


async def test_fleet_incident_notifies_engineering_once(
    engine: Engine, database_url: str, smtp: SmtpSink, hooks: HttpSink
) -> None:
    add_customers_and_devices(engine, 8)
    settings = notify_settings(smtp, hooks, chat=True)
    noise = NoiseControl(NoiseSettings(), RuleEngine([HOT]))
    opener = CaseOpener(settings)
    see(noise, [reading(f"d{i}", 70.0) for i in range(6)] + [reading("d6", 40.0)])
    for i in range(6):  # six hot devices; their alarms come in separate batches
        batch(engine, noise, opener, [alarm(f"d{i}", at=T0 + i)])
    assert await deliver(engine, settings) == 2
    assert await deliver(engine, settings) == 0

    [chat] = [r for r in hooks.requests if r.path == "/chat"]
    assert chat.json["title"].endswith(": overheating on HX-1")
    assert "6 of 7 active HX-1 devices" in chat.json["message"]
    [told] = [r for r in hooks.requests if r.path != "/chat"]
    body = told.json
    assert (body["event"], body["model"], body["problem"]) == (
        "incident_opened",
        "HX-1",
        "overheating",
    )
    assert body["deviating_devices"] == 6
    assert body["active_devices"] == 7
    assert told.headers["X-Monitor-Signature"].startswith("sha256=")
    assert smtp.messages == []  # engineering hears; no customer does
    assert {(r.case_id, r.incident_id, r.status) for r in rows(engine)} == {
        (None, body["incident_id"], "sent")
    }
    row = rows(engine)[0]

    # The outbox's key holds for incidents too: a second announcement cannot be queued.
    duplicate = Outbox(
        incident_id=row.incident_id,
        channel=row.channel,
        purpose=row.purpose,
        recipient=row.recipient,
        created_wall=0.0,
    )
    with Session(engine) as session:
        session.add(duplicate)
        with pytest.raises(IntegrityError):
            session.commit()

    # Once resolved, the next fleet-wide pattern is a new incident, announced on its own.
    with Session(engine) as session:
        update_incident(session, body["incident_id"], "resolved", actor="eng", note="", now=T0)
        session.commit()
    later = T0 + 6 * HOUR
    see(noise, [reading(f"d{i}", 72.0, at=later) for i in range(6)])
    for i in range(6):
        batch(engine, noise, opener, [alarm(f"d{i}", at=later + i)])
    assert await deliver(engine, settings) == 2
    announced = [r.json["incident_id"] for r in hooks.requests if r.path != "/chat"]
    assert announced == [body["incident_id"], body["incident_id"] + 1]
    assert smtp.messages == []


async def test_undeliverable_incident_message_is_reported_on_the_other_support_channel(
    engine: Engine, smtp: SmtpSink, hooks: HttpSink
) -> None:
    with HttpSink(status=410) as gone:
        settings = notify_settings(smtp, hooks, chat=True).model_copy(
            update={"support_webhook": WebhookSettings(url=gone.url, timeout=2.0)}
        )
        with Session(engine) as session:
            incident = FleetIncident(
                model="HX-1", problem="overheating", opened_at=T0, created_wall=T0
            )
            session.add(incident)
            session.flush()
            enqueue_incident_opened(session, incident, settings, time.time(), deviating=5)
            session.commit()
            incident_id = incident.id
        await deliver(engine, settings)
        await deliver(engine, settings)

    chat = [r.json["title"] for r in hooks.requests if r.path == "/chat"]
    assert chat == [
        f"Fleet incident {incident_id}: overheating on HX-1",
        f"Undelivered: webhook incident_opened for fleet incident {incident_id}",
    ]
    statuses = {(r.channel, r.purpose): r.status for r in rows(engine)}
    assert statuses[("webhook", "incident_opened")] == "dead"


# --- escalations ----------------------------------------------------------------------------


def quiet_now(now: float) -> str:
    """Quiet hours (UTC) from an hour before ``now`` to two hours after it."""
    start = datetime.fromtimestamp(now - HOUR, UTC)
    end = datetime.fromtimestamp(now + 2 * HOUR, UTC)
    return f"{start:%H:%M}-{end:%H:%M}"


def rule_alarm(severity: str, *, escalation: bool = True) -> Alarm:
    return Alarm(
        device_id="d0",
        rule="too-hot",
        problem="overheating",
        severity=severity,
        since=T0,
        at=T0 + HOUR,
        suggested_action="Clean the heat exchanger.",
        actions=("open_case", "notify_customer", "notify_support"),
        escalation=escalation,
    )


def run_alarms(engine: Engine, settings: NotifySettings, *alarms: Alarm) -> None:
    with Session(engine) as session:
        CaseOpener(settings).run(session, list(alarms))
        session.commit()


def case_of(engine: Engine) -> Case:
    with Session(engine) as session:
        return session.exec(select(Case)).one()


async def test_escalation_tells_support_once_per_step(
    engine: Engine, smtp: SmtpSink, hooks: HttpSink
) -> None:
    add_customers_and_devices(engine, 1, timezone="UTC")
    settings = notify_settings(smtp, hooks)
    run_alarms(engine, settings, rule_alarm("info", escalation=False))
    assert await deliver(engine, settings) == 2  # support's webhook and the customer's email

    run_alarms(engine, settings, rule_alarm("warning"))
    run_alarms(engine, settings, rule_alarm("warning"))  # the same step again: nothing new
    run_alarms(engine, settings, rule_alarm("critical"))
    assert await deliver(engine, settings) == 2
    assert await deliver(engine, settings) == 0

    told = [
        (r.json["event"], r.json["severity"], r.json.get("from_severity")) for r in hooks.requests
    ]
    # The two steps went out in one delivery round, in parallel: their order is not defined.
    assert told[0] == ("case_opened", "info", None)
    assert sorted(told[1:]) == [
        ("case_escalated", "critical", "warning"),
        ("case_escalated", "warning", "info"),
    ]
    assert len(smtp.messages) == 1  # the customer was told already: not again
    assert case_of(engine).severity == "critical"
    purposes = sorted((r.channel, r.purpose) for r in rows(engine))
    assert purposes == [
        ("email", "case_opened"),
        ("webhook", "case_escalated:critical"),
        ("webhook", "case_escalated:warning"),
        ("webhook", "case_opened"),
    ]


async def test_critical_escalation_before_the_customer_was_told_replaces_the_waiting_message(
    engine: Engine, smtp: SmtpSink, hooks: HttpSink
) -> None:
    now = time.time()
    add_customers_and_devices(engine, 1, timezone="UTC", quiet_hours=quiet_now(now))
    settings = notify_settings(smtp, hooks)
    run_alarms(engine, settings, rule_alarm("info", escalation=False))
    assert await deliver(engine, settings) == 1  # support only: the customer's quiet hours
    assert smtp.messages == []

    run_alarms(engine, settings, rule_alarm("warning"))
    assert await deliver(engine, settings) == 1
    assert smtp.messages == []  # still quiet: a warning waits for the morning

    run_alarms(engine, settings, rule_alarm("critical"))
    assert await deliver(engine, settings) == 2  # support, and the customer at once
    [urgent] = smtp.messages
    assert urgent["To"] == "o0@example.com"
    assert case_of(engine).status == "notified"

    assert await deliver(engine, settings, at=now + 3 * HOUR) == 0  # the morning: no repeat
    assert len(smtp.messages) == 1
    statuses = {(r.channel, r.purpose): r.status for r in rows(engine)}
    assert statuses[("email", "case_opened")] == "superseded"
    assert statuses[("email", "case_escalated:critical")] == "sent"
