"""Getting messages off the broker in micro-batches, behind one small interface.

The stages never see MQTT: they get ``list[RawMessage]``. Two transports implement it:

* :class:`PahoTransport` (default): paho's own network thread receives, and hands the event
  loop whole batches. One await per batch instead of one per message is what lets a Python
  subscriber keep up with a broker (the spine issue measured aiomqtt's per-message
  ``async for`` at about half the rate of a bare paho loop).
* :class:`AiomqttTransport`: aiomqtt's ``async for``, gathered into batches; simpler,
  slower, and it acknowledges on receipt.

Both use a persistent session (clean session off, QoS 1), so the broker keeps what arrives
while the monitor is away, and both reconnect by themselves after the broker restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, Protocol

import aiomqtt
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from monitor.config import MqttSettings
from monitor.ingest.decode import RawMessage
from monitor.metrics import BROKER_CONNECTED

log = logging.getLogger(__name__)


class Transport(Protocol):
    """A source of message batches from the broker."""

    def batches(self) -> AsyncIterator[list[RawMessage]]:
        """Yield batches until :meth:`close` is called; never an empty batch."""
        ...

    def ack(self, messages: list[RawMessage]) -> None:
        """Tell the broker these messages are safely processed."""
        ...

    async def close(self) -> None:
        """Stop receiving; :meth:`batches` ends after handing over what was received."""
        ...


def subscriptions(settings: MqttSettings) -> list[str]:
    return [f"{settings.topic_prefix}/+/telemetry", f"{settings.topic_prefix}/+/status"]


def make_transport(settings: MqttSettings) -> Transport:
    if settings.transport == "aiomqtt":
        return AiomqttTransport(settings)
    return PahoTransport(settings)


class PahoTransport:
    """paho's network thread fills a queue; the event loop drains it in batches.

    Messages are acknowledged only after their batch is committed (manual ack), so a crash
    mid-batch makes the broker deliver them again instead of losing them. Acks carry the
    connection they came from: a message id from a previous connection means nothing on the
    next one (the broker redelivers those messages anyway).
    """

    def __init__(self, settings: MqttSettings) -> None:
        self._settings = settings
        self._queue: deque[RawMessage] = deque()
        self._ready = asyncio.Event()
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._generation = 0
        self._lock = threading.Lock()
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            clean_session=False,
            manual_ack=True,
        )
        if settings.username is not None:
            client.username_pw_set(settings.username, settings.password)
        client.reconnect_delay_set(min_delay=1, max_delay=int(settings.reconnect_max_delay))
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client = client

    async def batches(self) -> AsyncIterator[list[RawMessage]]:
        self._loop = asyncio.get_running_loop()
        # connect_async + loop_start: the first connection is retried like any reconnection,
        # so the monitor may start before the broker does.
        self._client.connect_async(
            self._settings.host, self._settings.port, keepalive=self._settings.keepalive
        )
        self._client.loop_start()
        limit = self._settings.max_batch
        while not self._closed:
            if not self._queue:
                self._ready.clear()
                if not self._queue:
                    await self._ready.wait()
                continue
            batch = [self._queue.popleft() for _ in range(min(limit, len(self._queue)))]
            yield batch

    def ack(self, messages: list[RawMessage]) -> None:
        with self._lock:
            generation = self._generation
        for message in messages:
            if message.ack is not None and message.ack[0] == generation:
                self._client.ack(message.ack[1], 1)

    async def close(self) -> None:
        # What is still queued was never acknowledged: the broker keeps it for our session and
        # delivers it again on the next start, so dropping it here loses nothing.
        self._closed = True
        self._wake()
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)

    # The callbacks below run on paho's network thread.

    def _on_connect(
        self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any = None
    ) -> None:
        if reason.is_failure:
            log.warning("broker refused connection", extra={"reason": str(reason)})
            return
        with self._lock:
            self._generation += 1
        BROKER_CONNECTED.set(1)
        log.info(
            "connected to broker",
            extra={"host": self._settings.host, "port": self._settings.port},
        )
        qos = int(self._settings.qos)
        client.subscribe([(topic, qos) for topic in subscriptions(self._settings)])

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        BROKER_CONNECTED.set(0)
        if not self._closed:
            log.warning("lost the broker; reconnecting", extra={"reason": str(reason)})

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        ack = (self._generation, msg.mid) if msg.qos > 0 else None
        self._queue.append(RawMessage(msg.topic, bytes(msg.payload), time.time(), ack))
        if len(self._queue) == 1:
            self._wake()

    def _wake(self) -> None:
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed at shutdown
                self._loop.call_soon_threadsafe(self._ready.set)


class AiomqttTransport:
    """aiomqtt's message iterator, gathered into batches; reconnects in a loop."""

    def __init__(self, settings: MqttSettings) -> None:
        self._settings = settings
        self._stop = asyncio.Event()

    async def batches(self) -> AsyncIterator[list[RawMessage]]:
        s = self._settings
        while not self._stop.is_set():
            try:
                async with aiomqtt.Client(
                    s.host,
                    s.port,
                    identifier=s.client_id,
                    clean_session=False,
                    keepalive=s.keepalive,
                    username=s.username,
                    password=s.password,
                ) as client:
                    BROKER_CONNECTED.set(1)
                    for topic in subscriptions(s):
                        await client.subscribe(topic, qos=s.qos)
                    async for batch in self._gather(client):
                        yield batch
            except aiomqtt.MqttError as exc:
                BROKER_CONNECTED.set(0)
                if self._stop.is_set():
                    return
                log.warning("lost the broker; reconnecting", extra={"reason": str(exc)})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), s.reconnect_max_delay / 4)

    async def _gather(self, client: aiomqtt.Client) -> AsyncIterator[list[RawMessage]]:
        batch: list[RawMessage] = []
        messages = client.messages
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            while not self._stop.is_set():
                nxt = asyncio.ensure_future(anext(messages))
                done, _ = await asyncio.wait({nxt, stop}, return_when=asyncio.FIRST_COMPLETED)
                if nxt not in done:
                    nxt.cancel()
                    break
                batch.append(_raw(nxt.result()))
                while len(batch) < self._settings.max_batch and len(messages) > 0:
                    batch.append(_raw(await anext(messages)))
                yield batch
                batch = []
        finally:
            stop.cancel()

    def ack(self, messages: list[RawMessage]) -> None:
        """aiomqtt acknowledges on receipt; nothing left to do."""

    async def close(self) -> None:
        self._stop.set()


def _raw(message: aiomqtt.Message) -> RawMessage:
    payload = message.payload
    if isinstance(payload, str):
        payload = payload.encode()
    elif not isinstance(payload, bytes | bytearray):
        payload = str(payload).encode()
    return RawMessage(str(message.topic), bytes(payload), time.time())
