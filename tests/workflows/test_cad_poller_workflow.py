"""The CAD poller as the worker runs it: one durable workflow per agency and source (a
database, a watched folder), whose polls reach the calls' workflows (and so the texts),
which reports a failing database and recovers from it, and which continues as new with
its watermark and counts intact."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from callerloop.cad.watched_folder import REJECTED
from callerloop.core.agency_config import CadFolder
from callerloop.core.db import Database
from callerloop.core.settings import Settings
from starter.cli_poll import status_line
from tests.cad_database import (
    MINUTE,
    TABLE,
    CadTable,
    call_row,
    export_file,
    folder_agency,
    polled_agency,
)
from tests.conftest import start_harness
from tests.factories import RecordingProvider
from tests.harness import Harness, eventually
from worker import start_pollers
from workflows.cad_poller import CadPollerWorkflow, poller_workflow_id
from workflows.model import DATABASE_SOURCE, FOLDER_SOURCE, LineType, PollerInput, PollerStatus

POLL_INTERVAL = timedelta(seconds=10)


@pytest.fixture
def cad_file(tmp_path: Path) -> Iterator[tuple[str, sa.Engine]]:
    url = f"sqlite:///{tmp_path / 'cad.db'}"
    engine = sa.create_engine(url)
    yield url, engine
    engine.dispose()


async def cad_now(env: WorkflowEnvironment, zone: str) -> datetime:
    """The server's time as the CAD database writes it (naive, the agency's zone)."""
    return (await env.get_current_time()).astimezone(ZoneInfo(zone)).replace(tzinfo=None)


async def next_poll(env: WorkflowEnvironment) -> None:
    await env.sleep(POLL_INTERVAL + timedelta(seconds=1))


async def status_of(handle: WorkflowHandle[CadPollerWorkflow, None]) -> PollerStatus:
    return await handle.query(CadPollerWorkflow.status)


async def test_the_poller_texts_through_the_calls_and_survives_a_failing_database(
    env: WorkflowEnvironment,
    database: Database,
    provider: RecordingProvider,
    cad_file: tuple[str, sa.Engine],
) -> None:
    url, engine = cad_file
    agency = polled_agency()
    cad = CadTable(engine)
    incident = f"25-{uuid.uuid4().hex[:6]}"
    now = await cad_now(env, agency.agency.time_zone)
    row = call_row(incident, now)
    cad.insert(now, **row)
    provider.line_types[row["caller_phone"]] = LineType.MOBILE  # the carrier's lookup
    async for harness in start_harness(
        env, database, {agency.id: agency}, provider, cad_poll_urls={agency.id: url}
    ):
        await poll_through_a_failing_database(harness, engine, cad, incident, now)


async def poll_through_a_failing_database(
    harness: Harness, engine: sa.Engine, cad: CadTable, incident: str, now: datetime
) -> None:
    env = harness.env
    handle = await start_poller(harness, polls_per_run=3)
    first_run = (await handle.describe()).run_id
    try:
        await eventually(lambda: harness.kinds(incident) == ["confirmation"], "confirmation")

        cad.update(incident, now + MINUTE, dispatched=now + MINUTE)
        await next_poll(env)
        await eventually(
            lambda: harness.kinds(incident) == ["confirmation", "assigned"], "assigned"
        )

        # The table goes away (a failed query, as an unreachable server would fail it):
        # reported, tried again at the next interval, the watermark kept.
        watermark = (await status_of(handle)).watermark
        with engine.begin() as connection:
            connection.execute(sa.text(f"ALTER TABLE {TABLE} RENAME TO moved"))
        await next_poll(env)
        failing = await status_of(handle)
        assert "no such table" in failing.last_error and failing.failing_since is not None
        assert failing.watermark == watermark and failing.failed_polls == 1
        with engine.begin() as connection:
            connection.execute(sa.text(f"ALTER TABLE moved RENAME TO {TABLE}"))

        cad.update(incident, now + 20 * MINUTE, first_closed=now + 20 * MINUTE)
        await next_poll(env)
        await eventually(lambda: "cleared" in harness.kinds(incident), "closing note")
        recovered = await status_of(handle)
        assert recovered.last_error == "" and recovered.failing_since is None
        # Four polls on a run of three: it continued as new, counts and watermark kept.
        assert recovered.polls >= 4 and recovered.events == 3
        assert (await handle.describe()).run_id != first_run
        assert harness.kinds(incident) == ["confirmation", "assigned", "cleared"]

        # What `callerloop cad poll status` prints of it.
        line = status_line("testville", DATABASE_SOURCE, await status_of(handle))
        assert line.startswith(f"testville (database): watermark {recovered.watermark}, lag ")
        assert "3 events, 0 dead letters" in line and "FAILING" not in line
    finally:
        await handle.terminate(reason="test finished")
        await harness.handle(incident).terminate(reason="test finished")


async def start_poller(
    harness: Harness, polls_per_run: int
) -> WorkflowHandle[CadPollerWorkflow, None]:
    return await harness.env.client.start_workflow(
        CadPollerWorkflow.run,
        PollerInput("testville", polls_per_run=polls_per_run),
        id=f"{poller_workflow_id('testville')}-{uuid.uuid4()}",
        task_queue=harness.settings.task_queue,
    )


async def test_the_worker_starts_one_poller_per_agency_file_with_cad_poll(
    env: WorkflowEnvironment, cad_file: tuple[str, sa.Engine]
) -> None:
    """From the agency file (and a database's URL setting) alone: one poller per source,
    still one when started twice; an agency whose URL is not set is not polled."""
    url, _ = cad_file
    base = polled_agency()
    cad = base.cad.model_copy(update={"folder": CadFolder(path="/srv/cad-exports")})
    polled = base.model_copy(update={"cad": cad})
    unpolled = polled_agency().model_copy(update={"id": "elsewhere"})
    task_queue = f"pollers-{uuid.uuid4()}"
    settings = Settings(task_queue=task_queue, cad_poll_urls={polled.id: SecretStr(url)})
    agencies = {polled.id: polled, unpolled.id: unpolled}

    poller = env.client.get_workflow_handle(poller_workflow_id("testville"))
    folder = env.client.get_workflow_handle(poller_workflow_id("testville", FOLDER_SOURCE))
    try:
        both = ["testville", "testville folder"]
        assert await start_pollers(env.client, settings, agencies) == both
        started = await poller.describe()
        assert await start_pollers(env.client, settings, agencies) == both
        again = await poller.describe()
        assert again.run_id == started.run_id and again.task_queue == task_queue
        assert again.workflow_type == "CadPoller"
        assert (await folder.describe()).id == "cad-folder/testville"
    finally:
        await poller.terminate(reason="test finished")
        await folder.terminate(reason="test finished")


async def test_the_folder_poller_texts_through_the_calls_and_moves_a_bad_file_aside(
    env: WorkflowEnvironment,
    database: Database,
    provider: RecordingProvider,
    tmp_path: Path,
) -> None:
    folder = tmp_path / "exports"
    agency = folder_agency(folder)
    incident = f"25-{uuid.uuid4().hex[:6]}"
    now = await cad_now(env, agency.agency.time_zone)
    row = call_row(incident, now)
    export_file(folder / "0900.csv", [row])
    (folder / "0905.csv").write_bytes(b"\xff\xfe not an export")
    provider.line_types[row["caller_phone"]] = LineType.MOBILE
    async for harness in start_harness(env, database, {agency.id: agency}, provider):
        await read_the_folder(harness, folder, incident)


async def read_the_folder(harness: Harness, folder: Path, incident: str) -> None:
    handle = await harness.env.client.start_workflow(
        CadPollerWorkflow.run,
        PollerInput("testville", source=FOLDER_SOURCE),
        id=f"{poller_workflow_id('testville', FOLDER_SOURCE)}-{uuid.uuid4()}",
        task_queue=harness.settings.task_queue,
    )
    try:
        await eventually(lambda: harness.kinds(incident) == ["confirmation"], "confirmation")
        while True:  # until the poll's result is recorded
            status = await status_of(handle)
            if status.polls:
                break
            await asyncio.sleep(0.05)
        assert (status.files, status.rejected_files, status.events) == (1, 1, 1)
        assert status.watermark == "0900.csv" and status.last_error == ""
        assert list((folder / REJECTED).glob("*-0905.csv"))
    finally:
        await handle.terminate(reason="test finished")
        await harness.handle(incident).terminate(reason="test finished")
