"""Decoding and validating one device message against the device contract.

Pure and synchronous: bytes (or, replaying a recording, the object they would encode) in, a
:class:`Telemetry` or a :class:`Rejection` out. Checks that need memory of the device (order,
registration) live in :mod:`monitor.ingest.admission`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class Reason(StrEnum):
    """Why a message was refused. The values are Prometheus label values: keep them stable."""

    TOO_LARGE = "too_large"
    BAD_TOPIC = "bad_topic"
    NOT_JSON = "not_json"
    NOT_OBJECT = "not_object"
    MISSING_TS = "missing_ts"
    BAD_TS = "bad_ts"
    FUTURE_TS = "future_ts"
    MISSING_METRICS = "missing_metrics"
    NON_NUMERIC_METRIC = "non_numeric_metric"
    NON_FINITE_METRIC = "non_finite_metric"
    BAD_FIELD = "bad_field"
    OUT_OF_ORDER = "out_of_order"
    DUPLICATE = "duplicate"
    UNKNOWN_DEVICE = "unknown_device"


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One MQTT message as the transport received it."""

    topic: str
    payload: bytes
    received: float
    """Wall-clock arrival time (epoch seconds), for latency metrics only."""
    ack: tuple[int, int] | None = None
    """Transport token (connection, message id) to acknowledge once the batch is committed."""

    def raw(self) -> RawMessage:
        """Itself: what a refusal parks (see :meth:`ParsedMessage.raw`)."""
        return self


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """A message whose JSON payload is already an object: a recorded row, replayed.

    The decoder judges ``body`` as it would judge the object its bytes decode to, so a replay
    skips writing JSON only to read it back; the bytes are written only when needed: to park
    a refusal, or to check the size limit when ``size_bound`` is above it.
    """

    topic: str
    body: dict[str, Any]
    size_bound: int
    """No less than the length of :meth:`raw`'s payload."""
    received: float = 0.0

    def raw(self) -> RawMessage:
        """The message as a device would have sent it."""
        return RawMessage(self.topic, json.dumps(self.body).encode(), self.received)


Message = RawMessage | ParsedMessage


@dataclass(frozen=True, slots=True)
class Telemetry:
    """One validated telemetry message."""

    device_id: str
    ts: float
    metrics: dict[str, float]
    seq: int | None = None
    fw: str | None = None
    model: str | None = None
    received: float = 0.0
    source: Message | None = field(default=None, repr=False, compare=False)
    """The message it was decoded from, kept so that a later refusal can park its bytes."""


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A device's retained ``online``/``offline`` status (its last will)."""

    device_id: str
    status: str
    received: float = 0.0


@dataclass(frozen=True, slots=True)
class Rejection:
    """A refused message, kept whole so that it can be parked with its raw bytes."""

    message: RawMessage
    reason: Reason
    detail: str
    device_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


Decoded = Telemetry | StatusChange | Rejection


