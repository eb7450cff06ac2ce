"""Alembic's environment for callerloop's database: run by `callerloop.schema`, never by a
bare `alembic` command (there is no alembic.ini; the URL comes from the deployment's
settings or the caller's connection)."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from callerloop.core import db  # noqa: F401  (registers every table on SQLModel.metadata)
from callerloop.core.schema import comparison_options

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    transaction_per_migration=False,
    **comparison_options(),
)
# `callerloop.schema` opened the transaction (and on PostgreSQL took the advisory lock
# that makes concurrent upgrades take turns).
with context.begin_transaction():
    context.run_migrations()
