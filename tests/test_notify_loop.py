# ruff: noqa: F401, F811  (the smtp and hooks fixtures are imported from test_notify)
"""The customer loop over real services: quiet hours, one message per problem, self-help in
the customer's language, Apprise to a real HTTP receiver, the product's display over a real
broker, surveys once per case, NPS once a quarter, one-click answers through the feedback
routes served by uvicorn, and dead letters reported to support."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
import uvicorn
from fastapi import FastAPI
from prometheus_client import REGISTRY
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from devenv.broker import Broker
from devenv.http_sink import HttpSink
from devenv.ports import free_port
from devenv.smtp_sink import SmtpSink
from monitor.api.feedback import router
from monitor.cases.lifecycle import transition
from monitor.config import MqttSettings, NotifySettings, Settings, SmtpSettings, WebhookSettings
from monitor.notify import Dispatcher, enqueue_case_opened
from monitor.notify.knowledge import self_help
from monitor.store import Case, CaseEvent, Customer, Device, Outbox, SurveyResponse, open_database
from tests.test_notify import hooks, smtp

HOUR = 3600.0
DAY = 86400.0
BERLIN_3AM = 1_767_232_800.0  # 2026-01-01 03:00 in Europe/Berlin
BERLIN_7AM = BERLIN_3AM + 4 * HOUR
SECRET = "feedback-secret"
PROBLEM = {"problem": "degradation", "rule": "sustained-deviation", "opened_at": 0.0}


class Clock:
    """The monitor's clock, moved by the test instead of by sleeping."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Shop:
    """One customer with one device, a database, and what the dispatcher needs."""

    engine: Engine
    settings: NotifySettings
    clock: Clock
    customer: dict[str, object] = field(default_factory=dict)
    mqtt: MqttSettings | None = None

    def dispatcher(self) -> Dispatcher:
        return Dispatcher(self.engine, self.settings, self.clock, mqtt=self.mqtt)

    async def deliver(self, at: float | None = None) -> int:
        if at is not None:
            self.clock.now = at
        return await self.dispatcher().deliver_due()

    def open_case(
        self,
        *,
        severity: str = "warning",
        device_id: str = "pump-1",
        plot: bytes | None = None,
        to_customer: bool = True,
        source: str = "proactive",
    ) -> int:
        """What the cases stage does: add a case, flush, enqueue, commit."""
        now = self.clock.now
        with Session(self.engine) as session:
            customer = session.get(Customer, "c-1")
            if customer is None:
                customer = Customer(id="c-1", **self.customer)  # type: ignore[arg-type]
                session.add(customer)
                session.flush()
            device = session.get(Device, device_id)
            if device is None:
                device = Device(id=device_id, kind="water_pump", model="WP-200", customer_id="c-1")
                session.add(device)
                session.flush()
            case = Case(
                device_id=device_id, severity=severity, created_wall=now, source=source, **PROBLEM
            )
            case.opened_at, case.predicted_failure_at = now - 600, now + 5 * DAY
            session.add(case)
            session.flush()
            if to_customer:
                enqueue_case_opened(session, case, device, customer, self.settings, now, plot=plot)
            session.commit()
            assert case.id is not None
            return case.id

    def move(self, case_id: int, *statuses: str) -> None:
        with Session(self.engine) as session:
            case = session.get(Case, case_id)
            assert case is not None
            for status in statuses:
                transition(session, case, status, actor="support", at=self.clock.now)
            session.commit()

    def rows(self, purpose: str | None = None) -> list[Outbox]:
        with Session(self.engine) as session:
            query = select(Outbox).order_by(col(Outbox.id))
            if purpose is not None:
                query = query.where(col(Outbox.purpose) == purpose)
            return list(session.exec(query))


def settings_for(smtp: SmtpSink | None, **extra: object) -> NotifySettings:
    fields: dict[str, object] = {
        "smtp": SmtpSettings(port=smtp.port if smtp else 1, timeout=2.0),
        "retry_base_seconds": 10.0,
        "max_attempts": 3,
        **extra,
    }
    return NotifySettings(**fields)  # type: ignore[arg-type]


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = open_database(database_url)
    yield engine
    engine.dispose()


def berlin_customer(**fields: object) -> dict[str, object]:
    return {
        "name": "Ada",
        "email": "ada@example.com",
        "language": "de",
        "timezone": "Europe/Berlin",
        "quiet_hours": "22:00-07:00",
        **fields,
    }


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def html_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


