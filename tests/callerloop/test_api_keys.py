"""Ingest API keys and dead letters: the functions and their commands."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from callerloop.cad import dead_letters
from callerloop.core.db import Database
from callerloop.core.settings import get_settings
from callerloop.staff.api_keys import (
    KEY_PREFIX,
    UnknownApiKey,
    agency_for_key,
    create_key,
    hash_key,
    list_keys,
    revoke_key,
)
from starter.cli_ingest import deadletter_app, keys_app

runner = CliRunner()


def test_a_key_finds_its_agency_until_revoked(database: Database) -> None:
    key_id, key = create_key(database, "testville", "CAD prod")
    _, other = create_key(database, "otherville", "CAD prod")
    assert key.startswith(KEY_PREFIX) and len(key) > 30 and key != other
    assert agency_for_key(database, key) == "testville"
    assert agency_for_key(database, other) == "otherville"
    assert agency_for_key(database, key + "x") is None
    revoked = revoke_key(database, key_id)
    assert revoked.revoked_at is not None
    assert revoke_key(database, key_id).revoked_at == revoked.revoked_at
    assert agency_for_key(database, key) is None
    assert agency_for_key(database, other) == "otherville"


def test_only_the_hash_is_stored(database: Database) -> None:
    _, key = create_key(database, "testville", "CAD")
    [row] = list_keys(database)
    assert row.key_hash == hash_key(key) and key not in row.key_hash


def test_revoking_an_unknown_key_says_so(database: Database) -> None:
    with pytest.raises(UnknownApiKey, match="42"):
        revoke_key(database, 42)


async def test_a_dead_letter_stays_open_until_delivered(database: Database) -> None:
    letter_id = dead_letters.keep(database, "/v1/cad/events", "testville", "bad", "{}")
    delivered: list[str] = []

    async def failing(body: str) -> None:
        raise ValueError("body.agency: still bad")

    async def deliver(body: str) -> None:
        delivered.append(body)

    row = await dead_letters.retry(database, letter_id, failing)
    assert (row.status, row.reason, row.body) == ("open", "body.agency: still bad", "{}")
    row = await dead_letters.retry(database, letter_id, deliver, fixed_body='{"fixed": 1}')
    assert (row.status, row.body) == ("delivered", '{"fixed": 1}')
    assert delivered == ['{"fixed": 1}']
    assert dead_letters.list_dead_letters(database) == []
    assert [r.id for r in dead_letters.list_dead_letters(database, include_resolved=True)] == [
        letter_id
    ]
    with pytest.raises(dead_letters.DeadLetterNotOpen, match="delivered"):
        await dead_letters.retry(database, letter_id, deliver)
    with pytest.raises(dead_letters.DeadLetterNotOpen, match="does not exist"):
        await dead_letters.retry(database, 999, deliver)


# --- the commands -------------------------------------------------------------------------


@pytest.fixture
def cli_database(database: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    """The commands' settings point at the test database (and the repository's agencies)."""
    monkeypatch.setenv("CALLERLOOP_DATABASE_URL", database.url)
    get_settings.cache_clear()
    yield database
    get_settings.cache_clear()


def test_keys_add_prints_the_key_once_then_list_and_revoke(cli_database: Database) -> None:
    added = runner.invoke(keys_app, ["add", "example", "--name", "CAD prod"])
    assert added.exit_code == 0, added.output
    key = added.stdout.strip()
    assert agency_for_key(cli_database, key) == "example"
    listed = runner.invoke(keys_app, ["list"])
    assert listed.exit_code == 0 and "example\tCAD prod" in listed.stdout
    assert key not in listed.stdout
    [row] = list_keys(cli_database)
    assert runner.invoke(keys_app, ["revoke", str(row.id)]).exit_code == 0
    assert agency_for_key(cli_database, key) is None
    assert runner.invoke(keys_app, ["revoke", "999"]).exit_code == 2


def test_keys_add_refuses_an_unknown_agency(cli_database: Database) -> None:
    result = runner.invoke(keys_app, ["add", "nowhere", "--name", "x"])
    assert result.exit_code == 2
    assert "unknown agency 'nowhere'" in result.stderr
    assert list_keys(cli_database) == []


def test_deadletter_list_show_and_a_retry_that_is_still_invalid(
    cli_database: Database, tmp_path: Path
) -> None:
    letter_id = dead_letters.keep(cli_database, "/v1/cad/events", "example", "bad JSON", "{")
    listed = runner.invoke(deadletter_app, ["list"])
    assert listed.exit_code == 0 and f"{letter_id}\t" in listed.stdout
    shown = runner.invoke(deadletter_app, ["show", str(letter_id)])
    assert shown.exit_code == 0 and shown.stdout == "{\n" and "bad JSON" in shown.stderr
    fixed = tmp_path / "fixed.json"
    fixed.write_text(json.dumps({"agency": "example", "incident_id": "1"}))
    # Still invalid: refused before Temporal is needed, and the row keeps the new reason.
    retried = runner.invoke(deadletter_app, ["retry", str(letter_id), "--file", str(fixed)])
    assert retried.exit_code == 1
    assert "body.event_type" in retried.stderr
    row = dead_letters.show(cli_database, letter_id)
    assert row is not None and row.status == "open" and "body.event_type" in row.reason
    assert runner.invoke(deadletter_app, ["show", "999"]).exit_code == 2
