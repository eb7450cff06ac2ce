"""The whole web app on a real socket, with a real Temporal dev server and worker: CAD
events posted over HTTP start and advance calls, and a real day replayed through the
ingest API texts exactly what the same day replayed through the Python client texts."""

from __future__ import annotations

import asyncio
import collections
import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlmodel import select
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from callerloop.cad import dead_letters
from callerloop.cad.delivery import EVENTS_PATH
from callerloop.cad.http_client import event_json
from callerloop.cad.replay import ReplayCall, parse_cad_export
from callerloop.cad.replaying import run_replay
from callerloop.core.agency_config import AgencyConfig, load_agency_file
from callerloop.core.db import Database, OutboxMessage
from callerloop.core.settings import PROJECT_ROOT, Settings, get_settings
from callerloop.core.temporal import FAIL_FAST, connect
from callerloop.staff.api_keys import create_key
from starter.cli import app as cli_app
from tests.conftest import (
    TEST_CONVERTER,
    TEST_ENCRYPTION_KEYS,
    start_dev_server,
    start_harness,
)
from tests.factories import RecordingProvider, cad_event, eligible_call, make_agency
from tests.harness import Harness
from tests.requirements import real_cad_export
from tests.web.serving import free_port, serving
from web.app import create_app
from workflows.call_for_service import workflow_id_for
from workflows.model import CadEvent, CadEventType

pytestmark = pytest.mark.slow

# The lifecycle at 3600 times real time: the 24-hour survey comes 24 s after the close.
TIME_SCALE = 3600.0
FINISH_TIMEOUT = 240.0


def app_settings(task_queue: str) -> Settings:
    return Settings(task_queue=task_queue, public_base_url="https://callerloop.test")


@contextmanager
def web_app(
    environment: WorkflowEnvironment,
    database: Database,
    agencies: dict[str, AgencyConfig],
    task_queue: str,
) -> Iterator[str]:
    """The production app (`create_app`), connecting to Temporal from its own event loop."""
    target = environment.client.service_client.config.target_host

    async def connect() -> Client:
        return await Client.connect(target, data_converter=TEST_CONVERTER)

    app = create_app(app_settings(task_queue), database, agencies, connect)
    with serving(app) as url:
        yield url


# --- events over HTTP start and advance a call ------------------------------------------


@pytest.fixture
async def live(
    dev_server: WorkflowEnvironment, database: Database, provider: RecordingProvider
) -> AsyncIterator[tuple[Harness, str]]:
    agency = make_agency()
    task_queue = f"live-{uuid.uuid4()}"
    async for harness in start_harness(
        dev_server, database, {agency.id: agency}, provider, task_queue=task_queue
    ):
        with web_app(dev_server, database, harness.agencies, task_queue) as url:
            yield harness, url


async def test_events_posted_to_the_running_app_start_and_advance_the_call(
    live: tuple[Harness, str], provider: RecordingProvider
) -> None:
    harness, url = live
    key = create_key(harness.db, "testville", "CAD")[1]
    incident = f"LIVE-{uuid.uuid4().hex[:8]}"
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers) as web:
        assert (await web.get("/healthz")).text == "ok"
        created = await web.post(EVENTS_PATH, json=event_json(eligible_call(incident)))
        assert created.status_code == 202, created.text
        assert created.json() == {
            "workflow_ids": [workflow_id_for("testville", incident)],
            "finished": [],
        }
        handle = harness.env.client.get_workflow_handle(workflow_id_for("testville", incident))
        harness.handles[incident] = handle
        await harness.settle(incident, lambda state: len(state.texts) == 1)

        assigned = cad_event(incident, CadEventType.ASSIGNED, minutes=6)
        response = await web.post(EVENTS_PATH, json=[event_json(assigned)])
        assert response.status_code == 202, response.text
        state = await harness.settle(incident, lambda state: len(state.texts) == 2)

    assert state.events_applied == 2
    assert harness.kinds(incident) == ["confirmation", "assigned"]
    assert [text.to for text in provider.accepted] == ["+17035550142"] * 2


# --- a real day: HTTP replay == Python client replay -------------------------------------


def quick_lifecycle(agency: AgencyConfig) -> AgencyConfig:
    """The example agency with shorter waits after the survey (24 s at TIME_SCALE, still
    far longer than a workflow task takes under load) and for never-closed calls. The
    window well outlasts the longest quiet-hours deferral (12 h): with 12 h, a run started
    near 21:00 New York time ended every call before its deferred survey."""
    timing = agency.timing.model_copy(
        update={"survey_window": timedelta(hours=24), "max_open": timedelta(days=1)}
    )
    return agency.model_copy(update={"timing": timing})


