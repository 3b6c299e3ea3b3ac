"""Storage: the SQLModel schema and how to open SQLite or PostgreSQL."""

from monitor.store.db import DatabaseError, open_database
from monitor.store.models import (
    Case,
    CaseEvent,
    Customer,
    Device,
    DeviceState,
    Outbox,
    ParkedMessage,
    SurveyResponse,
)

__all__ = [
    "Case",
    "CaseEvent",
    "Customer",
    "DatabaseError",
    "Device",
    "DeviceState",
    "Outbox",
    "ParkedMessage",
    "SurveyResponse",
    "open_database",
]
