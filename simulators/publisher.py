"""Publish a simulated fleet over real MQTT, one paho client per device, QoS 1.

Each device's client sets a last will ``{prefix}/{device_id}/status`` = ``offline``
(retained, QoS 1), announces ``online`` (retained) on every connect, and publishes telemetry
on ``{prefix}/{device_id}/telemetry`` at QoS 1 as
``{"ts": <epoch seconds>, "metrics": {...}, "seq": n, "fw": "...", "model": "..."}``.
Every client runs its own paho network thread (``loop_start``), which is fine for a few
hundred devices. Nothing is lost: publishing waits until the broker has acknowledged every
telemetry message before the devices say ``offline`` and disconnect.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from simulators.fleet import Fleet, Reading, delivery_order

Progress = Callable[[float, int], None]


@dataclass(frozen=True)
class PublishReport:
    """What a run published: telemetry messages sent and acknowledged, and whether it stopped.

    ``sim_end`` is the simulated time of the last reading published (None if none was).
    """

    published: int
    acknowledged: int
    stopped: bool
    wall_seconds: float
    sim_end: float | None


@dataclass
class _Acks:
    """Tracks which QoS 1 publishes the broker acknowledged, across all device clients.

    The broker's PUBACK can arrive before ``publish()`` has returned its message id to us, so
    an unknown id is remembered as ``early`` until the publishing side records it.
    """

    cond: threading.Condition = field(default_factory=threading.Condition)
    pending: set[tuple[str, int]] = field(default_factory=set)
    early: set[tuple[str, int]] = field(default_factory=set)
    ignored: set[tuple[str, int]] = field(default_factory=set)
    acknowledged: int = 0

    def sent(self, device_id: str, mid: int) -> None:
        key = (device_id, mid)
        with self.cond:
            if key in self.early:
                self.early.remove(key)
                self.acknowledged += 1
                self.cond.notify_all()
            else:
                self.pending.add(key)

    def ignore(self, device_id: str, mid: int) -> None:
        with self.cond:
            self.ignored.add((device_id, mid))

    def acked(self, device_id: str, mid: int) -> None:
        key = (device_id, mid)
        with self.cond:
            if key in self.ignored:
                self.ignored.remove(key)
            elif key in self.pending:
                self.pending.remove(key)
                self.acknowledged += 1
                self.cond.notify_all()
            else:
                self.early.add(key)

    def wait_below(self, limit: int, timeout: float) -> bool:
        """Wait until fewer than ``limit`` publishes await their PUBACK; False on timeout."""
        with self.cond:
            return self.cond.wait_for(lambda: len(self.pending) < limit, timeout)


class _DeviceClient:
    """One device's MQTT session: last will, ``online`` on connect, QoS 1 telemetry."""

    def __init__(self, device_id: str, client_id: str, prefix: str, acks: _Acks) -> None:
        self.device_id = device_id
        self.telemetry_topic = f"{prefix}/{device_id}/telemetry"
        self.status_topic = f"{prefix}/{device_id}/status"
        self.connected = threading.Event()
        self._acks = acks
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id
        )
        self.client.will_set(self.status_topic, "offline", qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _properties: Any
    ) -> None:
        if reason.is_failure:
            return
        # on_connect and on_publish share the network thread, so the id is known before its ack.
        info = client.publish(self.status_topic, "online", qos=1, retain=True)
        self._acks.ignore(self.device_id, info.mid)
        self.connected.set()

    def _on_publish(
        self, _client: mqtt.Client, _userdata: Any, mid: int, _reason: Any, _properties: Any
    ) -> None:
        self._acks.acked(self.device_id, mid)

    def publish(self, topic: str, payload: str, *, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        self._acks.sent(self.device_id, info.mid)


def telemetry_payload(reading: Reading) -> str:
    """The JSON telemetry payload of one reading, as the device contract defines it."""
    return json.dumps(reading.payload(), separators=(",", ":"))


def publish_fleet(
    fleet: Fleet,
    host: str,
    port: int,
    *,
    prefix: str = "devices",
    speed: float | None = None,
    rate: float | None = None,
    stop: threading.Event | None = None,
    on_progress: Progress | None = None,
    progress_every: float = 3600.0,
    client_id_prefix: str = "sim",
    connect_timeout: float = 10.0,
    drain_timeout: float = 60.0,
    max_pending: int = 2000,
) -> PublishReport:
    """Publish the fleet's readings in delivery order (late and duplicate ones included).

    Pace with ``speed`` (simulated seconds per wall second) or ``rate`` (messages per wall
    second overall); with neither, as fast as the broker acknowledges. ``on_progress`` is called
    with (simulated time, messages published) every ``progress_every`` simulated seconds and
    at the end. Setting ``stop`` ends the run early, still cleanly (offline, disconnect).
    At most ``max_pending`` messages await their PUBACK at any time. Raises ConnectionError
    when not every device connects within ``connect_timeout`` seconds.
    """
    if speed is not None and rate is not None:
        raise ValueError("give speed or rate, not both")
    if (speed is not None and speed <= 0) or (rate is not None and rate <= 0):
        raise ValueError(f"speed and rate must be positive, got speed={speed} rate={rate}")
    stop = stop or threading.Event()
    acks = _Acks()
    clients = {
        d.device_id: _DeviceClient(d.device_id, f"{client_id_prefix}-{d.device_id}", prefix, acks)
        for d in fleet.devices
    }
    wall_start = time.monotonic()
    try:
        _connect(clients.values(), host, port, connect_timeout)
        published, sim_end = _publish_readings(
            delivery_order(fleet.readings(), fleet.truth()),
            clients=clients,
            acks=acks,
            stop=stop,
            speed=speed,
            rate=rate,
            on_progress=on_progress,
            progress_every=progress_every,
            max_pending=max_pending,
        )
        acks.wait_below(1, drain_timeout)
        acknowledged = acks.acknowledged
        for c in clients.values():
            c.publish(c.status_topic, "offline", retain=True)
        acks.wait_below(1, drain_timeout)
    finally:
        for c in clients.values():
            c.client.disconnect()
            c.client.loop_stop()
    return PublishReport(
        published, acknowledged, stop.is_set(), time.monotonic() - wall_start, sim_end
    )


def _connect(clients: Iterable[_DeviceClient], host: str, port: int, timeout: float) -> None:
    clients = list(clients)
    for c in clients:
        c.client.connect_async(host, port, keepalive=60)
        c.client.loop_start()
    deadline = time.monotonic() + timeout
    for c in clients:
        if not c.connected.wait(max(deadline - time.monotonic(), 0.0)):
            raise ConnectionError(
                f"device {c.device_id} could not connect to the MQTT broker at {host}:{port} "
                f"within {timeout:g} s; is the broker running and reachable?"
            )


def _publish_readings(
    readings: Iterable[Reading],
    *,
    clients: dict[str, _DeviceClient],
    acks: _Acks,
    stop: threading.Event,
    speed: float | None,
    rate: float | None,
    on_progress: Progress | None,
    progress_every: float,
    max_pending: int,
) -> tuple[int, float | None]:
    published = 0
    sim_start: float | None = None
    sim_now: float | None = None
    next_progress = 0.0
    wall_start = time.monotonic()
    for reading in readings:
        if sim_start is None:
            sim_start, next_progress = reading.ts, reading.ts + progress_every
        # Late messages carry an old ts; the simulated clock only moves forward.
        sim_now = reading.ts if sim_now is None else max(sim_now, reading.ts)
        if speed is not None:
            due = wall_start + (sim_now - sim_start) / speed
        elif rate is not None:
            due = wall_start + published / rate
        else:
            due = 0.0
        delay = due - time.monotonic()
        if (delay > 0.001 and stop.wait(delay)) or stop.is_set():
            break
        while not acks.wait_below(max_pending, 0.5) and not stop.is_set():
            pass
        if stop.is_set():
            break
        client = clients[reading.device_id]
        client.publish(client.telemetry_topic, telemetry_payload(reading))
        published += 1
        if on_progress is not None and sim_now >= next_progress:
            on_progress(sim_now, published)
            next_progress = sim_now + progress_every
    if on_progress is not None and sim_now is not None:
        on_progress(sim_now, published)
    return published, sim_now
