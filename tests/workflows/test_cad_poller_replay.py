"""A real day of the CAD export, told by polling a CAD database instead of replayed: the
same texts, with the poller's worker and the database restarted on the way, and a second
poller over the same rows sending nothing.

A CAD simulator loads the day into a PostgreSQL table shaped like the CAD's reporting table
and applies each call's changes in time order, as the CAD would: an INSERT when the call
is created, then UPDATEs of the status times, the close and its disposition, the reopen
flag and the final close, each stamped in `LastChanged`. The poller runs throughout, on a
worker of its own; the calls' workflows only get their worker once everything is told, as
in the ingest test (tests/web/test_ingest_live.py), so what each call texts cannot depend
on how fast one path delivered compared with the other."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from sqlmodel import select
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from activities.cad_polling import CadPollActivities
from callerloop.cad.client import CadClient
from callerloop.cad.replay import ReplayCall, parse_cad_export
from callerloop.core.agency_config import AgencyConfig, CadPoll, load_agency_file
from callerloop.core.db import Database, OutboxMessage
from callerloop.core.settings import PROJECT_ROOT, Settings
from tests.cad_database import WATERMARK, CadTable
from tests.conftest import start_dev_server, start_harness
from tests.factories import RecordingProvider
from tests.postgres_server import PostgresServer, server_or_skip
from tests.requirements import real_cad_export
from tests.web.test_ingest_live import (
    TIME_SCALE,
    OutboxKey,
    all_finished,
    quick_lifecycle,
    quietest_day,
    replayed_outbox,
    start_of,
)
from worker import workflow_runner
from workflows.cad_poller import CadPollerWorkflow
from workflows.model import CadEvent, CadEventType, LineType, PollerInput, PollerStatus

pytestmark = pytest.mark.slow

POLL_INTERVAL = timedelta(milliseconds=200)
CHANGES_PER_STEP = 10  # the simulator's pace: this many changes every STEP_SECONDS
STEP_SECONDS = 0.1
CAUGHT_UP_TIMEOUT = 180.0
# Beside the export's columns: the caller's number and language, which a CAD database
# holds and the export does not (the simulator writes the replay's fictional ones).
CALLER_COLUMNS = {"caller_phone": "Call_Back_Phone", "caller_language": "Caller_Language"}
_STEP_COLUMNS = {
    CadEventType.ASSIGNED: "dispatched",
    CadEventType.ENROUTE: "enroute",
    CadEventType.ON_SCENE: "on_scene",
}


@dataclass(order=True)
class Change:
    """One change the CAD makes to its table: a row inserted or some columns updated."""

    at: datetime  # naive, the agency's time: LastChanged
    sequence: int
    incident_id: str = field(compare=False)
    values: dict[str, Any] = field(compare=False)
    insert: bool = field(compare=False, default=False)


def cad_changes(calls: list[ReplayCall], zone: ZoneInfo) -> list[Change]:
    """Each call's events as the changes a CAD makes to its row, in time order."""
    changes: list[Change] = []
    for call in calls:
        closes = 0
        for event in call.events:
            at = event.occurred_at.astimezone(zone).replace(tzinfo=None)
            values = _values(event, at, closes)
            if event.event_type in (CadEventType.CLEARED, CadEventType.CANCELLED):
                closes += 1
            changes.append(
                Change(
                    at,
                    len(changes),
                    call.incident_id,
                    values,
                    insert=event.event_type is CadEventType.CREATED,
                )
            )
    return sorted(changes)


def _values(event: CadEvent, at: datetime, closes: int) -> dict[str, Any]:
    kind = event.event_type
    if kind is CadEventType.CREATED:
        return {
            "incident_id": event.incident_id,
            "call_type": event.call_type,
            "priority": event.priority,
            "source": event.source.value if event.source else None,
            "created": at,
            "caller_phone": event.caller_phone,
            "caller_language": event.caller_language,
        }
    if kind in _STEP_COLUMNS:
        return {_STEP_COLUMNS[kind]: at}
    if kind is CadEventType.REOPENED:
        return {"reopened": "Y"}
    if kind in (CadEventType.CLEARED, CadEventType.CANCELLED):
        column = "first_closed" if closes == 0 else "final_closed"
        return {column: at, "disposition": event.disposition}
    raise AssertionError(f"the export replays no {kind} event")


@pytest.fixture
def cad_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own: the test restarts it."""
    server = server_or_skip()
    yield server
    server.stop()


def polled(agency: AgencyConfig) -> AgencyConfig:
    """The agency reading the simulator's table: its export's columns and the callers'."""
    poll = CadPoll(
        table="Response_Master_Incident",
        watermark=WATERMARK,
        overlap=timedelta(minutes=1),
        interval=POLL_INTERVAL,
        start="beginning",
    )
    cad = agency.cad.model_copy(update={"poll": poll})
    replay = agency.replay.model_copy(
        update={"columns": {**agency.replay.columns, **CALLER_COLUMNS}}
    )
    return agency.model_copy(update={"cad": cad, "replay": replay})


@asynccontextmanager
async def poller_worker(
    client: Client, settings: Settings, db: Database, agency: AgencyConfig, task_queue: str
) -> AsyncIterator[None]:
    """Only the poller and its activity: the calls' workflows wait for their own worker."""
    activities = CadPollActivities(
        settings, db, {agency.id: agency}, CadClient(client, settings.task_queue)
    )
    with ThreadPoolExecutor(4) as executor:
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=[CadPollerWorkflow],
            activities=[activities.poll_cad],
            activity_executor=executor,
            workflow_runner=workflow_runner(),
        ):
            yield
    activities.close()


