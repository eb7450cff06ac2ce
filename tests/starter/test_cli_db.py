"""`callerloop db …` against the deployment's database (CALLERLOOP_DATABASE_URL), on
SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from typer.testing import CliRunner, Result

from callerloop.core import schema
from callerloop.core.settings import get_settings
from starter.cli import app


@pytest.fixture
def deployment(empty_database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("CALLERLOOP_DATABASE_URL", empty_database_url)
    get_settings.cache_clear()
    yield empty_database_url
    get_settings.cache_clear()


def db(*arguments: str) -> Result:
    return CliRunner().invoke(app, ["db", *arguments])


def test_upgrade_creates_the_schema_once_and_check_agrees(deployment: str) -> None:
    head = schema.head_revision()
    assert "empty; newest is" in db("current").output
    first = db("upgrade")
    assert first.exit_code == 0, first.output
    assert f"upgraded from an empty database to {head}" in first.output
    again = db("upgrade")
    assert again.exit_code == 0 and f"already at {head}" in again.output
    assert f"{head} (newest)" in db("current").output
    checked = db("check")
    assert checked.exit_code == 0 and "matches the models" in checked.output


def test_check_fails_on_a_database_that_is_behind(deployment: str) -> None:
    checked = db("check")
    assert checked.exit_code == 1
    assert f"is at empty, not {schema.head_revision()}" in checked.output


def test_downgrade_to_base_and_back(deployment: str) -> None:
    assert db("upgrade").exit_code == 0
    down = db("downgrade", "base")
    assert down.exit_code == 0 and "now at base (no tables)" in down.output
    assert db("upgrade").exit_code == 0
    assert db("check").exit_code == 0


def test_an_unknown_revision_is_refused(deployment: str) -> None:
    refused = db("upgrade", "--revision", "9999")
    assert refused.exit_code == 2 and "no revision '9999'" in refused.output


def test_an_unreachable_database_is_named_with_its_password_masked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CALLERLOOP_DATABASE_URL", "postgresql://ops:hunter2@127.0.0.1:1/prod")
    get_settings.cache_clear()
    try:
        refused = db("upgrade")
    finally:
        get_settings.cache_clear()
    assert refused.exit_code == 1
    assert "cannot reach the database at postgresql+psycopg://ops:***@127.0.0.1:1/prod" in (
        refused.output
    )
    assert "hunter2" not in refused.output


def test_revision_writes_nothing_when_the_models_match() -> None:
    refused = db("revision", "-m", "nothing changed")
    assert refused.exit_code == 1 and "nothing to write" in refused.output