# --- quiet hours and one message per problem ------------------------------------------------


async def test_message_in_quiet_hours_waits_until_morning(
    engine: Engine, smtp: SmtpSink, hooks: HttpSink
) -> None:
    settings = settings_for(smtp, support_webhook=WebhookSettings(url=hooks.url))
    shop = Shop(engine, settings, Clock(BERLIN_3AM), berlin_customer())
    case_id = shop.open_case()

    await shop.deliver()
    assert smtp.messages == []
    assert len(hooks.requests) == 1  # support hears at once; only the customer sleeps
    await shop.deliver(at=BERLIN_7AM - 60)
    assert smtp.messages == []

    assert await shop.deliver(at=BERLIN_7AM) == 1
    [message] = smtp.messages
    assert message["To"] == "ada@example.com"
    with Session(engine) as session:
        case = session.get(Case, case_id)
        assert case is not None
        assert (case.status, case.notified_at) == ("notified", BERLIN_7AM)


async def test_retry_that_falls_in_quiet_hours_waits_until_morning(
    engine: Engine, hooks: HttpSink
) -> None:
    settings = settings_for(None, retry_base_seconds=HOUR, retry_max_seconds=HOUR)
    evening = BERLIN_3AM - 5 * HOUR  # 22:00 the day before: quiet already
    shop = Shop(engine, settings, Clock(evening - 1800), berlin_customer())
    shop.open_case()  # 21:30, SMTP down: the first try fails, the retry falls at 22:30
    await shop.deliver()
    [row] = shop.rows()
    assert (row.attempts, row.status) == (1, "pending")

    await shop.deliver(at=row.next_attempt_at)
    [row] = shop.rows()
    assert row.attempts == 1  # held back, not tried
    assert row.next_attempt_at == BERLIN_7AM


async def test_critical_message_ignores_quiet_hours(engine: Engine, smtp: SmtpSink) -> None:
    shop = Shop(engine, settings_for(smtp), Clock(BERLIN_3AM), berlin_customer())
    shop.open_case(severity="critical")
    assert await shop.deliver() == 1
    [message] = smtp.messages
    assert message["Date"]  # delivered at 03:00 local time
    assert shop.rows()[0].sent_at == BERLIN_3AM


async def test_one_message_per_problem(engine: Engine, smtp: SmtpSink) -> None:
    shop = Shop(engine, settings_for(smtp), Clock(BERLIN_7AM), berlin_customer())
    case_id = shop.open_case()
    await shop.deliver()
    # The problem goes on for weeks, the case is even resolved and reopened, and the
    # cases stage announces it again: the customer still hears about it once.
    shop.move(case_id, "resolved", "open")
    with Session(engine) as session:
        case = session.get(Case, case_id)
        device = session.get(Device, "pump-1")
        customer = session.get(Customer, "c-1")
        assert case is not None
        assert device is not None
        assert enqueue_case_opened(session, case, device, customer, shop.settings, 0.0) == []
    for day in range(1, 30):
        await shop.deliver(at=BERLIN_7AM + day * DAY)
    assert len(smtp.messages) == 1
    assert [row.purpose for row in shop.rows()] == ["case_opened"]


async def test_reminders_only_when_configured(engine: Engine, smtp: SmtpSink) -> None:
    settings = settings_for(smtp, reminder_after_hours=24.0, max_reminders=2)
    shop = Shop(engine, settings, Clock(BERLIN_7AM), berlin_customer(language="en"))
    shop.open_case()
    for hour in range(0, 24 * 6, 6):
        await shop.deliver(at=BERLIN_7AM + hour * HOUR)
    subjects = [str(message["Subject"]) for message in smtp.messages]
    assert len(subjects) == 3
    assert [s.startswith("Reminder:") for s in subjects] == [False, True, True]


async def test_support_is_told_on_its_own_chat_channel(engine: Engine, hooks: HttpSink) -> None:
    support = f"json://127.0.0.1:{hooks.url.rsplit(':', 1)[1]}/support"
    settings = settings_for(None, support_apprise_urls=[support])
    shop = Shop(engine, settings, Clock(BERLIN_3AM), berlin_customer(email=None))
    case_id = shop.open_case()
    assert await shop.deliver() == 1  # at 03:00: support has no quiet hours

    [request] = hooks.requests
    assert request.path == "/support"
    assert request.json["title"] == f"[warning] case {case_id}: degradation on pump-1"
    assert "sustained-deviation" in request.json["message"]


