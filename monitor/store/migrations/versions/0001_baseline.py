"""Baseline: the schema of the first release (commit 21a8f14), before migrations existed.

A database from that release has these tables and no ``alembic_version``; the monitor takes
it to be at this revision, stamps it, and upgrades it from here.

Revision ID: 0001
Revises:
Created: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TEXT = sa.String
_OPEN_CASE_WHERE = sa.text("status IN ('open', 'notified', 'acknowledged')")


def upgrade() -> None:
    op.create_table(
        "customer",
        sa.Column("id", _TEXT(), nullable=False),
        sa.Column("name", _TEXT(), nullable=False),
        sa.Column("email", _TEXT(), nullable=True),
        sa.Column("phone", _TEXT(), nullable=True),
        sa.Column("language", _TEXT(), nullable=False),
        sa.Column("channel", _TEXT(), nullable=False),
        sa.Column("timezone", _TEXT(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "devicestate",
        sa.Column("device_id", _TEXT(), nullable=False),
        sa.Column("saved_wall", sa.Float(), nullable=False),
        sa.Column("state", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("device_id"),
    )
    op.create_table(
        "parkedmessage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("received_wall", sa.Float(), nullable=False),
        sa.Column("topic", _TEXT(), nullable=False),
        sa.Column("device_id", _TEXT(), nullable=True),
        sa.Column("reason", _TEXT(), nullable=False),
        sa.Column("detail", _TEXT(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("parkedmessage") as batch_op:
        batch_op.create_index("ix_parkedmessage_device_id", ["device_id"], unique=False)
        batch_op.create_index("ix_parkedmessage_reason", ["reason"], unique=False)
        batch_op.create_index("ix_parkedmessage_received_wall", ["received_wall"], unique=False)

    op.create_table(
        "device",
        sa.Column("id", _TEXT(), nullable=False),
        sa.Column("kind", _TEXT(), nullable=False),
        sa.Column("model", _TEXT(), nullable=False),
        sa.Column("customer_id", _TEXT(), nullable=True),
        sa.Column("site", _TEXT(), nullable=True),
        sa.Column("fw", _TEXT(), nullable=True),
        sa.Column("status", _TEXT(), nullable=False),
        sa.Column("last_ts", sa.Float(), nullable=True),
        sa.Column("last_seq", sa.Integer(), nullable=True),
        sa.Column("registered_wall", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("device") as batch_op:
        batch_op.create_index("ix_device_customer_id", ["customer_id"], unique=False)

    op.create_table(
        "case",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", _TEXT(), nullable=False),
        sa.Column("problem", _TEXT(), nullable=False),
        sa.Column("rule", _TEXT(), nullable=False),
        sa.Column("severity", _TEXT(), nullable=False),
        sa.Column("status", _TEXT(), nullable=False),
        sa.Column("opened_at", sa.Float(), nullable=False),
        sa.Column("closed_at", sa.Float(), nullable=True),
        sa.Column("created_wall", sa.Float(), nullable=False),
        sa.Column("predicted_failure_at", sa.Float(), nullable=True),
        sa.Column("suggested_action", _TEXT(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["device_id"], ["device.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("case") as batch_op:
        batch_op.create_index("ix_case_device_id", ["device_id"], unique=False)
        batch_op.create_index(
            "one_open_case_per_device_problem",
            ["device_id", "problem"],
            unique=True,
            sqlite_where=_OPEN_CASE_WHERE,
            postgresql_where=_OPEN_CASE_WHERE,
        )

    op.create_table(
        "caseevent",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("at_wall", sa.Float(), nullable=False),
        sa.Column("kind", _TEXT(), nullable=False),
        sa.Column("actor", _TEXT(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["case.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("caseevent") as batch_op:
        batch_op.create_index("ix_caseevent_case_id", ["case_id"], unique=False)

    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("channel", _TEXT(), nullable=False),
        sa.Column("purpose", _TEXT(), nullable=False),
        sa.Column("recipient", _TEXT(), nullable=False),
        sa.Column("language", _TEXT(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.Column("status", _TEXT(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.Float(), nullable=False),
        sa.Column("last_error", _TEXT(), nullable=False),
        sa.Column("created_wall", sa.Float(), nullable=False),
        sa.Column("sent_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["case.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_id", "channel", "purpose", name="one_message"),
    )
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.create_index("ix_outbox_case_id", ["case_id"], unique=False)
        batch_op.create_index("ix_outbox_status", ["status"], unique=False)


def downgrade() -> None:
    for table in ("outbox", "caseevent", "case", "device", "parkedmessage", "devicestate"):
        op.drop_table(table)
    op.drop_table("customer")
