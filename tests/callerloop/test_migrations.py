"""The migrations: they build exactly the schema the models describe, on SQLite and on
PostgreSQL, and can be undone and redone."""

from __future__ import annotations

import multiprocessing
import re
from collections.abc import Iterator
from multiprocessing import Queue
from pathlib import Path

import pytest
from sqlalchemy import Column, Engine, MetaData, String, inspect, text
from sqlalchemy.exc import DatabaseError
from sqlmodel import SQLModel

from callerloop.core import schema
from callerloop.core.db import AuditEntry, make_engine, utcnow
from tests.postgres_server import PostgresServer


@pytest.fixture
def empty_engine(empty_database_url: str) -> Iterator[Engine]:
    engine = make_engine(empty_database_url)
    yield engine
    engine.dispose()


def listed(differences: list[object]) -> str:
    return "\n".join(str(difference) for difference in differences)


def table_names(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def test_the_migrations_build_exactly_what_the_models_describe(empty_engine: Engine) -> None:
    schema.upgrade(empty_engine)
    assert schema.current_revision(empty_engine) == schema.head_revision()
    differences = schema.differences(empty_engine)
    assert not differences, (
        "the models and the migrations differ: write a revision "
        f"(`make migration MESSAGE=...`):\n{listed(differences)}"
    )
    assert table_names(empty_engine) == {*SQLModel.metadata.tables, schema.VERSION_TABLE}


def test_the_drift_check_sees_a_model_column_no_migration_added(empty_engine: Engine) -> None:
    schema.upgrade(empty_engine)
    models = MetaData(naming_convention=SQLModel.metadata.naming_convention)
    for table in SQLModel.metadata.tables.values():
        table.to_metadata(models)
    models.tables["outbox"].append_column(Column("drift_probe", String(), nullable=True))
    [difference] = schema.differences(empty_engine, models)
    assert difference[0] == "add_column" and difference[2:4] == (
        "outbox",
        models.tables["outbox"].c.drift_probe,
    )


def test_the_drift_check_sees_a_column_only_the_database_has(empty_engine: Engine) -> None:
    schema.upgrade(empty_engine)
    with empty_engine.begin() as connection:
        connection.execute(text("ALTER TABLE calls ADD COLUMN nickname VARCHAR"))
    [difference] = schema.differences(empty_engine)
    assert difference[0] == "remove_column" and difference[2] == "calls"
    assert difference[3].name == "nickname"


def test_upgrade_downgrade_upgrade(empty_engine: Engine) -> None:
    schema.upgrade(empty_engine)
    schema.downgrade(empty_engine, "base")
    assert table_names(empty_engine) == {schema.VERSION_TABLE}
    assert schema.current_revision(empty_engine) is None
    schema.upgrade(empty_engine)
    assert not schema.differences(empty_engine)
    # The audit log's triggers come back with it.
    with empty_engine.begin() as connection:
        connection.execute(
            AuditEntry.__table__.insert().values(  # type: ignore[attr-defined]
                at=utcnow(), actor="ana", action="test", target="t", detail="", source="cli"
            )
        )
    with pytest.raises(DatabaseError, match="append-only"), empty_engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_log"))


def test_a_second_upgrade_changes_nothing(empty_engine: Engine) -> None:
    schema.upgrade(empty_engine)
    schema.upgrade(empty_engine)
    assert schema.current_revision(empty_engine) == schema.head_revision()


def _upgrade(url: str, upgraded: Queue[bool]) -> None:
    engine = make_engine(url)
    before, after = schema.upgrade(engine)
    upgraded.put(before != after)
    engine.dispose()


def test_processes_upgrading_at_once_take_turns(postgres_server: PostgresServer) -> None:
    """The worker and the web app may start together on a new PostgreSQL database: the
    advisory lock makes one wait for the other, which then finds the schema at head."""
    name = postgres_server.create_database()
    # Forked, so each process starts with callerloop already imported (seconds each).
    context = multiprocessing.get_context("fork")
    upgraded: Queue[bool] = context.Queue()
    url = postgres_server.url(name)
    processes = [context.Process(target=_upgrade, args=(url, upgraded)) for _ in range(3)]
    try:
        for process in processes:
            process.start()
        for process in processes:
            process.join(timeout=120)
        assert [process.exitcode for process in processes] == [0, 0, 0]
        # One built the schema; the others waited, then found it at head.
        assert sorted(upgraded.get(timeout=5) for _ in processes) == [False, False, True]
        engine = make_engine(postgres_server.url(name))
        assert schema.current_revision(engine) == schema.head_revision()
        assert not schema.differences(engine)
        engine.dispose()
    finally:
        postgres_server.drop_database(name)


def test_a_database_made_before_migrations_is_refused_with_what_to_do(
    empty_engine: Engine,
) -> None:
    SQLModel.metadata.create_all(empty_engine)
    with pytest.raises(schema.SchemaError, match="no migration history") as refused:
        schema.upgrade(empty_engine)
    assert "callerloop db stamp" in str(refused.value)


def test_an_unreachable_database_is_named_with_its_password_masked() -> None:
    engine = make_engine("postgresql://ana:s3cret@127.0.0.1:1/callerloop")
    with pytest.raises(schema.SchemaError, match="cannot reach the database") as refused:
        schema.upgrade(engine)
    assert "postgresql+psycopg://ana:***@127.0.0.1:1/callerloop" in str(refused.value)
    assert "s3cret" not in str(refused.value)


def test_revisions_form_one_numbered_line_each_with_a_downgrade() -> None:
    scripts = schema.scripts()
    assert len(scripts.get_heads()) == 1, "two heads: merge them or renumber one revision"
    chain = list(reversed(list(scripts.walk_revisions())))
    assert [script.revision for script in chain] == [f"{n:04d}" for n in range(1, len(chain) + 1)]
    for script in chain:
        assert script.path is not None
        assert Path(script.path).name.startswith(f"{script.revision}_")
        source = Path(script.path).read_text(encoding="utf-8")
        assert re.search(r"def downgrade\(\) -> None:\n(?!    pass\n)", source), script.path
