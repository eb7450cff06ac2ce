"""CAD events arrive twice, late, or out of order; the call's state and texts stay right."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.testing import WorkflowEnvironment

from callerloop.cad.client import CadClient
from callerloop.core.agency_config import AgencyConfig
from callerloop.core.db import Database
from tests.conftest import start_harness
from tests.factories import (
    RecordingProvider,
    cad_event,
    eligible_call,
    make_agency,
    new_incident_id,
)
from tests.harness import Harness
from workflows.model import CadEventType, CallStatus, TextingState, TextKind


async def test_duplicate_events_change_nothing(
    harness: Harness, provider: RecordingProvider
) -> None:
    incident = new_incident_id()
    created = eligible_call(incident)
    assigned = cad_event(incident, CadEventType.ASSIGNED, minutes=5)
    await harness.send(created, created, assigned, assigned, created)
    state = await harness.state(incident)
    assert state.events_applied == 2 and state.events_ignored == 3
    assert harness.kinds(incident) == ["confirmation", "assigned"]
    assert provider.calls == 2


async def test_older_event_does_not_roll_a_field_back(harness: Harness) -> None:
    incident = new_incident_id()
    await harness.send(eligible_call(incident, minutes=0, priority=4))
    await harness.send(cad_event(incident, CadEventType.UPDATED, minutes=10, priority=3))
    state = await harness.send(cad_event(incident, CadEventType.UPDATED, minutes=5, priority=4))
    assert state.priority == 3


async def test_cleared_before_assigned_sends_no_stale_assigned_update(harness: Harness) -> None:
    incident = new_incident_id()
    await harness.send(eligible_call(incident))
    await harness.send(cad_event(incident, CadEventType.CLEARED, minutes=30))
    state = await harness.send(cad_event(incident, CadEventType.ASSIGNED, minutes=10))
    assert state.status == CallStatus.CLEARED
    outcome = await harness.finish(incident)
    assert outcome.texts == [TextKind.CONFIRMATION, TextKind.CLEARED, TextKind.SURVEY]


@pytest.mark.record_history
async def test_reopened_call_resumes_and_is_surveyed_once(harness: Harness) -> None:
    incident = new_incident_id()
    await harness.send(eligible_call(incident))
    await harness.send(cad_event(incident, CadEventType.CLEARED, minutes=20))
    state = await harness.send(cad_event(incident, CadEventType.REOPENED, minutes=25))
    assert state.status == CallStatus.REOPENED and state.reopened_count == 1
    await harness.send(cad_event(incident, CadEventType.ASSIGNED, minutes=30))
    await harness.send(cad_event(incident, CadEventType.CLEARED, minutes=70))
    outcome = await harness.finish(incident)
    assert outcome.texts == [
        TextKind.CONFIRMATION,
        TextKind.CLEARED,
        TextKind.ASSIGNED,
        TextKind.SURVEY,
    ]


async def test_same_timestamp_steps_only_move_forward(harness: Harness) -> None:
    """Officer-style rows carry one time for every step; arrival order must not regress."""
    incident = new_incident_id()
    await harness.send(eligible_call(incident, minutes=0))
    await harness.send(cad_event(incident, CadEventType.ON_SCENE, minutes=7))
    state = await harness.send(cad_event(incident, CadEventType.ASSIGNED, minutes=7))
    assert state.status == CallStatus.ON_SCENE


@pytest.mark.record_history
async def test_first_event_may_be_any_kind(harness: Harness) -> None:
    """Signal-with-start: an update for an unknown call starts it; facts fill in later."""
    incident = new_incident_id()
    state = await harness.send(cad_event(incident, CadEventType.ASSIGNED, minutes=3))
    assert state.texting_state == TextingState.PENDING and harness.kinds(incident) == []
    await harness.send(eligible_call(incident, minutes=0))
    # The assignment (later in CAD time) is kept, and the caller hears about it.
    state = await harness.state(incident)
    assert state.status == CallStatus.DISPATCHED
    assert harness.kinds(incident) == ["confirmation", "assigned"]


@pytest.fixture
async def capped_harness(env: WorkflowEnvironment, database: Database) -> AsyncIterator[Harness]:
    agency: AgencyConfig = make_agency(texts={"max_per_call": 2})
    async for running in start_harness(env, database, {agency.id: agency}, RecordingProvider()):
        yield running


async def test_text_cap_limits_texts_per_call(capped_harness: Harness) -> None:
    harness, incident = capped_harness, new_incident_id()
    await harness.send(eligible_call(incident))
    state = await harness.send(cad_event(incident, CadEventType.DELAYED, minutes=2))
    assert state.texting_state == TextingState.CAPPED
    await harness.send(
        cad_event(incident, CadEventType.ASSIGNED, minutes=5),
        cad_event(incident, CadEventType.CLEARED, minutes=30),
    )
    outcome = await harness.finish(incident)
    assert harness.kinds(incident) == ["confirmation", "delayed"]
    assert outcome.texts == [TextKind.CONFIRMATION, TextKind.DELAYED]


async def test_a_sensitive_type_corrected_before_the_call_could_decide_still_never_texts(
    env: WorkflowEnvironment, database: Database, agency: AgencyConfig
) -> None:
    """CAD said DOMESTIC DISTURBANCE, then NOISE COMPLAINT at the same instant (an export
    row's initial and final type), and both reached the call before its first workflow
    task: the call was sensitive once, so it is never texted."""
    incident, queue = new_incident_id(), f"test-{new_incident_id()}"
    provider = RecordingProvider()
    reclassified = [
        eligible_call(incident, call_type="DOMESTIC DISTURBANCE"),
        cad_event(incident, CadEventType.UPDATED, call_type="NOISE COMPLAINT"),
    ]
    cad = CadClient(env.client, queue)
    delivered = [await cad.send(event) for event in reclassified]  # no worker polls yet
    async for harness in start_harness(
        env, database, {agency.id: agency}, provider, task_queue=queue
    ):
        harness.handles[incident] = delivered[0].handle
        state = await harness.settle(incident, lambda s: s.events_applied == 2)
        assert state.call_type == "NOISE COMPLAINT"  # the final type is the current one
        await harness.finish(incident)
    assert provider.accepted == []
