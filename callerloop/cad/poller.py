"""One poll of a CAD reporting database (`[cad.poll]`): the rows changed since the
watermark, told to the calls (callerloop.cad.telling).

Read-only on the CAD side: one SELECT of the mapped columns, the watermark column at least
the watermark less the overlap, oldest change first, and a SELECT of the watermark's
maximum (to see a clock stepped back). The SQL is SQLAlchemy Core, so it is written for
the database's own dialect: SQL Server (`mssql+pyodbc`), PostgreSQL, SQLite, …
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from callerloop.cad.delivery import POLLED_ROW as DEAD_LETTER_ENDPOINT
from callerloop.cad.export_rows import REQUIRED_COLUMNS, RowReading, row_reading, zoned
from callerloop.cad.telling import Deliver, RowTeller, Tally
from callerloop.core.agency_config import AgencyConfig, CadPoll
from callerloop.core.db import Database

__all__ = ["DEAD_LETTER_ENDPOINT", "Poll", "PollOutcome", "poll_statement", "source_name"]


def source_name(agency_id: str) -> str:
    return f"poll:{agency_id}"


@dataclass
class PollOutcome(Tally):
    watermark: str | None = None  # the watermark's value after this poll, as text
    newest_change: datetime | None = None  # of the rows read (for the lag)
    notes: list[str] = field(default_factory=list)  # a clock stepped back, …
    # Set by the first poll of a source that starts "now": calls created before are
    # never told, however they change later (they were taken before go-live).
    calls_from: datetime | None = None


def poll_statement(
    config: CadPoll, columns: Sequence[str], *, every_row: bool = False
) -> sa.Select[Any]:
    """SELECT the columns (and the watermark) changed at or after `:since` (or of every
    row), oldest change first."""
    names = sorted({*columns, config.watermark})
    source = _source(config, names)
    watermark = source.c[config.watermark]
    statement = sa.select(*(source.c[name] for name in names)).order_by(watermark)
    return statement if every_row else statement.where(watermark >= sa.bindparam("since"))


def max_statement(config: CadPoll) -> sa.Select[Any]:
    source = _source(config, [config.watermark])
    return sa.select(sa.func.max(source.c[config.watermark]))


def _source(config: CadPoll, names: Sequence[str]) -> sa.TableClause | sa.Subquery:
    """The table or query, its watermark typed so every dialect binds and returns it as a
    time or a number (SQLite keeps times as text)."""
    watermark_type = sa.Integer() if config.watermark_kind == "id" else sa.DateTime()
    columns = [
        sa.column(name, watermark_type) if name == config.watermark else sa.column(name)
        for name in names
    ]
    if config.table is not None:
        schema, _, table = config.table.rpartition(".")
        return sa.table(table, *columns, schema=schema or None)
    assert config.query is not None  # the config holds exactly one
    return sa.text(config.query).columns(*columns).subquery("cad_rows")


class Poll:
    """Polls of one agency's CAD database: SQL on `engine`, snapshots in `db`."""

    def __init__(self, agency: AgencyConfig, engine: Engine, db: Database) -> None:
        if agency.cad.poll is None:
            raise ValueError(f"agency {agency.id!r} has no [cad.poll]")
        self.agency = agency
        self.config = agency.cad.poll
        self.engine = engine
        self.db = db
        self.reading: RowReading = row_reading(agency)
        self.teller = RowTeller(
            agency, db, self.reading, source_name(agency.id), DEAD_LETTER_ENDPOINT
        )
        mapped = [name for key, name in self.reading.columns.items() if _mapped(agency, key)]
        self.changed_rows = poll_statement(self.config, mapped)
        self.every_row = poll_statement(self.config, mapped, every_row=True)

    # --- reading --------------------------------------------------------------------

    def read_changed(
        self, watermark: str | None, started: bool
    ) -> tuple[list[dict[str, Any]], str | None, list[str]]:
        """The rows changed since the watermark (less the overlap), the watermark to
        start from, and notes on what was odd. Before the first poll of a source that
        starts "now", no row: the watermark becomes the newest change."""
        notes: list[str] = []
        with self.engine.connect() as connection:
            _bound_statements(connection, self.config.query_timeout)
            newest = connection.execute(max_statement(self.config)).scalar()
            if not started and self.config.start == "now":
                return [], _as_text(newest), notes
            since = self._since(watermark)
            if since is not None and newest is not None and _compare(newest, since) < 0:
                notes.append(
                    f"the newest change ({_as_text(newest)}) is older than the watermark "
                    f"({watermark}): the CAD's clock stepped back; reading on from it"
                )
                watermark = _as_text(newest)
                since = self._since(watermark)
            if since is None:
                result = connection.execute(self.every_row)
            else:
                result = connection.execute(self.changed_rows, {"since": since})
            rows = [dict(row) for row in result.mappings()]
        return rows, watermark, notes

    def _since(self, watermark: str | None) -> Any:
        if watermark is None:
            return None
        if self.config.watermark_kind == "id":
            return int(watermark)
        return datetime.fromisoformat(watermark) - self.config.overlap

    # --- turning rows into events -----------------------------------------------------

    async def run(
        self,
        watermark: str | None,
        calls_from: datetime | None,
        deliver: Deliver,
        *,
        started: bool = True,
    ) -> PollOutcome:
        """One poll: read, compare, deliver each changed row's events, save its snapshot.
        `deliver` returns False for an event its call, already over, did not apply. Calls
        created before `calls_from` are not told. The database work runs in threads: the
        event loop is the worker's."""
        rows, watermark, notes = await asyncio.to_thread(self.read_changed, watermark, started)
        outcome = PollOutcome(watermark=watermark, notes=notes)
        if not started and self.config.start == "now":
            outcome.calls_from = self._go_live(watermark)
        texts: list[dict[str | None, object]] = [
            {name: _as_text(value) or "" for name, value in row.items()} for row in rows
        ]
        stamps = [row[self.config.watermark] for row in rows]
        await self.teller.tell(
            texts,
            lambda index, call: self._changed_at(stamps[index], call.created),
            deliver,
            outcome,
            calls_from=calls_from,
        )
        for stamp in stamps:
            outcome.watermark = _newest(outcome.watermark, stamp, self.config)
            if isinstance(stamp, datetime):
                moment = zoned(stamp, self.reading.zone)
                if outcome.newest_change is None or moment > outcome.newest_change:
                    outcome.newest_change = moment
        return outcome

    def _go_live(self, newest: str | None) -> datetime | None:
        """When a poller that starts "now" went live, by the CAD's clock where it can
        tell (the newest change then), else the worker's; None when the table was empty
        (no call had been taken)."""
        if newest is None:
            return None
        if self.config.watermark_kind == "time":
            return zoned(datetime.fromisoformat(newest), self.reading.zone)
        return datetime.now(UTC)

    def _changed_at(self, value: object, created: datetime) -> datetime:
        if isinstance(value, datetime):
            return zoned(value, self.reading.zone)
        if isinstance(value, str) and self.config.watermark_kind == "time":
            return zoned(datetime.fromisoformat(value), self.reading.zone)
        return max(created, datetime.now(UTC))  # a change number tells no time: now


