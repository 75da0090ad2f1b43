"""Business operations: sagas and their steps, the outbox of their changes, and client idempotency keys.

Times are integer milliseconds since the epoch: the same on SQLite, PostgreSQL and MariaDB.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.String(64), primary_key=True),  # sha256 of the principal and the client's key
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),  # running | done
        sa.Column("owner", sa.String(32), nullable=False),
        sa.Column("status", sa.Integer),
        sa.Column("media_type", sa.String(100)),
        sa.Column("headers", sa.Text),
        sa.Column("body", sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")),  # answers over 64 KB
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("lease_until_ms", sa.BigInteger, nullable=False),
        sa.Column("expires_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("idempotency_keys_expiry", "idempotency_keys", ["expires_ms"])
    op.create_table(
        "sagas",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("key", sa.String(64), nullable=False, unique=True),
        sa.Column("principal", sa.Text, nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("command", sa.Text, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("result", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_ms", sa.BigInteger),
        sa.Column("owner", sa.String(32)),
        sa.Column("lease_until_ms", sa.BigInteger, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("sagas_state", "sagas", ["state", "next_attempt_ms"])
    op.create_index("sagas_created", "sagas", ["created_ms"])
    op.create_table(
        "saga_steps",
        sa.Column("saga_id", sa.String(32), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("result", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("saga_id", "position"),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("saga_id", sa.String(32)),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("entity", sa.String(40), nullable=False),
        sa.Column("key", sa.String(100), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("published_ms", sa.BigInteger),
    )
    op.create_index("outbox_pending", "outbox", ["published_ms", "id"])


def downgrade() -> None:
    for name in ("outbox", "saga_steps", "sagas", "idempotency_keys"):
        op.drop_table(name)
