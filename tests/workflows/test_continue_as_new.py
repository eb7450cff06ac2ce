"""Continue-as-new on the real dev server, told to suggest it after a few dozen history
events: a call keeps its facts, texts and decisions across runs, with CAD events, signals
and an operator's update arriving while it changes runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from temporalio.api.enums.v1 import EventType
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
from tests.harness import Harness, eventually
from tests.workflows.held_activities import HeldOutboxReport
from workflows import search_attributes as sa
from workflows.call_for_service import CallForServiceWorkflow
from workflows.model import (
    CadEventType,
    OptInSignal,
    OptOutSignal,
    ResendConfirmationRequest,
)

pytestmark = pytest.mark.slow

# A day in two seconds: the survey follows its closure by 2 s, its window (a week) 14 s.
TIME_SCALE = 43_200
SUGGEST_AFTER_EVENTS = 40


@pytest.fixture(scope="module")
async def small_history_server() -> AsyncIterator[WorkflowEnvironment]:
    environment = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(installed_binary("temporal")),
        search_attributes=list(sa.ALL),
        dev_server_log_level="error",
        data_converter=TEST_CONVERTER,
        dev_server_extra_args=[
            "--dynamic-config-value",
            f"limit.historyCount.suggestContinueAsNew={SUGGEST_AFTER_EVENTS}",
        ],
    )
    yield environment
    await environment.shutdown()


@pytest.fixture
async def harness(
    small_history_server: WorkflowEnvironment,
    database: Database,
    provider: RecordingProvider,
    held_outbox_report: type[HeldOutboxReport],
) -> AsyncIterator[Harness]:
    # No delay notice: this time scale would pass an hour's threshold in a tenth of a second.
    agency = make_agency(
        timing={"survey_window": "P7D", "delay_thresholds": {"3": "P30D", "4": "P30D"}}
    )
    async for running in start_harness(
        small_history_server,
        database,
        {agency.id: agency},
        provider,
        time_scale=TIME_SCALE,
    ):
        yield running


@pytest.mark.databases("sqlite")
async def test_a_call_continues_as_new_with_events_signals_and_an_update_in_flight(
    harness: Harness, provider: RecordingProvider, held_outbox_report: type[HeldOutboxReport]
) -> None:
    incident = new_incident_id()
    await harness.send(eligible_call(incident))
    handle = harness.handle(incident)
    first_run = harness.handles[incident].first_execution_run_id
    resend = asyncio.create_task(
        handle.execute_update(
            CallForServiceWorkflow.resend_confirmation,
            ResendConfirmationRequest(by="dispatcher.kim", reason="caller says no text came"),
        )
    )
    await asyncio.to_thread(held_outbox_report.looking.wait, 10)

    # Enough CAD events and signals to pass the suggestion while the update waits.
    for minute in range(1, 16):
        await harness.cad.send(
            cad_event(incident, CadEventType.UPDATED, minutes=minute, disposition=f"n{minute}")
        )
        harness.sent_events[incident] += 1
    held_outbox_report.answer.set()
    result = await asyncio.wait_for(resend, 30)
    assert result.message.startswith("confirmation sent again")
    # The call continues as new now that no update is running: signals meet it there.
    await handle.signal(CallForServiceWorkflow.opt_out, OptOutSignal(keyword="STOP"))
    await handle.signal(CallForServiceWorkflow.opt_in, OptInSignal(keyword="START"))
    # CAD's news waits for the START to be seen: a unit assigned in the START's own
    # workflow task counts as before it, and its text is held back (the safe side).
    for _ in range(300):
        if (await handle.query(CallForServiceWorkflow.state)).texting_resumed_at is not None:
            break
        await asyncio.sleep(0.1)

    # More CAD news, delivered to whichever run is current.
    await harness.send(cad_event(incident, CadEventType.ASSIGNED, minutes=20))
    # The close waits for the assigned text: one arriving first would overtake it.
    await eventually(lambda: "assigned" in provider.kinds(), "the assigned text", 30)
    await harness.send(cad_event(incident, CadEventType.CLEARED, minutes=40))
    outcome = await asyncio.wait_for(harness.handles[incident].result(), 60)

    assert provider.kinds() == [
        "confirmation",
        "confirmation",
        "assigned",
        "cleared",
        "survey",
    ]
    assert outcome.texts == ["confirmation", "confirmation", "assigned", "cleared", "survey"]
    first = await harness.env.client.get_workflow_handle(
        handle.id, run_id=first_run
    ).fetch_history()
    assert first.events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    state = await handle.query(CallForServiceWorkflow.state)
    assert state.events_applied + state.events_ignored == harness.sent_events[incident]