# --- what a customer message says -----------------------------------------------------------


async def test_customer_email_in_japanese_has_self_help_tip(engine: Engine, smtp: SmtpSink) -> None:
    settings = settings_for(smtp, feedback_secret=SECRET)
    shop = Shop(engine, settings, Clock(BERLIN_7AM), berlin_customer(language="ja"))
    shop.open_case()
    await shop.deliver()

    [message] = smtp.messages
    tip = self_help("degradation", "water_pump", "ja")
    assert "ストレーナー" in tip  # the pump's own tip, not the generic one
    assert message["Content-Language"] == "ja"
    assert "今すぐできること" in text_of(message)
    assert tip in text_of(message)
    assert tip in html_of(message)
    assert "このお知らせはお役に立ちましたか" in text_of(message)
    assert "http://127.0.0.1:8000/feedback/" in text_of(message)
    assert "http://127.0.0.1:8000/visit/" in html_of(message)


async def test_evidence_plot_is_inline_in_the_email(engine: Engine, smtp: SmtpSink) -> None:
    png = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAHnOcQAAAAABJRU5ErkJggg=="
    )
    shop = Shop(engine, settings_for(smtp), Clock(BERLIN_7AM), berlin_customer(language="en"))
    shop.open_case(plot=png)
    await shop.deliver()

    [message] = smtp.messages
    [image] = [part for part in message.walk() if part.get_content_type() == "image/png"]
    assert image.get_payload(decode=True) == png
    cid = str(image["Content-ID"]).strip("<>")
    assert f'src="cid:{cid}"' in html_of(message)


async def test_apprise_channel_delivers_to_http_receiver(engine: Engine, hooks: HttpSink) -> None:
    port = hooks.url.rsplit(":", 1)[1]
    customer = berlin_customer(
        language="en", channels=["apprise"], apprise_urls=[f"json://127.0.0.1:{port}/chat"]
    )
    shop = Shop(engine, settings_for(None), Clock(BERLIN_7AM), customer)
    case_id = shop.open_case()
    assert await shop.deliver() == 1

    [request] = hooks.requests
    assert (request.method, request.path) == ("POST", "/chat")
    body = request.json
    assert "water pump" in body["title"]
    assert "strainer" in body["message"]
    assert f"Case {case_id}" in body["message"]
    with Session(engine) as session:
        case = session.get(Case, case_id)
        assert case is not None
        assert case.status == "notified"
        events = session.exec(select(CaseEvent).where(col(CaseEvent.case_id) == case_id))
        notified = [e for e in events if e.kind == "customer_notified"]
        assert notified[0].detail["recipient"] == "apprise"  # URLs hold credentials


async def test_display_message_published_on_commands_topic(engine: Engine, broker: Broker) -> None:
    received: list[tuple[str, bytes]] = []
    subscribed, arrived = threading.Event(), threading.Event()

    def on_message(_c: object, _u: object, message: mqtt.MQTTMessage) -> None:
        received.append((message.topic, bytes(message.payload)))
        arrived.set()

    listener = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="display-test")
    listener.on_message = on_message
    listener.on_subscribe = lambda *_args: subscribed.set()
    listener.connect("127.0.0.1", broker.port)
    listener.subscribe("devices/+/commands", qos=1)
    listener.loop_start()
    try:
        assert subscribed.wait(10)
        customer = berlin_customer(channels=["display"], email=None)
        mqtt_settings = MqttSettings(port=broker.port)
        shop = Shop(engine, settings_for(None), Clock(BERLIN_7AM), customer, mqtt=mqtt_settings)
        case_id = shop.open_case()
        assert await shop.deliver() == 1
        assert await asyncio.to_thread(arrived.wait, 10)
    finally:
        listener.loop_stop()
        listener.disconnect()
    [(topic, payload)] = received
    assert topic == "devices/pump-1/commands"
    command = json.loads(payload)
    assert command["command"] == "show_message"
    assert command["case_id"] == case_id
    assert command["language"] == "de"
    assert command["message_id"] == f"outbox-{shop.rows()[0].id}"
    assert "quiet" not in command


# --- surveys --------------------------------------------------------------------------------


