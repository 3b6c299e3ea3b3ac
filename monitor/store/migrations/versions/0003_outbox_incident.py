"""Outbox rows about a fleet incident: case_id nullable, incident_id, one message per incident,
channel and purpose, and each row about exactly one case or one incident.

Revision ID: 0003
Revises: 0002
Created: 2026-11-24 00:09:58.065655
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("incident_id", sa.Integer(), nullable=True))
        batch_op.alter_column("case_id", existing_type=sa.INTEGER(), nullable=True)
        batch_op.create_index(batch_op.f("ix_outbox_incident_id"), ["incident_id"], unique=False)
        batch_op.create_unique_constraint(
            "one_incident_message", ["incident_id", "channel", "purpose"]
        )
        batch_op.create_foreign_key(
            batch_op.f("outbox_incident_id_fkey"), "fleetincident", ["incident_id"], ["id"]
        )
        # Autogenerate does not compare CHECK constraints: written by hand.
        batch_op.create_check_constraint(
            "case_or_incident", "(case_id IS NULL) <> (incident_id IS NULL)"
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_constraint("case_or_incident", type_="check")
        batch_op.drop_constraint(batch_op.f("outbox_incident_id_fkey"), type_="foreignkey")
        batch_op.drop_constraint("one_incident_message", type_="unique")
        batch_op.drop_index(batch_op.f("ix_outbox_incident_id"))
        batch_op.alter_column("case_id", existing_type=sa.INTEGER(), nullable=False)
        batch_op.drop_column("incident_id")
