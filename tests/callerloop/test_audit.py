"""The audit log: append-only in the database itself; exports and views are recorded."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError
from typer.testing import CliRunner

from callerloop.core import audit
from callerloop.core.db import Database
from callerloop.core.settings import get_settings
from starter.cli import app
from tests.factories import outbox_row


def test_the_audit_log_refuses_changes_and_deletions(database: Database) -> None:
    audit.record(database, "export messages", "testville", "3 texts", actor="ana", source="cli")
    for statement in ("UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log"):
        with database.session() as session, pytest.raises(DatabaseError, match="append-only"):
            session.execute(text(statement))
    [entry] = audit.latest(database)
    assert (entry.actor, entry.action, entry.target) == ("ana", "export messages", "testville")


@pytest.mark.databases("postgresql")
def test_on_postgresql_the_audit_log_refuses_truncate_too(database: Database) -> None:
    audit.record(database, "export messages", "testville", "3 texts", actor="ana", source="cli")
    with database.session() as session, pytest.raises(DatabaseError, match="append-only"):
        session.execute(text("TRUNCATE audit_log"))
    assert len(audit.latest(database)) == 1


def test_an_export_of_the_outbox_is_recorded_and_listed(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    outbox_row(database)
    monkeypatch.setenv("CALLERLOOP_DATABASE_URL", database.url)
    monkeypatch.setenv("CALLERLOOP_OPERATOR", "supervisor.kim")
    get_settings.cache_clear()
    try:
        exported = CliRunner().invoke(app, ["messages", "export", "--format", "jsonl"])
        listed = CliRunner().invoke(app, ["audit", "list"])
    finally:
        get_settings.cache_clear()
    assert exported.exit_code == 0, exported.output
    assert listed.exit_code == 0, listed.output
    [line] = listed.output.splitlines()
    assert line.split("\t")[1:] == [
        "supervisor.kim", "export messages", "all agencies", "1 texts to stdout as jsonl", "cli",
    ]  # fmt: skip