def answer_links(message: EmailMessage) -> list[str]:
    return re.findall(r"http://\S+/feedback/\S+", text_of(message))


async def test_survey_sent_once_per_case_even_if_reopened(engine: Engine, smtp: SmtpSink) -> None:
    settings = settings_for(smtp, feedback_secret=SECRET, survey_delay_hours=2.0)
    shop = Shop(engine, settings, Clock(BERLIN_7AM), berlin_customer(language="en"))
    case_id = shop.open_case()
    await shop.deliver()
    shop.move(case_id, "resolved")
    await shop.deliver(at=BERLIN_7AM + HOUR)
    assert len(smtp.messages) == 1  # not yet: two hours after resolution

    await shop.deliver(at=BERLIN_7AM + 3 * HOUR)
    assert len(smtp.messages) == 2
    survey = smtp.messages[1]
    assert str(survey["Subject"]).startswith("How did we do?")
    assert len(answer_links(survey)) == 5 + 7 + 11  # CSAT, CES and the first NPS

    shop.move(case_id, "open", "resolved", "closed")
    for day in range(1, 5):
        await shop.deliver(at=BERLIN_7AM + day * DAY)
    assert len(smtp.messages) == 2
    assert [row.purpose for row in shop.rows()] == ["case_opened", "survey"]


async def test_only_customers_who_know_of_a_case_are_surveyed(
    engine: Engine, smtp: SmtpSink
) -> None:
    # A case support worked alone (the device was offline a night) is no experience of the
    # customer's to rate; a ticket the customer opened is, though the monitor never wrote.
    settings = settings_for(smtp, feedback_secret=SECRET, survey_delay_hours=2.0)
    shop = Shop(engine, settings, Clock(BERLIN_7AM), berlin_customer(language="en"))
    unseen = shop.open_case(to_customer=False)
    reported = shop.open_case(to_customer=False, device_id="pump-2", source="reactive")
    shop.move(unseen, "resolved")
    shop.move(reported, "resolved")
    await shop.deliver(at=BERLIN_7AM + 3 * HOUR)
    surveys = shop.rows("survey")
    assert [row.case_id for row in surveys] == [reported]


async def test_nps_at_most_once_per_quarter(engine: Engine, smtp: SmtpSink) -> None:
    settings = settings_for(smtp, feedback_secret=SECRET)
    shop = Shop(engine, settings, Clock(BERLIN_7AM), berlin_customer(language="en"))
    asked = []
    for day, device in ((0, "pump-1"), (30, "pump-2"), (80, "pump-3"), (95, "pump-4")):
        shop.clock.now = BERLIN_7AM + day * DAY
        case_id = shop.open_case(device_id=device)
        await shop.deliver()  # the customer is told
        shop.move(case_id, "resolved")
        smtp.clear()
        await shop.deliver()
        [survey] = [m for m in smtp.messages if "How did we do?" in str(m["Subject"])]
        asked.append("recommend" in text_of(survey))
    assert asked == [True, False, False, True]


# --- the feedback routes --------------------------------------------------------------------


@dataclass
class FeedbackApi:
    base_url: str
    settings: NotifySettings


@pytest.fixture
def feedback_api(engine: Engine) -> Iterator[FeedbackApi]:
    """A tiny app with just the feedback router, served by uvicorn on loopback."""
    port = free_port()
    settings = Settings(notify=settings_for(None, feedback_secret=SECRET))
    base = f"http://127.0.0.1:{port}"
    notify = settings.notify.model_copy(update={"public_base_url": base})
    app = FastAPI()
    app.include_router(router)
    app.state.engine = engine
    app.state.settings = settings.model_copy(update={"notify": notify})
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    yield FeedbackApi(base, notify)
    server.should_exit = True
    thread.join(10)


def link_after(text: str, label: str) -> str:
    match = re.search(rf"^{label}: (\S+)\r?$", text, re.MULTILINE)
    assert match is not None, f"no {label!r} link in:\n{text}"
    return match.group(1)


async def first_email(
    engine: Engine,
    smtp: SmtpSink,
    api: FeedbackApi,
    *,
    sent_at: float,
    link_days: float = 30.0,
    language: str = "en",
) -> tuple[int, str]:
    """Open a case for a customer without quiet hours; the case and its email's text."""
    settings = api.settings.model_copy(
        update={"smtp": SmtpSettings(port=smtp.port, timeout=2.0), "feedback_link_days": link_days}
    )
    customer = berlin_customer(language=language, quiet_hours="")
    shop = Shop(engine, settings, Clock(sent_at), customer)
    case_id = shop.open_case()
    await shop.deliver()
    [message] = smtp.messages
    return case_id, text_of(message)


