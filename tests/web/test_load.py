"""Load held: the running web app takes ten times the busiest real day's peak minute on
the CAD ingest API and on Twilio's inbound webhook at once, with no error and no lost
event. The load is bounded in time; latencies are printed, not asserted (that is
`make bench`'s job)."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlmodel import func, select
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from twilio.request_validator import RequestValidator

from callerloop.cad.delivery import EVENTS_PATH
from callerloop.cad.http_client import event_json
from callerloop.cad.replay import parse_cad_export, timeline
from callerloop.core.agency_config import AgencyConfig, load_agency_file
from callerloop.core.db import Database, DeadLetter, HandledInbound
from callerloop.core.settings import PROJECT_ROOT, Settings
from callerloop.staff.api_keys import create_key
from devtools.devstack import busiest_day
from tests.conftest import TEST_CONVERTER, start_harness
from tests.factories import RecordingProvider
from tests.harness import Harness
from tests.requirements import real_cad_export
from tests.web.serving import serving
from web.app import create_app
from workflows.model import CadEvent, CallState

pytestmark = pytest.mark.slow

LOAD_SECONDS = 20.0
LOAD_FACTOR = 10
PUBLIC_URL = "https://callerloop.test"
TWILIO_TOKEN = "load-test-token"


@dataclasses.dataclass
class Load:
    events: list[CadEvent]  # the real day's events, under fresh incident ids
    per_minute: int  # LOAD_FACTOR x the busiest minute


def real_day_load(agency: AgencyConfig) -> Load:
    export_file = real_cad_export()
    day, _ = busiest_day(export_file, agency)
    since = datetime(day.year, day.month, day.day)
    with export_file.open(newline="", encoding="utf-8") as lines:
        export = parse_cad_export(lines, agency, since=since, until=since + timedelta(days=1))
    events = timeline(export.calls)
    minutes = collections.Counter(e.occurred_at.replace(second=0, microsecond=0) for e in events)
    run = uuid.uuid4().hex[:6]
    fresh = [
        dataclasses.replace(e, incident_id=f"{run}-{e.incident_id}", event_id=f"{run}-{e.event_id}")
        for e in events
    ]
    return Load(fresh, LOAD_FACTOR * minutes.most_common(1)[0][1])


@pytest.fixture
async def stack(
    dev_server: WorkflowEnvironment, database: Database
) -> AsyncIterator[tuple[Harness, str, AgencyConfig]]:
    agency = load_agency_file(PROJECT_ROOT / "agencies" / "example.toml")
    task_queue = f"load-{uuid.uuid4()}"
    settings = Settings(
        task_queue=task_queue,
        public_base_url=PUBLIC_URL,
        twilio_auth_token=SecretStr(TWILIO_TOKEN),
    )
    target = dev_server.client.service_client.config.target_host

    async def connect() -> Client:
        return await Client.connect(target, data_converter=TEST_CONVERTER)

    agencies = {agency.id: agency}
    async for harness in start_harness(
        dev_server, database, agencies, RecordingProvider(), task_queue=task_queue
    ):
        with serving(create_app(settings, database, agencies, connect)) as url:
            yield harness, url, agency


async def paced(
    count: int, per_minute: int, send: Callable[[int], Coroutine[Any, Any, float]]
) -> list[float]:
    """Start `send(i)` at an even pace, each on its own (a slow answer does not hold back
    the next request, as with real CADs and Twilio); their latencies."""
    interval = 60.0 / per_minute
    start = time.monotonic()
    tasks = []
    for i in range(count):
        await asyncio.sleep(max(0.0, start + i * interval - time.monotonic()))
        tasks.append(asyncio.create_task(send(i)))
    return list(await asyncio.gather(*tasks))


def report(name: str, latencies: list[float], per_minute: int) -> None:
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    print(
        f"{name}: {len(latencies)} requests at {per_minute}/min, "
        f"p50 {cuts[49] * 1000:.0f} ms, p99 {cuts[98] * 1000:.0f} ms, "
        f"max {max(latencies) * 1000:.0f} ms"
    )


async def test_ten_times_the_busiest_minute_is_taken_without_error_or_loss(
    stack: tuple[Harness, str, AgencyConfig], database: Database
) -> None:
    harness, url, agency = stack
    load = real_day_load(agency)
    count = int(load.per_minute * LOAD_SECONDS / 60)
    events = load.events[:count]
    key = create_key(database, agency.id, "load")[1]
    validator = RequestValidator(TWILIO_TOKEN)
    bodies = ["HELP", "hello?", "STOP", "START", "Ayuda"]
    failures: list[str] = []

    async with httpx.AsyncClient(base_url=url, timeout=30) as web:

        async def ingest(i: int) -> float:
            began = time.monotonic()
            response = await web.post(
                EVENTS_PATH,
                json=event_json(events[i]),
                headers={"Authorization": f"Bearer {key}"},
            )
            if response.status_code != 202:
                failures.append(f"ingest {i}: {response.status_code} {response.text}")
            return time.monotonic() - began

        async def inbound(i: int) -> float:
            form = {
                "MessageSid": f"SMload{uuid.uuid4().hex}",
                "From": f"+1202555{i % 10000:04d}",
                "To": agency.agency.sender_number or "",
                "Body": bodies[i % len(bodies)],
            }
            signature = validator.compute_signature(f"{PUBLIC_URL}/twilio/inbound", form)
            began = time.monotonic()
            response = await web.post(
                "/twilio/inbound", data=form, headers={"X-Twilio-Signature": signature}
            )
            if response.status_code != 200:
                failures.append(f"inbound {i}: {response.status_code} {response.text}")
            return time.monotonic() - began

        ingest_latencies, inbound_latencies = await asyncio.gather(
            paced(count, load.per_minute, ingest), paced(count, load.per_minute, inbound)
        )

    report("CAD ingest", ingest_latencies, load.per_minute)
    report("Twilio inbound", inbound_latencies, load.per_minute)
    assert failures == []
    with database.session() as session:
        assert session.exec(select(func.count()).select_from(DeadLetter)).one() == 0
        handled = session.exec(select(func.count()).select_from(HandledInbound)).one()
    assert handled == count, "every inbound text was acted on once"
    # No lost event: every call's workflow has every event it was sent, applied or not.
    sent = collections.Counter(event.incident_id for event in events)
    for incident, expected in sent.items():

        def heard_all(state: CallState, expected: int = expected) -> bool:
            return state.events_applied + state.events_ignored >= expected

        state = await harness.settle(incident, heard_all, agency.id)
        assert state.events_applied + state.events_ignored == expected, incident