def quietest_day(calls: list[ReplayCall]) -> date:
    """The real day with the fewest calls: the cheapest whole day to replay twice."""
    per_day = collections.Counter(call.created_at.date() for call in calls)
    return min(per_day, key=lambda day: (per_day[day], day))


OutboxKey = tuple[str, str, str | None, str, str]


async def replayed_outbox(
    path: str, export_file: Path, day: date, agency: AgencyConfig, tmp_path: Path
) -> set[OutboxKey]:
    """Replay `day` through `path` ("python" or "http") into a fresh dev server while no
    worker runs, then run a worker until every call has finished; the outbox it leaves.

    Events are all delivered before any is handled, so each call's first workflow task
    sees the same events whichever way they came: what is texted cannot depend on how
    fast one path delivers compared with the worker."""
    environment = await start_dev_server()
    database = Database(f"sqlite:///{tmp_path / f'{path}.db'}")
    database.create_schema()
    task_queue = f"replay-{path}"
    agencies = {agency.id: agency}
    try:
        if path == "http":
            await replay_over_http(environment, database, agencies, task_queue, export_file, day)
        else:
            with export_file.open(newline="", encoding="utf-8") as lines:
                export = parse_cad_export(
                    lines, agency, since=start_of(day), until=start_of(day + timedelta(days=1))
                )
            report = await run_replay(environment.client, task_queue, export.calls, speed=0)
            assert report.failed == [] and report.sent > 0
        provider = RecordingProvider()
        async for _ in start_harness(
            environment, database, agencies, provider, TIME_SCALE, task_queue
        ):
            await all_finished(environment.client, task_queue)
        with database.session() as session:
            rows = session.exec(select(OutboxMessage)).all()
        return {(r.workflow_id, r.kind, r.to, r.language, r.status) for r in rows}
    finally:
        database.dispose()
        await environment.shutdown()


def start_of(day: date) -> datetime:
    return datetime(day.year, day.month, day.day)


async def replay_over_http(
    environment: WorkflowEnvironment,
    database: Database,
    agencies: dict[str, AgencyConfig],
    task_queue: str,
    export_file: Path,
    day: date,
) -> None:
    """`callerloop cad replay … --url --key`, as an operator would run it."""
    key = create_key(database, "example", "replay")[1]
    with web_app(environment, database, agencies, task_queue) as url:
        command = [
            "cad", "replay", str(export_file), "--agency", "example", "--speed", "0",
            "--from", day.isoformat(), "--until", (day + timedelta(days=1)).isoformat(),
            "--url", url, "--key", key,
        ]  # fmt: skip
        result = await asyncio.to_thread(CliRunner().invoke, cli_app, command)
        assert result.exit_code == 0, result.output
        # Every event got through: a post told "not now" under load was sent again.
        assert re.search(r"│ failures\s+│\s+0 │", result.output), result.output


async def all_finished(client: Client, task_queue: str) -> None:
    deadline = asyncio.get_running_loop().time() + FINISH_TIMEOUT
    query = f'TaskQueue = "{task_queue}" AND ExecutionStatus = "Running"'
    while (running := (await client.count_workflows(query)).count) > 0:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{running} calls still running after {FINISH_TIMEOUT} s")
        await asyncio.sleep(0.5)


async def test_a_real_day_over_http_texts_what_the_python_client_texts(
    tmp_path: Path,
) -> None:
    export_file = real_cad_export()
    agency = quick_lifecycle(load_agency_file(PROJECT_ROOT / "agencies" / "example.toml"))
    with export_file.open(newline="", encoding="utf-8") as lines:
        day = quietest_day(parse_cad_export(lines, agency).calls)

    # Side by side, so quiet hours (the agency's wall clock) are the same for both.
    over_python, over_http = await asyncio.gather(
        replayed_outbox("python", export_file, day, agency, tmp_path),
        replayed_outbox("http", export_file, day, agency, tmp_path),
    )

    # Each call is closed when first handled: a closing note (no confirmation), a survey.
    kinds = collections.Counter(kind for _, kind, _, _, _ in over_python)
    assert kinds["cleared"] > 0 and kinds["survey"] > 0, kinds
    assert over_http == over_python


# --- Temporal stopped: 503, kept, delivered once by `deadletter retry` --------------------