async def test_prefetching_a_link_records_nothing(
    engine: Engine, smtp: SmtpSink, feedback_api: FeedbackApi
) -> None:
    case_id, text = await first_email(
        engine, smtp, feedback_api, sent_at=time.time(), language="de"
    )
    yes = link_after(text, "Ja")
    visit = re.search(r"(http://\S+/visit/\S+)", text)
    assert visit is not None
    async with httpx.AsyncClient() as client:  # what a mail scanner does with every link
        pages = [await client.get(link) for link in (yes, visit.group(1))]
        heads = [await client.head(link) for link in (yes, visit.group(1))]

    assert [page.status_code for page in pages] == [200, 200]
    answer_page, visit_page = (page.text for page in pages)
    assert '<html lang="de">' in answer_page
    assert "War unsere Nachricht hilfreich?" in answer_page
    assert "Antwort senden" in answer_page
    assert "Ja, Besuch buchen" in visit_page
    for page in (answer_page, visit_page):
        assert '<form method="post">' in page
    assert all(head.status_code in (200, 405) for head in heads)
    with Session(engine) as session:
        assert list(session.exec(select(SurveyResponse))) == []
        case = session.get(Case, case_id)
        assert case is not None
        assert case.status == "notified"
        kinds = session.exec(select(CaseEvent.kind).where(CaseEvent.actor == "customer"))
        assert list(kinds) == []


async def test_confirming_a_link_records_the_answer(
    engine: Engine, smtp: SmtpSink, feedback_api: FeedbackApi
) -> None:
    case_id, text = await first_email(engine, smtp, feedback_api, sent_at=time.time())
    yes, no = link_after(text, "Yes"), link_after(text, "No")
    assert yes.startswith(feedback_api.base_url + "/feedback/")

    async with httpx.AsyncClient() as client:  # the button on the page the link shows
        answered = await client.post(yes)
        tampered = await client.post(no[:-3] + ("abc" if not no.endswith("abc") else "xyz"))
    assert answered.status_code == 200
    assert "Thank you" in answered.text
    assert tampered.status_code == 400
    with Session(engine) as session:
        [answer] = session.exec(select(SurveyResponse))
        assert (answer.case_id, answer.customer_id, answer.question, answer.score) == (
            case_id,
            "c-1",
            "helpful",
            1,
        )

    async with httpx.AsyncClient() as client:
        changed = await client.post(no)  # a change of mind replaces the answer
    assert changed.status_code == 200
    with Session(engine) as session:
        [answer] = session.exec(select(SurveyResponse))
        assert answer.score == 0


async def test_visit_link_acknowledges_case_and_opens_booking_page(
    engine: Engine, smtp: SmtpSink, feedback_api: FeedbackApi
) -> None:
    case_id, text = await first_email(engine, smtp, feedback_api, sent_at=time.time())
    visit = re.search(r"(http://\S+/visit/\S+)", text)
    assert visit is not None
    async with httpx.AsyncClient() as client:
        response = await client.post(visit.group(1))
    assert response.status_code == 303
    booking = feedback_api.settings.booking_url
    assert response.headers["location"] == f"{booking}?case={case_id}"
    with Session(engine) as session:
        case = session.get(Case, case_id)
        assert case is not None
        assert case.status == "acknowledged"


async def test_expired_link_is_refused(
    engine: Engine, smtp: SmtpSink, feedback_api: FeedbackApi
) -> None:
    two_days_ago = time.time() - 2 * DAY
    _, text = await first_email(engine, smtp, feedback_api, sent_at=two_days_ago, link_days=1.0)
    yes = link_after(text, "Yes")
    async with httpx.AsyncClient() as client:
        shown, sent = await client.get(yes), await client.post(yes)
    assert (shown.status_code, sent.status_code) == (400, 400)
    assert "expired" in shown.text
    with Session(engine) as session:
        assert list(session.exec(select(SurveyResponse))) == []