async def status(handle: WorkflowHandle[CadPollerWorkflow, None]) -> PollerStatus:
    return await handle.query(CadPollerWorkflow.status)


async def caught_up(
    handle: WorkflowHandle[CadPollerWorkflow, None], newest: datetime
) -> PollerStatus:
    """Wait until the poller has read the newest change, and then polled twice more (a
    poll interrupted by the worker's restart told its rows without counting them)."""
    deadline = asyncio.get_running_loop().time() + CAUGHT_UP_TIMEOUT
    read_at: int | None = None
    while True:
        now = await status(handle)
        if read_at is None and now.watermark == newest.isoformat(sep=" "):
            read_at = now.polls
        if read_at is not None and now.polls >= read_at + 2:
            return now
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"the poller never caught up: {now}")
        await asyncio.sleep(0.1)


async def reported_failing(handle: WorkflowHandle[CadPollerWorkflow, None]) -> None:
    deadline = asyncio.get_running_loop().time() + CAUGHT_UP_TIMEOUT
    while not (now := await status(handle)).last_error:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"the poller never reported the database down: {now}")
        await asyncio.sleep(0.1)
    assert now.failed_polls >= 1 and now.failing_since is not None


async def polled_outbox(
    calls: list[ReplayCall], agency: AgencyConfig, server: PostgresServer, tmp_path: Path
) -> set[OutboxKey]:
    environment = await start_dev_server()
    database = Database(f"sqlite:///{tmp_path / 'polled.db'}")
    database.create_schema()
    cad_url = server.url(server.create_database())
    engine = sa.create_engine(cad_url, pool_pre_ping=True)
    cad = CadTable(engine, {**agency.replay.columns})
    settings = Settings(task_queue="replay-polled", cad_poll_urls={agency.id: SecretStr(cad_url)})
    changes = cad_changes(calls, ZoneInfo(agency.replay.time_zone or agency.agency.time_zone))
    poller_queue = f"poller-{uuid.uuid4()}"
    client = environment.client
    try:
        steps = [
            changes[i : i + CHANGES_PER_STEP] for i in range(0, len(changes), CHANGES_PER_STEP)
        ]
        worker_restart, database_restart = len(steps) // 3, 2 * len(steps) // 3
        async with poller_worker(client, settings, database, agency, poller_queue):
            handle = await client.start_workflow(
                CadPollerWorkflow.run,
                PollerInput(agency.id),
                id=f"cad-poll-{uuid.uuid4()}",
                task_queue=poller_queue,
            )
            await apply(cad, steps[:worker_restart])
        # The poller's worker is down for a while; the CAD goes on changing rows.
        await apply(cad, steps[worker_restart:database_restart])
        async with poller_worker(client, settings, database, agency, poller_queue):
            # The CAD database goes down until a poll has failed, and comes back.
            await asyncio.to_thread(server.go_down)
            await reported_failing(handle)
            await asyncio.to_thread(server.come_back)
            await apply(cad, steps[database_restart:])
            newest = cad.newest_change()
            assert newest is not None
            told = await caught_up(handle, newest)
            assert told.dead_letters == 0 and told.last_error == ""

            # A second poller over the same rows, from no watermark: nothing to tell.
            second = await client.start_workflow(
                CadPollerWorkflow.run,
                PollerInput(agency.id),
                id=f"cad-poll-{uuid.uuid4()}",
                task_queue=poller_queue,
            )
            again = await caught_up(second, newest)
            assert (again.events, again.changed) == (0, 0) and again.rows >= len(calls)
            await second.terminate(reason="test finished")
            await handle.terminate(reason="test finished")

        provider = RecordingProvider()
        # The CAD knows the number, not its line type: the carrier lookup answers mobile,
        # as the replay's made-up callers are.
        provider.line_types = {
            event.caller_phone: LineType.MOBILE
            for call in calls
            for event in call.events
            if event.caller_phone
        }
        async for _ in start_harness(
            environment, database, {agency.id: agency}, provider, TIME_SCALE, settings.task_queue
        ):
            await all_finished(client, settings.task_queue)
        with database.session() as session:
            rows = session.exec(select(OutboxMessage)).all()
        return {(r.workflow_id, r.kind, r.to, r.language, r.status) for r in rows}
    finally:
        engine.dispose()
        database.dispose()
        await environment.shutdown()


async def apply(cad: CadTable, steps: list[list[Change]]) -> None:
    for step in steps:
        for change in step:
            if change.insert:
                await asyncio.to_thread(cad.insert, change.at, **change.values)
            else:
                values = dict(change.values)
                await asyncio.to_thread(cad.update, change.incident_id, change.at, **values)
        await asyncio.sleep(STEP_SECONDS)


async def test_a_real_day_polled_from_a_cad_database_texts_what_its_replay_texts(
    tmp_path: Path, cad_server: PostgresServer
) -> None:
    export_file = real_cad_export()
    agency = polled(quick_lifecycle(load_agency_file(PROJECT_ROOT / "agencies" / "example.toml")))
    with export_file.open(newline="", encoding="utf-8") as lines:
        day = quietest_day(parse_cad_export(lines, agency).calls)
    with export_file.open(newline="", encoding="utf-8") as lines:
        calls = parse_cad_export(
            lines, agency, since=start_of(day), until=start_of(day + timedelta(days=1))
        ).calls

    over_replay, over_poll = await asyncio.gather(
        replayed_outbox("python", export_file, day, agency, tmp_path),
        polled_outbox(calls, agency, cad_server, tmp_path),
    )

    assert len(over_replay) > 0
    assert over_poll == over_replay
