"""The database schema: one module, every table.

Times that come from devices (``*_ts``, ``opened_at``, ``closed_at``) are event time in epoch
seconds, so a replayed or fast-forwarded fleet stores the same values as a live one. Times
that the monitor itself decides (``created_wall``, ``next_attempt_at``, ``sent_at``) are wall
clock epoch seconds.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, CheckConstraint, Column, Index, LargeBinary, UniqueConstraint, text
from sqlmodel import Field, SQLModel

# A migration can only alter or drop a constraint it can name; these are the names PostgreSQL
# gives unnamed foreign keys itself, so old and new databases agree (see docs/database.md).
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",  # SQLAlchemy's default, kept
    "fk": "%(table_name)s_%(column_0_name)s_fkey",
}

CASE_STATUSES = (
    "open",
    "notified",
    "acknowledged",
    "visit_scheduled",
    "resolved",
    "closed",
    "false_alarm",
)
"""A case's lifecycle: opened → customer notified → acknowledged → visit scheduled →
resolved → closed; "false_alarm" ends a case that was not a real problem. Reopening moves a
resolved or closed case back to "open" (recorded as a ``reopened`` event)."""

OPEN_CASE_STATUSES = ("open", "notified", "acknowledged", "visit_scheduled")
"""Statuses in which a case still counts as *the* open case of its device and problem."""

_OPEN_CASE_WHERE = text(
    "status IN (" + ", ".join(f"'{status}'" for status in OPEN_CASE_STATUSES) + ")"
)


class Customer(SQLModel, table=True):
    """The owner of one or more devices: who is told, how and in which language."""

    id: str = Field(primary_key=True)
    name: str = ""
    email: str | None = None
    phone: str | None = None
    language: str = "en"
    channel: str = "email"
    timezone: str = "UTC"
    channels: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    """Channels the customer chose ("email", "apprise", "display"); empty: just ``channel``."""
    apprise_urls: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    """Apprise URLs (SMS, chat, push) for the "apprise" channel."""
    quiet_hours: str = ""
    """Local hours without messages, such as "22:00-07:00"; only critical problems break it."""
    nps_asked_at: float | None = None
    """When the customer was last asked the NPS question (monitor clock)."""


class Device(SQLModel, table=True):
    """A connected product, known from a manifest or registered on its first message."""

    id: str = Field(primary_key=True)
    kind: str = ""
    model: str = ""
    customer_id: str | None = Field(default=None, foreign_key="customer.id", index=True)
    site: str | None = None
    fw: str | None = None
    status: str = "unknown"
    last_ts: float | None = None
    last_seq: int | None = None
    registered_wall: float = 0.0


class Case(SQLModel, table=True):
    """A proactive service case: one open case per device and problem, enforced below."""

    __table_args__ = (
        Index(
            "one_open_case_per_device_problem",
            "device_id",
            "problem",
            unique=True,
            sqlite_where=_OPEN_CASE_WHERE,
            postgresql_where=_OPEN_CASE_WHERE,
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    device_id: str = Field(foreign_key="device.id", index=True)
    problem: str
    rule: str
    severity: str
    status: str = "open"
    opened_at: float
    closed_at: float | None = None
    created_wall: float
    predicted_failure_at: float | None = None
    suggested_action: str = ""
    evidence: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    source: str = "proactive"
    """"proactive" (opened by a rule) or "reactive" (the customer reported it first)."""
    assignee: str | None = None
    customer_noticed_at: float | None = None
    """Event time at which the customer reported the problem themselves, if they did."""
    notified_at: float | None = None
    """When the customer was first told (the first response), on the monitor's clock: wall
    time when live, simulated time when a simulation drives the clock."""
    resolved_at: float | None = None


MONITOR_ACTOR = "monitor"
"""The actor of what the monitor does by itself (opening a case, notifying, resolving a
connectivity case when the device is heard again), as against a person's action."""


class CaseEvent(SQLModel, table=True):
    """One thing that happened to a case: who did what, and when.

    ``kind`` is a status the case moved to (see :data:`CASE_STATUSES`, with "opened" for the
    first) or one of "reopened", "note", "assigned", "escalated", "customer_notified",
    "support_notified", "suppressed", "feedback", "survey_sent", "survey_answered",
    "condition_cleared" (the rule that opened it cleared; ``detail["at"]`` in event time).
    """

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", index=True)
    at_wall: float
    kind: str
    actor: str = MONITOR_ACTOR
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))


