"""Ingest: messages off the broker, decoded and admitted, in micro-batches."""

from monitor.ingest.admission import Admission, Admitted, KnownDevice
from monitor.ingest.decode import (
    Decoder,
    Message,
    ParsedMessage,
    RawMessage,
    Reason,
    Rejection,
    StatusChange,
    Telemetry,
)
from monitor.ingest.transport import Transport, make_transport

__all__ = [
    "Admission",
    "Admitted",
    "Decoder",
    "KnownDevice",
    "Message",
    "ParsedMessage",
    "RawMessage",
    "Reason",
    "Rejection",
    "StatusChange",
    "Telemetry",
    "Transport",
    "make_transport",
]
