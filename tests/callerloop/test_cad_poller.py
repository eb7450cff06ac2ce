"""The CAD database poller's polls, against real databases (SQLite and PostgreSQL): rows a
CAD inserts and changes become exactly the events a CAD would have sent, once each, and
nothing a poll reads again (an overlap, a retry, a second poller) is sent twice."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import select

from callerloop.cad.poller import Poll, poll_statement
from callerloop.core.agency_config import AgencyConfig, CadPoll
from callerloop.core.db import Database, DeadLetter
from tests.cad_database import COLUMNS, MINUTE, TABLE, CadTable, call_row, polled_agency
from workflows.model import CadEvent, CadEventType

T = datetime(2025, 9, 1, 10, 0)  # naive: the agency's own time, as CAD databases keep it


@pytest.fixture(params=["sqlite", "postgresql"])
def cad_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """An empty CAD reporting database on each dialect the poller is tested against."""
    if request.param == "sqlite":
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'cad.db'}")
        yield engine
        engine.dispose()
        return
    server = request.getfixturevalue("postgres_server")
    name = server.create_database()
    engine = sa.create_engine(server.url(name))
    yield engine
    engine.dispose()
    server.drop_database(name)


class Poller:
    """Polls as the poller workflow runs them: each from the last one's watermark."""

    def __init__(self, agency: AgencyConfig, engine: sa.Engine, db: Database) -> None:
        self.poll = Poll(agency, engine, db)
        self.watermark: str | None = None
        self.started = False
        self.calls_from: datetime | None = None
        self.notes: list[str] = []

    async def __call__(self) -> list[CadEvent]:
        delivered: list[CadEvent] = []

        async def deliver(event: CadEvent) -> bool:
            delivered.append(event)
            return True

        outcome = await self.poll.run(
            self.watermark, self.calls_from, deliver, started=self.started
        )
        self.watermark, self.started = outcome.watermark, True
        self.calls_from = self.calls_from or outcome.calls_from
        self.notes.extend(outcome.notes)
        return delivered


def kinds(events: list[CadEvent]) -> list[tuple[str, CadEventType]]:
    return [(event.incident_id, event.event_type) for event in events]


@pytest.mark.databases("sqlite")
async def test_a_call_entered_then_changed_is_told_as_the_cad_would(
    cad_engine: sa.Engine, database: Database
) -> None:
    cad = CadTable(cad_engine)
    poll = Poller(polled_agency(), cad_engine, database)
    cad.insert(T, **call_row("25-000001", T))

    [created] = await poll()
    assert (created.event_type, created.call_type, created.priority) == (
        CadEventType.CREATED,
        "THEFT REPORT",
        3,
    )
    assert created.caller_phone == "+17035550142" and created.case_number == "25-000001"

    cad.update("25-000001", T + 5 * MINUTE, dispatched=T + 5 * MINUTE)
    [assigned] = await poll()
    assert assigned.event_type is CadEventType.ASSIGNED
    assert assigned.occurred_at.replace(tzinfo=None) == T + 5 * MINUTE

    cad.update("25-000001", T + 9 * MINUTE, call_type="DOMESTIC DISTURBANCE")
    [updated] = await poll()
    assert updated.event_type is CadEventType.UPDATED
    assert (updated.call_type, updated.priority) == ("DOMESTIC DISTURBANCE", None)
    assert updated.occurred_at.replace(tzinfo=None) == T + 9 * MINUTE  # when it changed

    cad.update("25-000001", T + 10 * MINUTE, priority=2)
    [escalated] = await poll()
    assert (escalated.call_type, escalated.priority) == (None, 2)


@pytest.mark.databases("sqlite")
async def test_reading_the_same_rows_again_sends_nothing(
    cad_engine: sa.Engine, database: Database
) -> None:
    """A second poll over the same rows (the overlap), a poller started again from no
    watermark, and a second poller of the same source: no event twice."""
    cad = CadTable(cad_engine)
    agency = polled_agency()
    for n in range(3):
        cad.insert(T + n * MINUTE, **call_row(f"25-00001{n}", T + n * MINUTE))
    first = Poller(agency, cad_engine, database)
    assert len(await first()) == 3

    assert await first() == []  # the overlap reads all three again
    assert await Poller(agency, cad_engine, database)() == []  # from no watermark at all