class Outbox(SQLModel, table=True):
    """A notification waiting to be delivered, written in the same transaction as its case
    or fleet incident.

    Every row is about exactly one case or one fleet incident. The unique keys make "one
    message per case (or incident), channel and purpose" a database fact, so a retried
    transaction can never queue the same notification twice. There are two keys because
    SQLite and PostgreSQL both treat NULLs as distinct in a unique constraint: the case key
    says nothing about incident rows (their ``case_id`` is NULL), and the other way round.
    """

    __table_args__ = (
        UniqueConstraint("case_id", "channel", "purpose", name="one_message"),
        UniqueConstraint("incident_id", "channel", "purpose", name="one_incident_message"),
        CheckConstraint("(case_id IS NULL) <> (incident_id IS NULL)", name="case_or_incident"),
    )

    id: int | None = Field(default=None, primary_key=True)
    case_id: int | None = Field(default=None, foreign_key="case.id", index=True)
    incident_id: int | None = Field(default=None, foreign_key="fleetincident.id", index=True)
    channel: str
    purpose: str
    recipient: str
    language: str = "en"
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    status: str = Field(default="pending", index=True)
    attempts: int = 0
    next_attempt_at: float = 0.0
    last_error: str = ""
    created_wall: float
    sent_at: float | None = None


class ParkedMessage(SQLModel, table=True):
    """A message the monitor refused, kept with its raw bytes so nothing is silently lost."""

    id: int | None = Field(default=None, primary_key=True)
    received_wall: float = Field(index=True)
    topic: str
    device_id: str | None = Field(default=None, index=True)
    reason: str = Field(index=True)
    detail: str = ""
    payload: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class DeviceState(SQLModel, table=True):
    """A checkpoint of one device's detector and rule state, restored on start."""

    device_id: str = Field(primary_key=True)
    saved_wall: float
    state: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class SurveyResponse(SQLModel, table=True):
    """A customer's answer about a case: "helpful" (0/1), "csat" (1–5), "ces" (1–7), "nps"
    (0–10; at most once a quarter per customer, attached to the case that prompted it)."""

    __table_args__ = (UniqueConstraint("case_id", "question", name="one_answer_per_question"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", index=True)
    customer_id: str | None = Field(default=None, foreign_key="customer.id", index=True)
    question: str
    score: int
    comment: str = ""
    answered_at: float


SILENCE_SCOPES = ("device", "model", "site", "customer")
"""What a silence matches on: a device id, a product model, a site or a customer id."""

SILENCE_REPEATS = ("none", "daily", "weekly")


class Silence(SQLModel, table=True):
    """A maintenance window or silence: alarms it matches open no case until it expires.

    One-off: active from ``starts_at`` to ``ends_at``. Recurring ("daily"/"weekly"): active
    for ``ends_at - starts_at`` seconds from the same time of each day or week, until
    ``expires_at``. Times are on the monitor's clock (event time of the alarm it judges).
    """

    id: int | None = Field(default=None, primary_key=True)
    scope: str = Field(index=True)
    value: str = Field(index=True)
    starts_at: float
    ends_at: float
    repeat: str = "none"
    expires_at: float
    kind: str = "silence"
    """"silence" or "maintenance": only a label for people reading the log."""
    comment: str = ""
    created_by: str = "monitor"
    created_wall: float = 0.0


class Suppression(SQLModel, table=True):
    """One alarm that noise control kept from becoming a case, and why."""

    id: int | None = Field(default=None, primary_key=True)
    at_wall: float = Field(index=True)
    alarm_at: float
    device_id: str = Field(index=True)
    problem: str
    rule: str
    reason: str = Field(index=True)
    """The stage that suppressed it: duplicate, inhibited, site_down, silenced, flapping,
    fleet_incident."""
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))


class FleetIncident(SQLModel, table=True):
    """Many devices of one model deviating together: one incident for engineering instead of a
    customer case per device. One open incident per model and problem, enforced below."""

    __table_args__ = (
        Index(
            "one_open_incident_per_model_problem",
            "model",
            "problem",
            unique=True,
            sqlite_where=text("status IN ('open', 'acknowledged')"),
            postgresql_where=text("status IN ('open', 'acknowledged')"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    model: str = Field(index=True)
    problem: str
    status: str = "open"
    """"open", then "acknowledged" (still open: alarms keep joining it) or "resolved" by
    engineering."""
    opened_at: float
    """Event time of the alarm that showed the fleet-wide pattern."""
    created_wall: float
    devices: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    """Devices whose alarms this incident took in (grows while it is open)."""
    active_devices: int = 0
    """Active devices of the model when it opened: the denominator of the share."""
    rules: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    note: str = ""
    resolved_at: float | None = None
    resolved_by: str | None = None
