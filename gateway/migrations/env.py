"""Alembic environment: migrations run on a connection the gateway hands over (see gateway/db.py)."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `gateway db upgrade`, which passes a connection")
context.configure(connection=connection, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
