"""Alembic's environment for callerloop's database: run by `callerloop.schema`, never by a
bare `alembic` command (there is no alembic.ini; the URL comes from the deployment's
settings or the caller's connection)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text
from sqlmodel import SQLModel

from callerloop import db  # noqa: F401  (registers every table on SQLModel.metadata)
from callerloop.schema import MIGRATION_LOCK_ID, comparison_options

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    transaction_per_migration=False,
    **comparison_options(),
)
with context.begin_transaction():
    if connection.dialect.name == "postgresql":
        # Processes starting together (worker, web app) take turns; the second finds the
        # schema at head. Released when the transaction ends.
        connection.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})"))
    context.run_migrations()