async def test_a_reopened_call_is_reopened_then_closed_again(
    cad_engine: sa.Engine, database: Database
) -> None:
    cad = CadTable(cad_engine)
    poll = Poller(polled_agency(), cad_engine, database)
    cad.insert(T, **call_row("25-000020", T, dispatched=T + MINUTE))
    cad.update("25-000020", T + 30 * MINUTE, first_closed=T + 30 * MINUTE, disposition="REPORT")
    assert kinds(await poll()) == [
        ("25-000020", CadEventType.CREATED),
        ("25-000020", CadEventType.ASSIGNED),
        ("25-000020", CadEventType.CLEARED),
    ]

    cad.update("25-000020", T + 50 * MINUTE, reopened="Y")
    [reopened] = await poll()
    assert reopened.event_type is CadEventType.REOPENED
    assert reopened.occurred_at.replace(tzinfo=None) == T + 50 * MINUTE

    cad.update("25-000020", T + 80 * MINUTE, final_closed=T + 80 * MINUTE)
    [closed] = await poll()  # the final close, and no second reopen
    assert closed.event_type is CadEventType.CLEARED
    assert closed.occurred_at.replace(tzinfo=None) == T + 80 * MINUTE
    assert await poll() == []


@pytest.mark.databases("sqlite")
async def test_event_ids_come_from_what_the_row_says_so_a_lost_snapshot_sends_the_same_ids(
    cad_engine: sa.Engine, tmp_path: Path, database: Database
) -> None:
    """Polled into two application databases (one lost its snapshots): the same ids, so
    the calls' workflows apply each event once whichever poll delivered it."""
    cad = CadTable(cad_engine)
    agency = polled_agency()
    cad.insert(T, **call_row("25-000030", T, dispatched=T + 2 * MINUTE))
    other = Database(f"sqlite:///{tmp_path / 'other.db'}")
    other.create_schema()
    try:
        once = await Poller(agency, cad_engine, database)()
        again = await Poller(agency, cad_engine, other)()
    finally:
        other.dispose()
    assert [e.event_id for e in once] == [e.event_id for e in again]
    assert len({e.event_id for e in once}) == 2


@pytest.mark.databases("sqlite")
async def test_a_bad_row_is_a_dead_letter_naming_its_column_and_stops_nothing(
    cad_engine: sa.Engine, database: Database
) -> None:
    cad = CadTable(cad_engine)
    poll = Poller(polled_agency(), cad_engine, database)
    cad.insert(T, **call_row("25-000040", T, call_type=None))
    cad.insert(T + MINUTE, **call_row("25-000041", T + MINUTE))

    assert kinds(await poll()) == [("25-000041", CadEventType.CREATED)]
    assert await poll() == []  # read again in the overlap: not kept twice
    with database.session() as session:
        [letter] = session.exec(select(DeadLetter)).all()
    assert letter.endpoint == "cad-poll" and letter.agency == "testville"
    assert "25-000040" in letter.reason and COLUMNS["call_type"] in letter.reason
    assert "call type is missing" in letter.reason
    assert json.loads(letter.body)[COLUMNS["incident_id"]] == "25-000040"

    cad.update("25-000040", T + 20 * MINUTE, call_type="NOISE COMPLAINT")  # fixed in CAD
    [created] = await poll()
    assert (created.incident_id, created.call_type) == ("25-000040", "NOISE COMPLAINT")


@pytest.mark.databases("sqlite")
async def test_a_poller_starting_now_tells_only_what_changes_after_it_starts(
    cad_engine: sa.Engine, database: Database
) -> None:
    cad = CadTable(cad_engine)
    cad.insert(T, **call_row("25-000050", T))  # taken before go-live: never texted
    poll = Poller(polled_agency(start="now"), cad_engine, database)
    assert await poll() == []
    cad.insert(T + 10 * MINUTE, **call_row("25-000051", T + 10 * MINUTE))
    cad.update("25-000050", T + 11 * MINUTE, dispatched=T + 11 * MINUTE)
    assert kinds(await poll()) == [("25-000051", CadEventType.CREATED)]


