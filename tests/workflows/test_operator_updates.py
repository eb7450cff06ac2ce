"""What operators see and do in the Temporal UI: a summary and current details that explain
the call without personal data, and updates that are refused before reaching history
when they make no sense, and recorded with who and why when they do."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from callerloop.core import audit
from callerloop.core.db import Database
from callerloop.messaging.delivery_status import apply_delivery_status
from tests.conftest import start_harness
from tests.factories import (
    RecordingProvider,
    cad_event,
    eligible_call,
    make_agency,
    new_incident_id,
)
from tests.harness import Harness
from workflows.call_for_service import CallForServiceWorkflow
from workflows.model import (
    CadEventType,
    CallSource,
    MarkLanguageRequest,
    OperatorResult,
    ResendConfirmationRequest,
    SuppressRequest,
    TextingState,
)

PHONE = "+17035550142"


async def update_events(handle: WorkflowHandle[object, object]) -> int:
    history = await handle.fetch_history()
    return sum(
        1
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    )


@pytest.fixture
async def dev_harness(
    dev_server: WorkflowEnvironment, database: Database, provider: RecordingProvider
) -> AsyncIterator[Harness]:
    """The dev server: the time-skipping server keeps no workflow summaries."""
    agency = make_agency()
    async for running in start_harness(dev_server, database, {agency.id: agency}, provider):
        yield running


async def test_the_ui_shows_a_summary_and_current_details_without_personal_data(
    dev_harness: Harness,
) -> None:
    harness = dev_harness
    incident = new_incident_id()
    await harness.send(eligible_call(incident, priority=3))
    await harness.send(cad_event(incident, CadEventType.ASSIGNED, minutes=5))
    handle = harness.handle(incident)

    description = await handle.describe()
    assert await description.static_summary() == f"testville · incident {incident} · priority 3"
    metadata = await handle.query("__temporal_workflow_metadata")
    details = metadata.current_details
    assert "**Call status:** dispatched" in details
    assert "texting the caller (`eligible`)" in details
    assert "confirmation (queued" in details and "assigned (queued" in details
    for personal in (PHONE, PHONE.removeprefix("+1"), "NOISE COMPLAINT", "en"):
        assert f" {personal} " not in f" {details} ", personal


@pytest.mark.record_history
async def test_suppress_stops_texts_and_is_recorded_with_who_and_why(
    harness: Harness, provider: RecordingProvider
) -> None:
    incident = new_incident_id()
    await harness.send(eligible_call(incident))
    handle = harness.handle(incident)

    result = await handle.execute_update(
        "suppress",
        SuppressRequest(by="sgt.lee", reason="caller's partner may read the texts"),
        result_type=OperatorResult,
    )
    assert result.texting_state == TextingState.BLOCKED
    await harness.send(
        cad_event(incident, CadEventType.ASSIGNED, minutes=5),
        cad_event(incident, CadEventType.CLEARED, minutes=30),
    )
    outcome = await harness.finish(incident)
    assert harness.kinds(incident) == ["confirmation"]
    assert len(provider.accepted) == 1
    assert outcome.reason == "suppressed"
    [action] = (await harness.state(incident)).operator_actions
    assert (action.action, action.by) == ("suppress", "sgt.lee")
    assert action.reason == "caller's partner may read the texts"
    # In the audit log once, however many times the call was recorded since.
    [entry] = audit.latest(harness.db)
    assert (entry.actor, entry.action, entry.source) == ("sgt.lee", "suppress", "temporal-update")
    assert entry.target == f"call/testville/{incident}"
    assert entry.detail == "caller's partner may read the texts"


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (SuppressRequest(by="", reason="x"), "say who is asking"),
        (SuppressRequest(by="sgt.lee", reason="  "), "say why"),
    ],
)
async def test_a_suppress_without_who_or_why_is_refused_before_history(
    harness: Harness, request_: SuppressRequest, message: str
) -> None:
    incident = new_incident_id()
    await harness.send(eligible_call(incident))
    handle = harness.handle(incident)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update("suppress", request_)
    assert message in str(refused.value.cause)
    assert await update_events(handle) == 0
    assert (await harness.state(incident)).texting_state == TextingState.ACTIVE


async def test_a_second_suppress_is_refused_and_says_why(harness: Harness) -> None:
    incident = new_incident_id()
    await harness.send(eligible_call(incident))
    handle = harness.handle(incident)
    first = SuppressRequest(by="sgt.lee", reason="safety")
    await handle.execute_update("suppress", first)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update("suppress", first)
    assert "already suppressed: safety (by sgt.lee)" in str(refused.value.cause)
    assert await update_events(handle) == 1


@pytest.mark.record_history
async def test_mark_language_sets_the_language_of_later_texts(harness: Harness) -> None:
    incident = new_incident_id()
    await harness.send(eligible_call(incident))
    handle = harness.handle(incident)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(
            CallForServiceWorkflow.mark_language,
            MarkLanguageRequest(by="dispatcher 12", reason="asked for German", language="de"),
        )
    assert "'de' is not offered; use one of en, es, fr" in str(refused.value.cause)

    await handle.execute_update(
        CallForServiceWorkflow.mark_language,
        MarkLanguageRequest(by="dispatcher 12", reason="caller speaks Spanish", language="es"),
    )
    await harness.send(cad_event(incident, CadEventType.ASSIGNED, minutes=5))
    assert [row.language for row in harness.outbox(incident)] == ["en", "es"]
    [action] = (await harness.state(incident)).operator_actions
    assert (action.action, action.detail) == ("mark_language", "es")


async def test_a_chosen_language_outlasts_cads_later_guess(harness: Harness) -> None:
    incident = new_incident_id()
    await harness.send(eligible_call(incident, caller_language="en"))
    await harness.handle(incident).execute_update(
        CallForServiceWorkflow.mark_language,
        MarkLanguageRequest(by="resident", reason="replied ESPAÑOL", language="es"),
    )
    # CAD's record of the call still says English, and says it again later.
    await harness.send(cad_event(incident, CadEventType.UPDATED, minutes=3, caller_language="en"))
    await harness.send(cad_event(incident, CadEventType.ASSIGNED, minutes=5))
    assert [row.language for row in harness.outbox(incident)] == ["en", "es"]


async def resend(handle: WorkflowHandle[object, object]) -> OperatorResult:
    request = ResendConfirmationRequest(by="dispatcher 4", reason="caller says no text came")
    result: OperatorResult = await handle.execute_update(
        "resend_confirmation", request, result_type=OperatorResult
    )
    return result


@pytest.mark.record_history
async def test_a_confirmation_that_never_arrived_is_sent_again(
    harness: Harness, provider: RecordingProvider
) -> None:
    incident = new_incident_id()
    await harness.send(eligible_call(incident))
    [first] = harness.outbox(incident)
    assert first.provider_id is not None
    apply_delivery_status(harness.db, first.provider_id, "undelivered", error_code="30003")

    result = await resend(harness.handle(incident))

    assert result.message == "confirmation sent again (queued)"
    rows = harness.outbox(incident)
    assert [(row.kind, row.attempt, row.status) for row in rows] == [
        ("confirmation", 1, "undelivered"),
        ("confirmation", 2, "queued"),
    ]
    assert len(provider.accepted) == 2
    assert [entry.action for entry in audit.latest(harness.db)] == ["resend_confirmation"]
    # The lifecycle goes on as before: the next update, once.
    await harness.send(cad_event(incident, CadEventType.ASSIGNED, minutes=5))
    assert harness.kinds(incident) == ["confirmation", "confirmation", "assigned"]


async def test_no_resend_once_a_text_reached_the_caller(harness: Harness) -> None:
    incident = new_incident_id()
    await harness.send(eligible_call(incident))
    [first] = harness.outbox(incident)
    assert first.provider_id is not None
    apply_delivery_status(harness.db, first.provider_id, "delivered")
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await resend(harness.handle(incident))
    assert "reached the caller (confirmation#1: delivered)" in str(refused.value.cause)
    assert len(harness.outbox(incident)) == 1


async def test_no_resend_for_a_call_that_is_not_texted(harness: Harness) -> None:
    incident = new_incident_id()
    await harness.send(eligible_call(incident, source=CallSource.OFFICER))
    handle = harness.handle(incident)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await resend(handle)
    assert "not being texted" in str(refused.value.cause)
    assert await update_events(handle) == 0
