"""The throw-away services the other tests stand on: a private broker and PostgreSQL."""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import create_engine, inspect, text

from devenv.broker import Broker, BrokerError
from devenv.postgres import ThrowawayPostgres

TIMEOUT = 10.0


class Client:
    """A paho client connected to a broker, with what it receives in a queue."""

    def __init__(self, broker: Broker, client_id: str, *, clean_session: bool = True) -> None:
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.session_present: bool | None = None
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._mqtt = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session
        )
        self._mqtt.on_connect = self._on_connect
        self._mqtt.on_subscribe = lambda *_: self._subscribed.set()
        self._mqtt.on_message = lambda _client, _userdata, message: self.messages.put(message)
        self._mqtt.connect(broker.host, broker.port)
        self._mqtt.loop_start()
        assert self._connected.wait(TIMEOUT), "no CONNACK"

    def _on_connect(self, _client: Any, _userdata: Any, flags: Any, *_: Any) -> None:
        self.session_present = flags.session_present
        self._connected.set()

    def subscribe(self, topic: str) -> None:
        self._subscribed.clear()
        self._mqtt.subscribe(topic, qos=1)
        assert self._subscribed.wait(TIMEOUT), "no SUBACK"

    def publish(self, topic: str, payload: bytes) -> None:
        """Publish at QoS 1 and return once the broker has acknowledged it."""
        self._mqtt.publish(topic, payload, qos=1).wait_for_publish(TIMEOUT)

    def next_payload(self) -> bytes:
        return self.messages.get(timeout=TIMEOUT).payload

    def close(self) -> None:
        self._mqtt.disconnect()
        self._mqtt.loop_stop()


@contextmanager
def connected(broker: Broker, client_id: str, *, clean_session: bool = True) -> Iterator[Client]:
    client = Client(broker, client_id, clean_session=clean_session)
    try:
        yield client
    finally:
        client.close()


def unique(prefix: str) -> str:
    """A name no other test (or earlier run on a shared server) uses: topics, ids, databases."""
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def test_broker_delivers_qos1_publish_to_subscriber(broker: Broker) -> None:
    topic = unique("devenv/round-trip")
    with connected(broker, unique("sub")) as subscriber, connected(broker, unique("pub")) as pub:
        subscriber.subscribe(topic)
        pub.publish(topic, b"hello")
        assert subscriber.next_payload() == b"hello"


def test_persistent_session_gets_message_queued_while_away_after_broker_restart(
    own_broker: Broker,
) -> None:
    topic, client_id = unique("devenv/queued"), unique("persistent")
    with connected(own_broker, client_id, clean_session=False) as subscriber:
        subscriber.subscribe(topic)
    with connected(own_broker, unique("pub")) as publisher:
        publisher.publish(topic, b"while away")

    own_broker.restart()

    with connected(own_broker, client_id, clean_session=False) as subscriber:
        assert subscriber.session_present
        assert subscriber.next_payload() == b"while away"


def test_broker_that_cannot_start_says_why_with_its_log(tmp_path: Path) -> None:
    config = tmp_path / "broken.conf"
    config.write_text("listener 1883 127.0.0.1\nno_such_option true\n")
    with pytest.raises(BrokerError, match="no_such_option"), Broker(config=config):
        pass


def test_database_url_is_an_empty_database_that_answers(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SELECT 1")).scalar_one() == 1
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


def test_databases_made_on_one_server_are_independent(postgres: ThrowawayPostgres) -> None:
    first, second = unique("first"), unique("second")
    engines = [create_engine(postgres.create_database(name)) for name in (first, second)]
    try:
        with engines[0].begin() as connection:
            connection.execute(text("CREATE TABLE only_here (id integer)"))
        assert inspect(engines[0]).get_table_names() == ["only_here"]
        assert inspect(engines[1]).get_table_names() == []
    finally:
        for engine in engines:
            engine.dispose()
        for name in (first, second):
            postgres.drop_database(name)


def test_given_server_is_used_as_is_and_only_its_own_databases_are_dropped(
    postgres: ThrowawayPostgres,
) -> None:
    keep = unique("keep")
    postgres.create_database(keep)
    try:
        with ThrowawayPostgres(postgres.url) as given:
            assert given.url == postgres.url
            made = given.create_database(unique("made"))
        engine = create_engine(postgres.url)
        try:
            with engine.connect() as connection:
                names = set(connection.execute(text("SELECT datname FROM pg_database")).scalars())
        finally:
            engine.dispose()
        assert keep in names
        assert made.rsplit("/", 1)[1] not in names
    finally:
        postgres.drop_database(keep)