def _bound_statements(connection: sa.Connection, timeout: timedelta) -> None:
    """A query slower than `timeout` is cancelled by the database, and the poll reports it
    like an outage (tried again at the next interval), instead of holding the poller for
    as long as the query runs. PostgreSQL and SQL Server say so per session; SQLite reads
    a local file and has no such setting."""
    milliseconds = max(1, int(timeout.total_seconds() * 1000))
    dialect = connection.dialect.name
    if dialect == "postgresql":
        connection.exec_driver_sql(f"SET statement_timeout = {milliseconds}")
    elif dialect == "mssql":
        raw: Any = connection.connection.driver_connection
        if raw is not None and hasattr(raw, "timeout"):  # pyodbc: seconds, per connection
            raw.timeout = max(1, milliseconds // 1000)


def _mapped(agency: AgencyConfig, key: str) -> bool:
    """A logical column the poll selects: the ones the agency file names, and the
    required ones (named as themselves when not mapped)."""
    return key in agency.replay.columns or key in REQUIRED_COLUMNS


def _as_text(value: object) -> str | None:
    """A database value as an export would write it."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "Y" if value else "N"
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return str(int(value))
    return str(value)


def _compare(a: Any, b: Any) -> int:
    try:
        return int(a > b) - int(a < b)
    except TypeError:  # naive against aware: compare as UTC
        return _compare(_utc(a), _utc(b))


def _utc(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _newest(watermark: str | None, value: object, config: CadPoll) -> str | None:
    if value is None:
        return watermark
    if watermark is None:
        return _as_text(value)
    current: Any = (
        int(watermark) if config.watermark_kind == "id" else datetime.fromisoformat(watermark)
    )
    return _as_text(value) if _compare(value, current) > 0 else watermark