@pytest.mark.databases("sqlite")
async def test_a_clock_stepped_back_is_reported_and_its_rows_read(
    cad_engine: sa.Engine, database: Database
) -> None:
    cad = CadTable(cad_engine)
    poll = Poller(polled_agency(), cad_engine, database)
    cad.insert(T + 60 * MINUTE, **call_row("25-000060", T))
    assert len(await poll()) == 1
    # The CAD server's clock goes back two hours: its next change is stamped before the
    # watermark less the overlap.
    cad.update("25-000060", T - 60 * MINUTE, dispatched=T + 5 * MINUTE)
    assert kinds(await poll()) == [("25-000060", CadEventType.ASSIGNED)]
    assert any("clock stepped back" in note for note in poll.notes), poll.notes


@pytest.mark.databases("sqlite")
async def test_a_change_stamped_inside_the_overlap_is_not_lost(
    cad_engine: sa.Engine, database: Database
) -> None:
    """A CAD that commits a change after a later one was read (its stamp is older than the
    watermark): read in the overlap."""
    cad = CadTable(cad_engine)
    poll = Poller(polled_agency(overlap="PT5M"), cad_engine, database)
    cad.insert(T + 10 * MINUTE, **call_row("25-000070", T + 10 * MINUTE))
    assert len(await poll()) == 1
    cad.insert(T + 7 * MINUTE, **call_row("25-000071", T + 7 * MINUTE))  # committed late
    assert kinds(await poll()) == [("25-000071", CadEventType.CREATED)]


def in_dialect(statement: sa.Select[Any], name: str) -> str:
    """The statement's SQL as SQLAlchemy writes it for that database (no driver needed)."""
    return str(statement.compile(dialect=sa.engine.make_url(f"{name}://").get_dialect()()))


def test_the_poll_is_written_for_sql_server_as_for_postgresql() -> None:
    """Most CAD reporting databases are SQL Server: the same statement, in its dialect."""
    config = CadPoll(table=f"dbo.{TABLE}", watermark="LastChanged")
    statement = poll_statement(config, ["Master_Incident_Number", "Problem"])
    on_sql_server = in_dialect(statement, "mssql")
    assert "FROM dbo.[Response_Master_Incident]" in on_sql_server
    assert "[LastChanged] >= :since" in on_sql_server or "[LastChanged] >= ?" in on_sql_server
    assert "ORDER BY dbo.[Response_Master_Incident].[LastChanged]" in on_sql_server
    on_postgresql = in_dialect(statement, "postgresql")
    assert 'FROM dbo."Response_Master_Incident"' in on_postgresql

    by_query = CadPoll(query="SELECT * FROM Response_Master_Incident", watermark="LastChanged")
    wrapped = in_dialect(poll_statement(by_query, ["Problem"]), "mssql")
    assert "FROM (SELECT * FROM Response_Master_Incident) AS cad_rows" in wrapped


def test_the_agency_file_gives_one_source_and_a_positive_interval() -> None:
    with pytest.raises(ValueError, match="exactly one of table and query"):
        CadPoll(watermark="LastChanged")
    with pytest.raises(ValueError, match="exactly one of table and query"):
        CadPoll(table="t", query="SELECT 1", watermark="LastChanged")
    with pytest.raises(ValueError, match="interval must be positive"):
        CadPoll(table="t", watermark="LastChanged", interval=timedelta(0))
    with pytest.raises(ValueError, match="should match pattern"):
        CadPoll(table="t; DROP TABLE x", watermark="LastChanged")


@pytest.mark.databases("sqlite")
async def test_a_query_slower_than_its_timeout_is_cancelled_by_the_database(
    request: pytest.FixtureRequest, database: Database
) -> None:
    """Cancelled and raised (the poll activity reports it and polls again at the next
    interval), not waited for: a query may not hold the poller for as long as it runs."""
    server = request.getfixturevalue("postgres_server")
    name = server.create_database()
    engine = sa.create_engine(server.url(name))
    try:
        CadTable(engine).insert(T, **call_row("25-000080", T))
        slow = polled_agency(
            table=None,
            query=f'SELECT * FROM "{TABLE}" WHERE pg_sleep(5) IS NOT NULL',
            query_timeout="PT0.2S",
        )
        with pytest.raises(sa.exc.OperationalError, match="statement timeout"):
            await Poller(slow, engine, database)()
        assert await Poller(polled_agency(), engine, database)() != []  # the table is fine
    finally:
        engine.dispose()
        server.drop_database(name)
