"""Helpers for integration tests: run the real monitor process, publish, scrape, wait."""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from devenv.ports import free_port
from devenv.prometheus import scrape

DAY = 86400.0
STEP = 300.0


def write_config(
    directory: Path,
    *,
    mqtt_port: int,
    database_url: str,
    smtp_port: int = 1,
    webhook_url: str | None = None,
    client_id: str | None = None,
    transport: str = "paho",
    extra: str = "",
) -> Path:
    """A monitor config for tests: real broker, real database, fast retries."""
    metrics_port = free_port()
    # A fresh session per config: a persistent session left on a shared broker by an earlier
    # test would otherwise hand this monitor that test's queued messages.
    client_id = client_id or f"monitor-{uuid.uuid4().hex[:8]}"
    webhook = f'url = "{webhook_url}"\nsecret = "test-secret"\n' if webhook_url else ""
    text = f"""
[mqtt]
host = "127.0.0.1"
port = {mqtt_port}
client_id = "{client_id}"
transport = "{transport}"
reconnect_max_delay = 1.0

[database]
url = "{database_url}"

[detect]
checkpoint_seconds = 1.0

[notify]
poll_seconds = 0.2
retry_base_seconds = 0.5
retry_max_seconds = 1.0
max_attempts = 50

[notify.smtp]
host = "127.0.0.1"
port = {smtp_port}
timeout = 2.0

[notify.support_webhook]
{webhook}
[metrics]
port = {metrics_port}

[log]
level = "INFO"
json = true
{extra}
"""
    path = directory / "monitor.toml"
    path.write_text(text)
    return path


def metrics_port_of(config: Path) -> int:
    import tomllib

    return int(tomllib.loads(config.read_text())["metrics"]["port"])


class MonitorProcess:
    """The real ``monitor run`` as a child process, stopped with SIGTERM like in production."""

    def __init__(self, config: Path, log_path: Path) -> None:
        self.config = config
        self.log_path = log_path
        self.metrics_port = metrics_port_of(config)
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", "--config", str(self.config)],
            stdout=log,
            stderr=log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        wait_until(lambda: self.scrape() is not None, timeout=30, what="monitor metrics endpoint")
        wait_until(
            lambda: (self.scrape() or {}).get("monitor_broker_connected", 0) == 1,
            timeout=30,
            what="monitor connected to broker",
        )

    def stop(self) -> int:
        assert self._proc is not None
        self._proc.send_signal(signal.SIGTERM)
        try:
            return self._proc.wait(timeout=30)
        finally:
            if self._proc.poll() is None:
                self._proc.kill()

    def scrape(self) -> dict[str, float] | None:
        """Prometheus samples by name (labels folded into the name), or None if not up."""
        if self._proc is not None and self._proc.poll() is not None:
            raise AssertionError(f"monitor exited early:\n{self.log()}")
        return scrape(self.metrics_port)

    def wait_processed(self, count: int, what: str, timeout: float = 60.0) -> None:
        """Wait until exactly ``count`` messages have been accepted and processed."""
        wait_until(lambda: self.metric("monitor_messages_total") == count, timeout, what)

    def metric(self, name: str) -> float:
        return (self.scrape() or {}).get(name, 0.0)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]


@contextmanager
def running_monitor(config: Path, log_path: Path) -> Iterator[MonitorProcess]:
    process = MonitorProcess(config, log_path)
    process.start()
    try:
        yield process
    finally:
        process.stop()


def wait_until(condition: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Publisher:
    """A device-side paho client with a persistent session, like firmware would have."""

    def __init__(self, port: int, client_id: str | None = None) -> None:
        client_id = client_id or f"devices-{uuid.uuid4().hex[:8]}"
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
        )
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(1, 1)
        self.client.on_publish = self._on_publish
        self._lock = threading.Lock()
        self._sent = self._acked = 0
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, _rc: Any, _p: Any) -> None:
        with self._lock:
            self._acked += 1

    def send(self, topic: str, payload: bytes | str) -> None:
        # While the broker is away paho keeps QoS 1 messages and sends them after reconnecting;
        # ``flush`` waits for the broker's PUBACK of every one. (No lock around publish: paho
        # calls on_publish holding its own lock, and the two would deadlock.)
        self.client.publish(topic, payload, qos=1)
        with self._lock:
            self._sent += 1

    def telemetry(self, device: str, ts: float, metrics: dict[str, float], **fields: Any) -> None:
        self.send(
            f"devices/{device}/telemetry", json.dumps({"ts": ts, "metrics": metrics, **fields})
        )

    def series(self, device: str, samples: list[tuple[float, dict[str, float]]]) -> None:
        """Publish one device's samples in order and wait until the broker has them all."""
        for ts, metrics in samples:
            self.telemetry(device, ts, metrics)
        self.flush()

    def flush(self, timeout: float = 60.0) -> None:
        wait_until(lambda: self._acked >= self._sent, timeout, "PUBACK of every message")

    def close(self) -> None:
        self.flush()
        self.client.disconnect()
        self.client.loop_stop()


def pump_history(
    days: float, start: float, seed: int, degrade_from: float | None = None
) -> Iterator[tuple[float, dict[str, float]]]:
    """A pump sampled every 5 minutes: daily cycle and noise; after ``degrade_from``, bearing
    wear raises vibration by 0.1 mm/s per hour (and motor temperature with it)."""
    rng = random.Random(seed)
    for i in range(int(days * DAY / STEP)):
        ts = start + i * STEP
        wear = 0.0 if degrade_from is None else max(0.0, 0.1 * (ts - degrade_from) / 3600)
        phase = 2 * math.pi * (ts % DAY) / DAY
        yield (
            ts,
            {
                "flow_lpm": 40 + 5 * math.sin(phase) + rng.gauss(0, 0.5),
                "vibration_mms": 2.0 + 0.2 * math.sin(phase) + rng.gauss(0, 0.05) + wear,
                "motor_temp_c": 45 + 3 * math.sin(phase) + rng.gauss(0, 0.3) + 4 * wear,
            },
        )
