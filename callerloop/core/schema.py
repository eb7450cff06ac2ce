"""The database schema and its history: Alembic migrations in `callerloop/core/migrations`.

Every database — the SQLite file of `make run`, each test's database, PostgreSQL in
production — gets its tables the same way: `upgrade` to the newest revision (`head`).
`Database.create_schema` and `callerloop db upgrade` both call it; it does nothing when
the schema is already there. A new revision: change the models in `callerloop/core/db.py`, then
`make migration MESSAGE="what changed"` and review the file it writes.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, MetaData, inspect, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.type_api import TypeEngine
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

from callerloop.core.column_types import UTCDateTime

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSIONS = MIGRATIONS / "versions"
# pg_advisory_xact_lock key that serialises concurrent upgrades ("callerlp" in ASCII).
MIGRATION_LOCK_ID = 0x63616C6C65726C70
VERSION_TABLE = "alembic_version"
T = TypeVar("T")
# Alembic's `op` and `context` are module globals: one command at a time per process.
_ALEMBIC_IN_USE = threading.Lock()


class SchemaError(RuntimeError):
    """The database cannot be brought to the expected schema; the message says why."""


def masked_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    # 0001_baseline.py, 0002_….py: revisions sort in the order they apply.
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    config.attributes["connection"] = connection
    return config


def scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def head_revision() -> str:
    head = scripts().get_current_head()
    assert head is not None, f"no migrations in {VERSIONS}"
    return head


def is_known_revision(revision: str) -> bool:
    try:
        return scripts().get_revision(revision) is not None
    except CommandError:
        return False


def _render_type(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Migrations name plain SQLAlchemy types, so they never import callerloop's code
    (a revision must keep meaning what it meant when it was written)."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if type_ == "type" and isinstance(obj, AutoString):
        return "sa.String()" if obj.length is None else f"sa.String(length={obj.length})"
    return False


def _compare_type(
    context: MigrationContext,
    inspected_column: Any,
    metadata_column: Any,
    inspected_type: TypeEngine[Any],
    metadata_type: TypeEngine[Any],
) -> bool | None:
    """SQLite keeps no time zone in a column's type: a DATETIME column holds what
    UTCDateTime writes there, so it is not a difference."""
    if context.dialect.name == "sqlite" and isinstance(metadata_type, UTCDateTime):
        return inspected_type._type_affinity is not metadata_type.impl._type_affinity
    return None  # Alembic's own comparison


def _include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    return not (type_ == "table" and name == VERSION_TABLE)


def comparison_options() -> dict[str, Any]:
    """How autogenerate and the drift check compare the models with a database."""
    return {
        "compare_type": _compare_type,
        "render_item": _render_type,
        "render_as_batch": True,  # SQLite alters a table by copying it: batch mode does that
        "include_name": _include_name,
        "user_module_prefix": "sa.",
    }


def _reason(error: DBAPIError) -> str:
    return str(error.orig).strip().splitlines()[0] if error.orig else str(error)


def _connect(engine: Engine) -> Connection:
    try:
        return engine.connect()
    except DBAPIError as error:
        raise SchemaError(
            f"cannot reach the database at {masked_url(engine)}: {_reason(error)}"
        ) from error


def _run(engine: Engine, what: str, action: Callable[[Config], T]) -> T:
    """`action` with Alembic's configuration, on one connection in one transaction
    (PostgreSQL's DDL is transactional: a failed upgrade leaves the schema as it was)."""
    with _connect(engine) as connection, _ALEMBIC_IN_USE:
        try:
            with connection.begin():
                if connection.dialect.name == "postgresql":
                    # Processes starting together (worker, web app) take turns: the second
                    # finds the schema at head. Released when the transaction ends.
                    connection.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})"))
                return action(_config(connection))
        except DBAPIError as error:
            raise SchemaError(
                f"cannot {what} the database at {masked_url(engine)}: {_reason(error)}"
            ) from error
        except CommandError as error:  # e.g. a revision this code does not know
            raise SchemaError(
                f"cannot {what} the database at {masked_url(engine)}: {error}"
            ) from error


def _revision_on(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _refuse_unversioned(connection: Connection) -> None:
    """A database with callerloop's tables but no migration history was made before
    migrations existed: upgrading would fail on the first table that is already there."""
    tables = set(inspect(connection).get_table_names())
    if VERSION_TABLE not in tables and tables & set(SQLModel.metadata.tables):
        raise SchemaError(
            f"the database at {masked_url(connection.engine)} has callerloop's tables but no "
            "migration history (it was made before migrations). A local `make run` database "
            "can be deleted; otherwise check it matches the baseline revision and run "
            "`callerloop db stamp 0001`."
        )


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Bring the schema to `revision`; the revisions before and after (None: empty)."""

    def run(config: Config) -> tuple[str | None, str | None]:
        connection: Connection = config.attributes["connection"]
        _refuse_unversioned(connection)
        before = _revision_on(connection)
        command.upgrade(config, revision)
        return before, _revision_on(connection)

    return _run(engine, "upgrade", run)


def downgrade(engine: Engine, revision: str) -> str | None:
    """Undo revisions back to `revision`; the revision the database is at now."""

    def run(config: Config) -> str | None:
        command.downgrade(config, revision)
        return _revision_on(config.attributes["connection"])

    return _run(engine, "downgrade", run)


def stamp(engine: Engine, revision: str) -> None:
    """Record a revision as applied without running it (a database made another way)."""
    _run(engine, "stamp", lambda config: command.stamp(config, revision))


def current_revision(engine: Engine) -> str | None:
    return _run(engine, "read the revision of", lambda c: _revision_on(c.attributes["connection"]))


def differences(engine: Engine, models: MetaData | None = None) -> list[Any]:
    """What autogenerate would write: the models (`SQLModel.metadata`) against the
    database's tables. Empty when the migrations describe the models exactly."""
    with _connect(engine) as connection:
        context = MigrationContext.configure(connection, opts=comparison_options())
        return list(compare_metadata(context, models or SQLModel.metadata))


def next_revision_id() -> str:
    numbers = [int(m.group(1)) for p in VERSIONS.glob("*.py") if (m := re.match(r"(\d+)_", p.name))]
    return f"{max(numbers, default=0) + 1:04d}"


def new_revision(engine: Engine, message: str) -> Path:
    """Write the next revision, autogenerated from what the models have that `engine`'s
    database (at head) has not. Review it before committing: autogenerate cannot see
    renames, data changes or the audit log's triggers."""

    def generate(config: Config) -> Path:
        script = command.revision(
            config, message=message, autogenerate=True, rev_id=next_revision_id()
        )
        assert script is not None and not isinstance(script, list)
        return Path(script.path)

    return _run(engine, "compare the models with", generate)
