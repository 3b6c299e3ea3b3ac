"""Service loop: case source, assignee and response times; customer channels, quiet hours and
NPS; survey answers, silences, suppressions and fleet incidents; a case with a visit scheduled
still counts as the open case of its device and problem.

Tolerant of a database that a development build between the two releases already half
changed (its ``create_all`` made the new tables but could not add columns): what exists is
left as it is.

Revision ID: 0002
Revises: 0001
Created: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TEXT = sa.String
_OPEN_CASE_INDEX = "one_open_case_per_device_problem"
_OLD_OPEN_CASE_WHERE = sa.text("status IN ('open', 'notified', 'acknowledged')")
_NEW_OPEN_CASE_WHERE = sa.text("status IN ('open', 'notified', 'acknowledged', 'visit_scheduled')")
_OPEN_INCIDENT_WHERE = sa.text("status IN ('open', 'acknowledged')")


def upgrade() -> None:
    # Existing rows need a value for the NOT NULL columns: the model's default, as a server
    # default (left in place: the monitor always writes the column itself).
    _add_missing_columns(
        "case",
        sa.Column("source", _TEXT(), nullable=False, server_default="proactive"),
        sa.Column("assignee", _TEXT(), nullable=True),
        sa.Column("customer_noticed_at", sa.Float(), nullable=True),
        sa.Column("notified_at", sa.Float(), nullable=True),
        sa.Column("resolved_at", sa.Float(), nullable=True),
    )
    _add_missing_columns(
        "customer",
        sa.Column("channels", sa.JSON(), nullable=True),
        sa.Column("apprise_urls", sa.JSON(), nullable=True),
        sa.Column("quiet_hours", _TEXT(), nullable=False, server_default=""),
        sa.Column("nps_asked_at", sa.Float(), nullable=True),
    )
    # The code reads these as lists; an old customer has chosen none.
    for column in ("channels", "apprise_urls"):
        op.execute(f"UPDATE customer SET {column} = '[]' WHERE {column} IS NULL")
    _create_new_tables()
    # Autogenerate cannot see a partial index's WHERE change: drop it and create it anew.
    with op.batch_alter_table("case") as batch_op:
        batch_op.drop_index(_OPEN_CASE_INDEX)
        batch_op.create_index(
            _OPEN_CASE_INDEX,
            ["device_id", "problem"],
            unique=True,
            sqlite_where=_NEW_OPEN_CASE_WHERE,
            postgresql_where=_NEW_OPEN_CASE_WHERE,
        )


def downgrade() -> None:
    with op.batch_alter_table("case") as batch_op:
        batch_op.drop_index(_OPEN_CASE_INDEX)
        batch_op.create_index(
            _OPEN_CASE_INDEX,
            ["device_id", "problem"],
            unique=True,
            sqlite_where=_OLD_OPEN_CASE_WHERE,
            postgresql_where=_OLD_OPEN_CASE_WHERE,
        )
    for table in ("fleetincident", "suppression", "silence", "surveyresponse"):
        op.drop_table(table)
    with op.batch_alter_table("customer") as batch_op:
        for column in ("nps_asked_at", "quiet_hours", "apprise_urls", "channels"):
            batch_op.drop_column(column)
    with op.batch_alter_table("case") as batch_op:
        for column in ("resolved_at", "notified_at", "customer_noticed_at", "assignee", "source"):
            batch_op.drop_column(column)


def _add_missing_columns(table: str, *columns: sa.Column[object]) -> None:
    present = {column["name"] for column in sa.inspect(op.get_bind()).get_columns(table)}
    with op.batch_alter_table(table) as batch_op:
        for column in columns:
            if column.name not in present:
                batch_op.add_column(column)


def _create_new_tables() -> None:
    present = set(sa.inspect(op.get_bind()).get_table_names())
    if "surveyresponse" not in present:
        _create_surveyresponse()
    if "silence" not in present:
        _create_silence()
    if "suppression" not in present:
        _create_suppression()
    if "fleetincident" not in present:
        _create_fleetincident()


def _create_surveyresponse() -> None:
    op.create_table(
        "surveyresponse",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", _TEXT(), nullable=True),
        sa.Column("question", _TEXT(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("comment", _TEXT(), nullable=False),
        sa.Column("answered_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["case.id"]),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_id", "question", name="one_answer_per_question"),
    )
    op.create_index("ix_surveyresponse_case_id", "surveyresponse", ["case_id"])
    op.create_index("ix_surveyresponse_customer_id", "surveyresponse", ["customer_id"])


def _create_silence() -> None:
    op.create_table(
        "silence",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope", _TEXT(), nullable=False),
        sa.Column("value", _TEXT(), nullable=False),
        sa.Column("starts_at", sa.Float(), nullable=False),
        sa.Column("ends_at", sa.Float(), nullable=False),
        sa.Column("repeat", _TEXT(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("kind", _TEXT(), nullable=False),
        sa.Column("comment", _TEXT(), nullable=False),
        sa.Column("created_by", _TEXT(), nullable=False),
        sa.Column("created_wall", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_silence_scope", "silence", ["scope"])
    op.create_index("ix_silence_value", "silence", ["value"])


def _create_suppression() -> None:
    op.create_table(
        "suppression",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at_wall", sa.Float(), nullable=False),
        sa.Column("alarm_at", sa.Float(), nullable=False),
        sa.Column("device_id", _TEXT(), nullable=False),
        sa.Column("problem", _TEXT(), nullable=False),
        sa.Column("rule", _TEXT(), nullable=False),
        sa.Column("reason", _TEXT(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_suppression_at_wall", "suppression", ["at_wall"])
    op.create_index("ix_suppression_device_id", "suppression", ["device_id"])
    op.create_index("ix_suppression_reason", "suppression", ["reason"])


def _create_fleetincident() -> None:
    op.create_table(
        "fleetincident",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model", _TEXT(), nullable=False),
        sa.Column("problem", _TEXT(), nullable=False),
        sa.Column("status", _TEXT(), nullable=False),
        sa.Column("opened_at", sa.Float(), nullable=False),
        sa.Column("created_wall", sa.Float(), nullable=False),
        sa.Column("devices", sa.JSON(), nullable=True),
        sa.Column("active_devices", sa.Integer(), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=True),
        sa.Column("note", _TEXT(), nullable=False),
        sa.Column("resolved_at", sa.Float(), nullable=True),
        sa.Column("resolved_by", _TEXT(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_fleetincident_model", "fleetincident", ["model"])
    op.create_index(
        "one_open_incident_per_model_problem",
        "fleetincident",
        ["model", "problem"],
        unique=True,
        sqlite_where=_OPEN_INCIDENT_WHERE,
        postgresql_where=_OPEN_INCIDENT_WHERE,
    )