async def signalled_event_ids(client: Client, workflow_id: str) -> list[str]:
    """The event id of every CAD event signal in the workflow's history (signal-with-start
    included), as the server recorded them."""
    handle = client.get_workflow_handle(workflow_id)
    ids = []
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            payloads = event.workflow_execution_signaled_event_attributes.input.payloads
            [signalled] = await client.data_converter.decode(payloads, [CadEvent])
            ids.append(signalled.event_id)
    return ids


async def test_with_temporal_stopped_events_are_kept_and_retry_delivers_them_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, provider: RecordingProvider
) -> None:
    port, temporal_file = free_port(), tmp_path / "temporal.db"
    database = Database(f"sqlite:///{tmp_path / 'callerloop.db'}")
    database.create_schema()
    example = load_agency_file(PROJECT_ROOT / "agencies" / "example.toml")
    agencies = {example.id: example}
    task_queue = f"outage-{uuid.uuid4()}"
    settings = Settings(
        task_queue=task_queue,
        temporal_address=f"127.0.0.1:{port}",
        database_url=database.url,
        public_base_url="https://callerloop.test",
        encryption_keys=SecretStr(TEST_ENCRYPTION_KEYS),
    )
    key = create_key(database, example.id, "CAD")[1]
    first, second = "25-900001", "25-900002"
    created = example_call(first)
    assigned = cad_event(first, CadEventType.ASSIGNED, minutes=6, agency=example.id)
    other = example_call(second)

    environment = await start_dev_server(port, temporal_file)
    try:
        app = create_app(settings, database, agencies, lambda: connect(settings, FAIL_FAST))
        with serving(app) as url:
            async with httpx.AsyncClient(
                base_url=url, headers={"X-API-Key": key}, timeout=30
            ) as web:
                accepted = await web.post(EVENTS_PATH, json=event_json(created))
                assert accepted.status_code == 202, accepted.text

                await environment.shutdown()  # Temporal goes away
                refused = [
                    await web.post(EVENTS_PATH, json=event_json(event))
                    for event in (assigned, other)
                ]
        assert [r.status_code for r in refused] == [503, 503]
        assert all(r.headers["Retry-After"] for r in refused)
        letters = dead_letters.list_dead_letters(database)
        assert [letter.id for letter in letters] == [r.json()["dead_letter_id"] for r in refused]
        assert [json.loads(letter.body)["event_id"] for letter in letters] == [
            assigned.event_id,
            other.event_id,
        ]

        environment = await start_dev_server(port, temporal_file)  # back, same history
        monkeypatch.setenv("CALLERLOOP_DATABASE_URL", database.url)
        monkeypatch.setenv("CALLERLOOP_TEMPORAL_ADDRESS", settings.temporal_address)
        monkeypatch.setenv("CALLERLOOP_TASK_QUEUE", task_queue)
        monkeypatch.setenv("CALLERLOOP_ENCRYPTION_KEYS", TEST_ENCRYPTION_KEYS)
        get_settings.cache_clear()
        runner = CliRunner()
        for letter in letters:
            command = ["deadletter", "retry", str(letter.id)]
            retried = await asyncio.to_thread(runner.invoke, cli_app, command)
            assert retried.exit_code == 0, retried.output
            again = await asyncio.to_thread(runner.invoke, cli_app, command)
            assert again.exit_code == 2 and "is delivered" in again.output
        assert dead_letters.list_dead_letters(database) == []

        client = environment.client
        assert await signalled_event_ids(client, workflow_id_for(example.id, first)) == [
            created.event_id,
            assigned.event_id,
        ]
        assert await signalled_event_ids(client, workflow_id_for(example.id, second)) == [
            other.event_id
        ]
        async for harness in start_harness(
            environment, database, agencies, provider, task_queue=task_queue
        ):
            for incident in (first, second):
                harness.handles[incident] = harness.handle(incident, agency=example.id)
            state = await harness.settle(first, lambda s: len(s.texts) == 2, example.id)
            assert state.events_applied == 2 and state.events_ignored == 0
            await harness.settle(second, lambda s: len(s.texts) == 1, example.id)
            assert harness.kinds(first, example.id) == ["confirmation", "assigned"]
            assert harness.kinds(second, example.id) == ["confirmation"]
    finally:
        get_settings.cache_clear()
        database.dispose()
        await environment.shutdown()


def example_call(incident: str) -> CadEvent:
    """An eligible call for the example agency (priority 4 noise complaint, from a mobile)."""
    return eligible_call(incident, agency="example", priority=4, call_type="NOISE COMPLAINT DELAY")
