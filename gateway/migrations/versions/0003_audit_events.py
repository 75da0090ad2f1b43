"""Audit events: hash-chained, one chain per writer.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("writer", sa.String(32), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("id", sa.String(32), nullable=False, unique=True),
        sa.Column("time", sa.String(32), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("partner_id", sa.String(16)),
        sa.Column("operation_name", sa.String(200)),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("record", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("writer", "seq"),
    )
    op.create_index("audit_events_time", "audit_events", ["time"])
    op.create_index("audit_events_subject", "audit_events", ["subject", "time"])
    op.create_index("audit_events_partner", "audit_events", ["partner_id", "time"])
    op.create_index("audit_events_request", "audit_events", ["request_id"])


def downgrade() -> None:
    op.drop_table("audit_events")