async def test_survey_answers_are_stored_on_the_case(
    engine: Engine, smtp: SmtpSink, feedback_api: FeedbackApi
) -> None:
    case_id, _ = await first_email(engine, smtp, feedback_api, sent_at=time.time())
    settings = feedback_api.settings.model_copy(
        update={"smtp": SmtpSettings(port=smtp.port, timeout=2.0)}
    )
    shop = Shop(engine, settings, Clock(time.time()))
    shop.move(case_id, "resolved")
    await shop.deliver()
    survey = text_of(smtp.messages[-1])
    links = re.findall(r"^  (\d+): (\S+)\r?$", survey, re.MULTILINE)
    csat, ces, nps = links[:5], links[5:12], links[12:]
    assert [int(score) for score, _ in nps] == list(range(11))

    async with httpx.AsyncClient() as client:
        for link in (csat[4][1], ces[5][1], nps[9][1]):
            assert (await client.post(link)).status_code == 200
    with Session(engine) as session:
        answers = session.exec(select(SurveyResponse).where(SurveyResponse.case_id == case_id))
        assert sorted((a.question, a.score) for a in answers) == [
            ("ces", 6),
            ("csat", 5),
            ("nps", 9),
        ]


async def test_unreadable_apprise_url_is_a_dead_letter_at_once(
    engine: Engine, hooks: HttpSink
) -> None:
    customer = berlin_customer(channels=["apprise"], apprise_urls=["nonsense-without-scheme"])
    settings = settings_for(None, support_webhook=WebhookSettings(url=hooks.url))
    shop = Shop(engine, settings, Clock(BERLIN_7AM), customer)
    shop.open_case()
    await shop.deliver()
    await shop.deliver()
    [apprise_row] = [row for row in shop.rows() if row.channel == "apprise"]
    assert (apprise_row.status, apprise_row.attempts) == ("dead", 1)
    assert "not understood" in apprise_row.last_error
    assert [r.json["event"] for r in hooks.requests] == ["case_opened", "dead_letter"]


# --- dead letters ---------------------------------------------------------------------------


async def test_dead_letter_alerts_support(
    engine: Engine, hooks: HttpSink, caplog: pytest.LogCaptureFixture
) -> None:
    def dead_letters() -> float:
        value = REGISTRY.get_sample_value(
            "monitor_notifications_dead_letters_total", {"channel": "email"}
        )
        return value or 0.0

    before = dead_letters()
    with SmtpSink(reject="550 5.1.1 No such mailbox") as refusing:
        settings = settings_for(refusing, support_webhook=WebhookSettings(url=hooks.url + "/desk"))
        shop = Shop(engine, settings, Clock(BERLIN_7AM), berlin_customer(language="en"))
        case_id = shop.open_case()
        with caplog.at_level(logging.ERROR, logger="monitor.notify.dispatcher"):
            await shop.deliver()
            await shop.deliver()

    assert dead_letters() == before + 1
    assert any("dead letter" in r.getMessage() for r in caplog.records)
    events = [r.json["event"] for r in hooks.requests]
    assert events == ["case_opened", "dead_letter"]
    alert = hooks.requests[1].json
    assert (alert["case_id"], alert["channel"], alert["purpose"]) == (
        case_id,
        "email",
        "case_opened",
    )
    assert "550" in alert["error"]
    statuses = {(row.channel, row.purpose): row.status for row in shop.rows()}
    assert statuses[("email", "case_opened")] == "dead"
    assert statuses[("webhook", f"dead_letter_{shop.rows()[0].id}")] == "sent"


def test_quiet_hours_in_a_manifest_are_checked(tmp_path: Path, engine: Engine) -> None:
    from monitor.store.manifest import ManifestError, import_manifest

    good = tmp_path / "good.csv"
    good.write_text(
        "device_id,customer_id,email,channels,apprise_urls,quiet_hours\n"
        "p1,c1,a@example.com,email;display,json://127.0.0.1:9/x,22:00-07:00\n"
    )
    import_manifest(engine, good)
    with Session(engine) as session:
        customer = session.get(Customer, "c1")
        assert customer is not None
        assert customer.channels == ["email", "display"]
        assert customer.apprise_urls == ["json://127.0.0.1:9/x"]
        assert customer.quiet_hours == "22:00-07:00"
    bad = tmp_path / "bad.csv"
    bad.write_text("device_id,customer_id,quiet_hours\np1,c1,10pm-7am\n")
    with pytest.raises(ManifestError, match="row 1: quiet_hours"):
        import_manifest(engine, bad)
