"""Database commands: the schema's migrations (Alembic) against the deployment's database.

    callerloop db upgrade [--revision REV]     bring the schema to REV (default: newest)
    callerloop db current                      which revision the database is at
    callerloop db check                        models and migrations agree (exit 1 if not)
    callerloop db downgrade REV                undo revisions back to REV (drops data)
    callerloop db stamp REV                    record REV as applied without running it
    callerloop db revision -m MESSAGE          write the next revision (in a checkout)

The database is CALLERLOOP_DATABASE_URL's: SQLite or PostgreSQL.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar

import typer
from sqlalchemy import Engine

from callerloop.core import schema
from callerloop.core.db import make_engine
from callerloop.core.settings import get_settings

db_app = typer.Typer(help="The database schema and its migrations.", no_args_is_help=True)

T = TypeVar("T")


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@contextmanager
def _engine() -> Iterator[Engine]:
    engine = make_engine(get_settings().database_url)
    try:
        yield engine
    finally:
        engine.dispose()


def _or_fail(action: Callable[[], T]) -> T:
    try:
        return action()
    except schema.SchemaError as error:
        _fail(str(error), 1)


def _known(revision: str) -> None:
    """Refuse a revision that is not in callerloop/core/migrations (typos, another branch's)."""
    relative = revision.startswith(("+", "-")) or revision in ("head", "base", "heads")
    if not relative and not schema.is_known_revision(revision):
        _fail(f"no revision {revision!r} in {schema.VERSIONS}", 2)


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
) -> None:
    """Bring the database's schema to REVISION (the newest by default); creates every
    table in an empty database. Safe to run again: an up-to-date schema is left as is."""
    _known(revision)
    with _engine() as engine:
        before, after = _or_fail(lambda: schema.upgrade(engine, revision))
        where = schema.masked_url(engine)
    if before == after:
        typer.echo(f"{where}: already at {after}")
    else:
        typer.echo(f"{where}: upgraded from {before or 'an empty database'} to {after}")


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision: an id, -1, or base.")],
) -> None:
    """Undo revisions back to REVISION. Dropped tables lose their data: back up first."""
    _known(revision)
    with _engine() as engine:
        after = _or_fail(lambda: schema.downgrade(engine, revision))
        typer.echo(f"{schema.masked_url(engine)}: now at {after or 'base (no tables)'}")


@db_app.command("current")
def db_current() -> None:
    """The database's revision, and whether it is the newest."""
    head = schema.head_revision()
    with _engine() as engine:
        current = _or_fail(lambda: schema.current_revision(engine))
        where = schema.masked_url(engine)
    if current == head:
        typer.echo(f"{where}: {current} (newest)")
    elif current is not None and not schema.is_known_revision(current):
        _fail(f"{where} is at {current}, a revision this callerloop does not have (newer?)", 1)
    else:
        typer.echo(f"{where}: {current or 'empty'}; newest is {head}: run `callerloop db upgrade`")


@db_app.command("check")
def db_check() -> None:
    """The database is at the newest revision and its tables match the models; exit 1
    listing the differences otherwise (a model changed without a migration)."""
    head = schema.head_revision()
    with _engine() as engine:
        current = _or_fail(lambda: schema.current_revision(engine))
        if current != head:
            _fail(f"{schema.masked_url(engine)} is at {current or 'empty'}, not {head}", 1)
        differences = _or_fail(lambda: schema.differences(engine))
        where = schema.masked_url(engine)
    if differences:
        listed = "\n".join(f"  {difference}" for difference in differences)
        _fail(f"the models and the migrations differ at {where}:\n{listed}", 1)
    typer.echo(f"{where}: at {head}, matches the models")


@db_app.command("stamp")
def db_stamp(
    revision: Annotated[str, typer.Argument(help="The revision the schema already has.")],
) -> None:
    """Record REVISION as applied without running it: for a database whose schema was
    made another way and checked to match (`callerloop db check` tells)."""
    _known(revision)
    with _engine() as engine:
        _or_fail(lambda: schema.stamp(engine, revision))
        typer.echo(f"{schema.masked_url(engine)}: stamped {revision}")


@db_app.command("revision")
def db_revision(
    message: Annotated[str, typer.Option("-m", "--message", help="What the revision changes.")],
) -> None:
    """Write the next revision into callerloop/core/migrations/versions, autogenerated from
    what the models have that the migrations have not (compared on a scratch SQLite
    database, not the deployment's). Review it: autogenerate misses renames, data moves
    and triggers."""
    with tempfile.TemporaryDirectory() as scratch:
        engine = make_engine(f"sqlite:///{Path(scratch) / 'head.db'}")
        try:
            _or_fail(lambda: schema.upgrade(engine))
            if not _or_fail(lambda: schema.differences(engine)):
                _fail("the models match the migrations: nothing to write", 1)
            path = _or_fail(lambda: schema.new_revision(engine, message))
        finally:
            engine.dispose()
    typer.echo(f"wrote {path}: review it, then `callerloop db upgrade`")