class Decoder:
    """Turns raw messages under one topic prefix into telemetry, status changes or rejections."""

    def __init__(self, prefix: str, max_payload_bytes: int, max_future_seconds: float) -> None:
        self._prefix_parts = len(prefix.split("/"))
        self._prefix = prefix + "/"
        self._max_bytes = max_payload_bytes
        self._max_future = max_future_seconds

    def decode(self, message: Message, now: float) -> Decoded | None:
        """Decode ``message``; ``None`` for topics the monitor does not consume (events...)."""
        parts = message.topic.split("/")
        if not message.topic.startswith(self._prefix) or len(parts) != self._prefix_parts + 2:
            return self._reject(
                message, None, Reason.BAD_TOPIC, f"unexpected topic {message.topic!r}"
            )
        device_id, channel = parts[-2], parts[-1]
        if not device_id:
            return self._reject(message, None, Reason.BAD_TOPIC, "empty device id in topic")
        size = len(message.payload) if isinstance(message, RawMessage) else message.size_bound
        if size > self._max_bytes:
            raw = message.raw()
            if len(raw.payload) > self._max_bytes:
                return self._reject(
                    raw,
                    device_id,
                    Reason.TOO_LARGE,
                    f"{len(raw.payload)} bytes > limit {self._max_bytes}",
                )
        if channel == "telemetry":
            if isinstance(message, ParsedMessage):
                return self._telemetry_body(message.body, device_id, now, message)
            return self._telemetry(message, device_id, now)
        if channel == "status":
            status = message.raw().payload.decode("utf-8", "replace").strip().lower()
            if status not in ("online", "offline"):
                return self._reject(
                    message, device_id, Reason.BAD_FIELD, f"status {status!r} is not online/offline"
                )
            return StatusChange(device_id, status, message.received)
        return None

    def _telemetry(self, message: RawMessage, device_id: str, now: float) -> Decoded:
        try:
            body = json.loads(message.payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return self._reject(message, device_id, Reason.NOT_JSON, str(exc))
        return self._telemetry_body(body, device_id, now, message)

    def _telemetry_body(
        self, body: object, device_id: str, now: float, message: Message
    ) -> Decoded:
        """Judge ``body``, the decoded JSON of ``message``'s payload, as device telemetry."""
        if not isinstance(body, dict):
            return self._reject(message, device_id, Reason.NOT_OBJECT, "payload is not an object")
        if "ts" not in body:
            return self._reject(message, device_id, Reason.MISSING_TS, "no 'ts' field")
        ts = parse_timestamp(body["ts"])
        if ts is None:
            return self._reject(message, device_id, Reason.BAD_TS, f"ts {body['ts']!r}")
        if ts > now + self._max_future:
            return self._reject(
                message, device_id, Reason.FUTURE_TS, f"ts {ts:.0f} is {ts - now:.0f}s ahead"
            )
        metrics = body.get("metrics")
        if not isinstance(metrics, dict) or not metrics:
            return self._reject(
                message, device_id, Reason.MISSING_METRICS, "'metrics' must be a non-empty object"
            )
        values = _finite_floats(metrics)
        if values is None:
            values = {}
            for name, value in metrics.items():
                if isinstance(value, bool) or not isinstance(value, int | float):
                    return self._reject(
                        message, device_id, Reason.NON_NUMERIC_METRIC, f"metric {name!r}={value!r}"
                    )
                if not math.isfinite(value):
                    return self._reject(
                        message, device_id, Reason.NON_FINITE_METRIC, f"metric {name!r}={value!r}"
                    )
                values[str(name)] = float(value)
        seq, fw, model = body.get("seq"), body.get("fw"), body.get("model")
        if (
            (seq is not None and (isinstance(seq, bool) or not isinstance(seq, int)))
            or (fw is not None and not isinstance(fw, str))
            or (model is not None and not isinstance(model, str))
        ):
            return self._reject(
                message, device_id, Reason.BAD_FIELD, "seq must be an integer, fw/model strings"
            )
        return Telemetry(device_id, ts, values, seq, fw, model, message.received, message)

    @staticmethod
    def _reject(message: Message, device_id: str | None, reason: Reason, detail: str) -> Rejection:
        return Rejection(message.raw(), reason, detail, device_id)


def _finite_floats(metrics: dict[str, Any]) -> dict[str, float] | None:
    """``metrics`` itself when every value is already a finite float (the common case, checked
    in one pass), else ``None`` for the per-metric checks and conversions."""
    # x - x is 0.0 for every finite float and NaN for infinities and NaN.
    if all(type(v) is float and v - v == 0.0 for v in metrics.values()):
        return metrics
    return None


def parse_timestamp(value: object) -> float | None:
    """Epoch seconds (number) or ISO 8601 text to epoch seconds; ``None`` if it is neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) and value > 0 else None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if parsed.tzinfo is None:
            # The contract says UTC when no offset is given: a device has no local time zone here.
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    return None
