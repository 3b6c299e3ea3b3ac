"""The outbox and its channels, over a real SMTP server and a real HTTP receiver."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import socket
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage

import pytest
from prometheus_client import REGISTRY
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, create_engine, select

from devenv.http_sink import HttpSink
from devenv.smtp_sink import SmtpSink
from monitor.config import NotifySettings, SmtpSettings, WebhookSettings
from monitor.notify import Dispatcher, enqueue_case_opened
from monitor.notify.retry import retry_delay
from monitor.store import Case, CaseEvent, Customer, Device, Outbox, open_database

DAY = 86400.0
BOOKING = "https://service.example.com/book"
SECRET = "s3cret"
T0 = 1_700_000_000.0


class Clock:
    """Wall-clock time that only moves when the test says so."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance_to(self, when: float) -> None:
        self.now = max(self.now, when)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = open_database(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


@pytest.fixture
def hooks() -> Iterator[HttpSink]:
    with HttpSink() as sink:
        yield sink


def notify_settings(
    smtp_port: int, webhook_url: str | None, *, max_attempts: int = 5, smtp_timeout: float = 2.0
) -> NotifySettings:
    return NotifySettings(
        smtp=SmtpSettings(port=smtp_port, timeout=smtp_timeout, sender="service@example.com"),
        support_webhook=WebhookSettings(url=webhook_url, secret=SECRET, timeout=2.0),
        retry_base_seconds=10.0,
        retry_max_seconds=300.0,
        max_attempts=max_attempts,
        booking_url=BOOKING,
    )


def open_case(
    engine: Engine,
    settings: NotifySettings,
    now: float,
    *,
    language: str = "en",
    name: str = "Ada",
    email: str | None = "ada@example.com",
    device_id: str = "pump-1",
) -> int:
    """What the cases stage does: add a case, flush, enqueue, commit — one transaction."""
    with Session(engine) as session:
        customer = Customer(id=f"c-{device_id}", name=name, email=email, language=language)
        device = Device(id=device_id, kind="water_pump", model="WP-200", customer_id=customer.id)
        session.add(customer)
        session.flush()
        session.add(device)
        session.flush()
        case = Case(
            device_id=device_id,
            problem="degradation",
            rule="sustained-deviation",
            severity="warning",
            opened_at=now - 600,
            created_wall=now,
            predicted_failure_at=now - 600 + 5 * DAY,
            suggested_action="Inspect the bearing.",
            evidence={"metrics": [{"metric": "vibration_mms", "deviation_sigma": 5.1}]},
        )
        session.add(case)
        session.flush()
        enqueue_case_opened(session, case, device, customer, settings, now)
        session.commit()
        assert case.id is not None
        return case.id


def outbox_rows(engine: Engine, channel: str | None = None) -> list[Outbox]:
    with Session(engine) as session:
        query = select(Outbox).order_by(col(Outbox.id))
        if channel is not None:
            query = query.where(Outbox.channel == channel)
        return list(session.exec(query))


def case_and_events(engine: Engine, case_id: int) -> tuple[Case, list[str]]:
    with Session(engine) as session:
        case = session.get(Case, case_id)
        assert case is not None
        events = session.exec(
            select(CaseEvent.kind).where(CaseEvent.case_id == case_id).order_by(col(CaseEvent.id))
        )
        return case, list(events)


def count(channel: str, outcome: str) -> float:
    labels = {"channel": channel, "outcome": outcome}
    return REGISTRY.get_sample_value("monitor_notifications_total", labels) or 0.0


def plain_and_html(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None
    assert html is not None
    return text.get_content(), html.get_content()


async def eventually(condition: Callable[[], object], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


# --- enqueue and render ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "expected_language", "subject_word", "text_phrase"),
    [
        ("de", "de", "Servicefall", "im Moment müssen Sie nichts unternehmen"),
        ("ja", "ja", "サービス番号", "今すぐ対応していただく必要はございません"),
        ("en", "en", "service case", "no action is needed right now"),
        ("fr-FR", "en", "service case", "no action is needed right now"),
    ],
)
async def test_customer_email_arrives_once_in_their_language_with_booking_link(
    engine: Engine,
    smtp: SmtpSink,
    hooks: HttpSink,
    language: str,
    expected_language: str,
    subject_word: str,
    text_phrase: str,
) -> None:
    clock = Clock()
    settings = notify_settings(smtp.port, hooks.url + "/cases")
    case_id = open_case(engine, settings, clock.now, language=language)
    dispatcher = Dispatcher(engine, settings, clock)

    assert await dispatcher.deliver_due() == 2

    [message] = smtp.messages
    assert message["To"] == "ada@example.com"
    assert message["From"] == "service@example.com"
    assert subject_word in message["Subject"]
    assert message["Content-Language"] == expected_language
    [row] = outbox_rows(engine, "email")
    assert message["Message-ID"] == row.payload["message_id"]
    text, html = plain_and_html(message)
    link = f"{BOOKING}?case={case_id}"
    assert text_phrase in text
    assert link in text
    assert f'href="{link}"' in html
    assert "Ada" in text


async def test_customer_name_is_escaped_in_html_but_not_in_text(
    engine: Engine, smtp: SmtpSink
) -> None:
    settings = notify_settings(smtp.port, None)
    open_case(engine, settings, T0, name="<b>Ada & Co</b>")
    await Dispatcher(engine, settings, Clock()).deliver_due()
    text, html = plain_and_html(smtp.messages[0])
    assert "<b>Ada & Co</b>" in text
    assert "&lt;b&gt;Ada &amp; Co&lt;/b&gt;" in html


def test_nothing_is_queued_for_a_customer_without_email_or_support_without_url(
    engine: Engine,
) -> None:
    settings = notify_settings(1, None)
    open_case(engine, settings, T0, email=None)
    assert outbox_rows(engine) == []


def test_payloads_are_rendered_when_the_case_opens(engine: Engine) -> None:
    settings = notify_settings(1, "http://127.0.0.1:1/cases")
    case_id = open_case(engine, settings, T0, language="de")
    email, webhook = outbox_rows(engine)
    assert (email.channel, email.recipient, email.language) == ("email", "ada@example.com", "de")
    assert set(email.payload) >= {"subject", "text", "html", "message_id"}
    assert "etwa 5 Tagen" in email.payload["text"]
    assert (webhook.channel, webhook.recipient) == ("webhook", "http://127.0.0.1:1/cases")
    body = webhook.payload
    assert body["case_id"] == case_id
    assert body["device_id"] == "pump-1"
    assert body["model"] == "WP-200"
    assert body["customer_id"] == "c-pump-1"
    assert (body["problem"], body["rule"], body["severity"]) == (
        "degradation",
        "sustained-deviation",
        "warning",
    )
    assert body["opened_at_epoch"] == T0 - 600
    assert body["opened_at"] == "2023-11-14T22:03:20Z"
    assert body["predicted_failure_at_epoch"] == T0 - 600 + 5 * DAY
    assert body["suggested_action"] == "Inspect the bearing."
    assert body["evidence"]["metrics"][0]["metric"] == "vibration_mms"
    assert all(row.status == "pending" and row.next_attempt_at == T0 for row in (email, webhook))


# --- delivery -------------------------------------------------------------------------------


async def test_support_webhook_arrives_once_with_valid_signature_and_idempotency_key(
    engine: Engine, smtp: SmtpSink, hooks: HttpSink
) -> None:
    settings = notify_settings(smtp.port, hooks.url + "/cases")
    case_id = open_case(engine, settings, T0)
    dispatcher = Dispatcher(engine, settings, Clock())
    await dispatcher.deliver_due()
    await dispatcher.deliver_due()

    [request] = hooks.requests
    [row] = outbox_rows(engine, "webhook")
    assert (request.method, request.path) == ("POST", "/cases")
    assert request.headers["Idempotency-Key"] == f"outbox-{row.id}"
    expected = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Monitor-Signature"] == f"sha256={expected}"
    assert request.json["case_id"] == case_id
    assert request.json["device_id"] == "pump-1"


async def test_sent_email_moves_case_to_notified_and_records_events(
    engine: Engine, smtp: SmtpSink, hooks: HttpSink
) -> None:
    clock = Clock()
    settings = notify_settings(smtp.port, hooks.url)
    case_id = open_case(engine, settings, clock.now)
    clock.advance_to(T0 + 3)
    await Dispatcher(engine, settings, clock).deliver_due()

    case, events = case_and_events(engine, case_id)
    assert case.status == "notified"
    assert case.notified_at == T0 + 3
    assert sorted(events) == ["customer_notified", "notified", "support_notified"]
    for row in outbox_rows(engine):
        assert (row.status, row.sent_at, row.attempts, row.last_error) == ("sent", T0 + 3, 1, "")


async def test_delivering_again_and_from_two_dispatchers_at_once_sends_each_message_once(
    engine: Engine, smtp: SmtpSink, hooks: HttpSink
) -> None:
    settings = notify_settings(smtp.port, hooks.url)
    for n in range(3):
        open_case(engine, settings, T0, device_id=f"pump-{n}")
    clock = Clock()
    first, second = Dispatcher(engine, settings, clock), Dispatcher(engine, settings, clock)

    sent = await asyncio.gather(first.deliver_due(), second.deliver_due())
    sent_later = await first.deliver_due() + await second.deliver_due()

    assert sum(sent) == 6
    assert sent_later == 0
    assert sorted(m["To"] for m in smtp.messages) == ["ada@example.com"] * 3
    assert len({m["Message-ID"] for m in smtp.messages}) == 3
    assert len(hooks.requests) == 3


async def test_email_is_retried_with_backoff_while_smtp_is_down_and_arrives_once_after(
    engine: Engine,
) -> None:
    smtp = SmtpSink()
    smtp.start()
    smtp.stop()  # down when the case opens; the port stays reserved for this sink
    clock = Clock()
    settings = notify_settings(smtp.port, None)
    case_id = open_case(engine, settings, clock.now)
    dispatcher = Dispatcher(engine, settings, clock)
    retries_before = count("email", "retry")

    waits = []
    for attempt in (1, 2, 3):
        assert await dispatcher.deliver_due() == 0
        [row] = outbox_rows(engine)
        assert (row.status, row.attempts) == ("pending", attempt)
        assert "unavailable" in row.last_error
        wait = row.next_attempt_at - clock.now
        assert 0.9 * 10.0 * 2 ** (attempt - 1) <= wait <= 10.0 * 2 ** (attempt - 1)
        waits.append(wait)
        assert await dispatcher.deliver_due() == 0  # not due yet: no attempt
        assert outbox_rows(engine)[0].attempts == attempt
        clock.advance_to(row.next_attempt_at)
    assert count("email", "retry") - retries_before == 3

    smtp.start()
    try:
        assert await dispatcher.deliver_due() == 1
        clock.advance_to(clock.now + 3600)
        assert await dispatcher.deliver_due() == 0
    finally:
        smtp.stop()
    assert len(smtp.messages) == 1
    [row] = outbox_rows(engine)
    assert (row.status, row.attempts) == ("sent", 4)
    assert case_and_events(engine, case_id)[0].status == "notified"


async def test_email_is_dead_with_its_last_error_after_max_attempts(engine: Engine) -> None:
    smtp = SmtpSink()
    smtp.start()
    smtp.stop()
    clock = Clock()
    settings = notify_settings(smtp.port, None, max_attempts=3)
    case_id = open_case(engine, settings, clock.now)
    dispatcher = Dispatcher(engine, settings, clock)
    dead_before = count("email", "dead")

    for _ in range(5):
        await dispatcher.deliver_due()
        clock.advance_to(clock.now + 3600)

    [row] = outbox_rows(engine)
    assert (row.status, row.attempts) == ("dead", 3)
    assert f"127.0.0.1:{smtp.port} unavailable" in row.last_error
    assert count("email", "dead") - dead_before == 1
    case, events = case_and_events(engine, case_id)
    assert case.status == "open"
    assert events == ["notification_failed"]


async def test_email_refused_by_the_server_is_dead_at_once(engine: Engine) -> None:
    with SmtpSink(reject="554 5.7.1 Message rejected") as smtp:
        settings = notify_settings(smtp.port, None)
        open_case(engine, settings, T0)
        await Dispatcher(engine, settings, Clock()).deliver_due()
    [row] = outbox_rows(engine)
    assert (row.status, row.attempts) == ("dead", 1)
    assert "554" in row.last_error


@pytest.mark.parametrize("status", [400, 404, 410, 422])
async def test_webhook_answered_with_4xx_is_dead_at_once(
    engine: Engine, hooks: HttpSink, status: int
) -> None:
    hooks.answer(status)
    settings = notify_settings(1, hooks.url)
    case_id = open_case(engine, settings, T0, email=None)
    await Dispatcher(engine, settings, Clock()).deliver_due()
    [row] = outbox_rows(engine)
    assert (row.status, row.attempts) == ("dead", 1)
    assert str(status) in row.last_error
    assert case_and_events(engine, case_id)[1] == ["notification_failed"]


@pytest.mark.parametrize("status", [503, 500, 429, 408])
async def test_webhook_answered_with_5xx_or_busy_is_retried_until_accepted(
    engine: Engine, hooks: HttpSink, status: int
) -> None:
    hooks.answer(status, times=2)
    clock = Clock()
    settings = notify_settings(1, hooks.url)
    open_case(engine, settings, clock.now, email=None)
    dispatcher = Dispatcher(engine, settings, clock)
    for _ in range(3):
        await dispatcher.deliver_due()
        clock.advance_to(outbox_rows(engine)[0].next_attempt_at)
    await dispatcher.deliver_due()

    assert [r.status for r in hooks.requests] == [status, status, 200]
    assert len({r.headers["Idempotency-Key"] for r in hooks.requests}) == 1
    [row] = outbox_rows(engine)
    assert (row.status, row.attempts) == ("sent", 3)


async def test_unresponsive_smtp_server_does_not_hold_back_the_webhook(
    engine: Engine, hooks: HttpSink
) -> None:
    # Accepts connections but never says hello: every SMTP attempt waits for its timeout.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        settings = notify_settings(silent.getsockname()[1], hooks.url, smtp_timeout=1.0)
        open_case(engine, settings, T0)
        arrived: list[float] = []
        hooks.on_request = lambda _request: arrived.append(time.monotonic())
        started = time.monotonic()
        assert await Dispatcher(engine, settings, Clock()).deliver_due() == 1
    assert arrived[0] - started < 0.9
    email, webhook = outbox_rows(engine)
    assert (email.status, email.attempts) == ("pending", 1)
    assert webhook.status == "sent"


# --- the loop -------------------------------------------------------------------------------


async def test_run_delivers_when_woken_and_returns_when_stopped(
    engine: Engine, smtp: SmtpSink
) -> None:
    settings = notify_settings(smtp.port, None).model_copy(update={"poll_seconds": 60.0})
    dispatcher = Dispatcher(engine, settings)
    stop = asyncio.Event()
    loop = asyncio.create_task(dispatcher.run(stop))
    await asyncio.sleep(0.1)  # the first round found nothing; now it waits up to a minute

    open_case(engine, settings, time.time())
    dispatcher.wake()
    await eventually(lambda: smtp.messages, within=5)
    stop.set()
    await asyncio.wait_for(loop, timeout=5)
    assert len(smtp.messages) == 1


async def test_run_logs_and_keeps_going_while_the_database_is_unreachable(
    tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = create_engine(f"sqlite:///{tmp_path}/no/such/dir/monitor.db")
    settings = notify_settings(1, None).model_copy(update={"poll_seconds": 0.01})
    stop = asyncio.Event()
    with caplog.at_level(logging.ERROR, logger="monitor.notify.dispatcher"):
        loop = asyncio.create_task(Dispatcher(missing, settings).run(stop))
        await eventually(lambda: len(caplog.records) >= 2, within=5)
        assert not loop.done()
        stop.set()
        await asyncio.wait_for(loop, timeout=5)
    assert all(r.getMessage() == "outbox unreachable; will retry" for r in caplog.records)


# --- backoff --------------------------------------------------------------------------------


def test_retry_delay_doubles_up_to_the_cap_with_at_most_ten_percent_jitter() -> None:
    for key in range(50):
        delays = [retry_delay(n, 2.0, 60.0, key) for n in range(1, 10)]
        nominal = [min(60.0, 2.0 * 2 ** (n - 1)) for n in range(1, 10)]
        assert all(0.9 * want <= got <= want for got, want in zip(delays, nominal, strict=True))
    assert retry_delay(3, 2.0, 60.0, 7) == retry_delay(3, 2.0, 60.0, 7)
    assert len({retry_delay(1, 2.0, 60.0, key) for key in range(20)}) > 10


@pytest.mark.parametrize("language", ["en", "de", "ja"])
def test_every_simulated_product_kind_has_a_name_in_each_language(language: str) -> None:
    from monitor.notify.render import render_email
    from simulators.products import PRODUCTS

    for kind in PRODUCTS:
        rendered = render_email(
            "case_opened",
            language,
            {
                "customer_name": "A",
                "kind": kind,
                "model": "M-1",
                "problem_name": "degradation",
                "urgent": False,
                "case_id": 1,
                "booking_link": "https://x.example/b?case=1",
                "days_left": None,
                "predicted_date": None,
            },
        )
        assert kind not in rendered.text
        if language != "en":
            assert kind.replace("_", " ") not in rendered.subject
