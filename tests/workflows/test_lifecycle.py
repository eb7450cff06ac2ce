"""The whole life of a call, on the time-skipping server: days of workflow time in
milliseconds."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlmodel import select
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from activities.sms_providers.local import LocalProvider
from callerloop.core.agency_config import AgencyConfig
from callerloop.core.db import CallEventRecord, CallRecord, Database, EligibilityDecisionRecord
from callerloop.core.settings import Settings
from tests.conftest import start_harness
from tests.factories import RecordingProvider, cad_event, eligible_call, new_incident_id
from tests.harness import Harness, skip_time
from worker import build_workers
from workflows.model import CadEventType, TextingState, TextKind


@pytest.mark.record_history
# The whole path, activities included, on PostgreSQL too (other workflow tests: SQLite).
@pytest.mark.databases("sqlite", "postgresql")
async def test_eligible_call_is_texted_through_to_survey_and_purge(
    harness: Harness, provider: RecordingProvider
) -> None:
    incident = new_incident_id()
    state = await harness.send(eligible_call(incident))
    assert harness.kinds(incident) == ["confirmation"]
    assert state.texting_state == TextingState.ACTIVE

    await harness.send(cad_event(incident, CadEventType.ASSIGNED, minutes=10))
    await harness.send(cad_event(incident, CadEventType.CLEARED, minutes=50))
    outcome = await harness.finish(incident)

    assert harness.kinds(incident) == ["confirmation", "assigned", "cleared", "survey"]
    assert outcome.texts == [
        TextKind.CONFIRMATION,
        TextKind.ASSIGNED,
        TextKind.CLEARED,
        TextKind.SURVEY,
    ]
    assert outcome.texting_state == TextingState.FINISHED
    # Each text went to the provider exactly once, from the agency's own number.
    assert len(provider.accepted) == 4
    assert {t.sender_number for t in provider.accepted} == {"+17035550100"}
    confirmation = provider.accepted[0].body
    assert f"C{incident}" in confirmation and "STOP" in confirmation
    assert "https://callerloop.test/s/" in confirmation
    assert "https://callerloop.test/survey/" in provider.accepted[3].body
    # Personal data is purged at the end; the facts for statistics stay.
    rows = harness.outbox(incident)
    assert all(row.to is None and row.body is None for row in rows)
    assert all(row.status == "queued" and row.provider_id for row in rows)
    with harness.db.session() as session:
        call = session.exec(select(CallRecord)).one()
        assert call.caller_phone is None and call.purged_at is not None
        assert call.texting_state == "finished" and call.status == "cleared"
        assert len(session.exec(select(CallEventRecord)).all()) == 3
        decisions = session.exec(select(EligibilityDecisionRecord)).all()
        assert [d.reason for d in decisions] == ["eligible"]


async def test_survey_waits_for_the_survey_delay(harness: Harness) -> None:
    incident = new_incident_id()
    await harness.send(eligible_call(incident))
    await harness.send(cad_event(incident, CadEventType.CLEARED, minutes=5))
    assert harness.kinds(incident) == ["confirmation", "cleared"]

    await skip_time(harness.env, timedelta(hours=23))
    state = await harness.settle(incident)
    assert not state.sent(TextKind.SURVEY)

    await skip_time(harness.env, timedelta(hours=2))
    state = await harness.settle(incident, lambda s: s.sent(TextKind.SURVEY))
    survey_at = next(t.at for t in state.texts if t.kind == TextKind.SURVEY)
    assert state.closed_at is not None
    assert timedelta(hours=24) <= survey_at - state.closed_at < timedelta(hours=25)


@pytest.mark.record_history
async def test_call_that_is_never_eligible_sends_nothing_and_finishes_at_close(
    harness: Harness, provider: RecordingProvider
) -> None:
    incident = new_incident_id()
    await harness.send(
        eligible_call(incident, call_type="DOMESTIC VIOL NO INJ"),
        cad_event(incident, CadEventType.ASSIGNED, minutes=3),
        cad_event(incident, CadEventType.CLEARED, minutes=40),
    )
    outcome = await harness.finish(incident)
    assert outcome.texts == []
    assert outcome.reason == "call_type_sensitive"
    assert provider.calls == 0
    assert harness.outbox(incident) == []
    with harness.db.session() as session:
        assert session.exec(select(CallRecord)).one().purged_at is not None
    # The purge ran as a local activity in the call's last workflow task: a call that is
    # never texted gives the server no activity task at all.
    history = await harness.handle(incident).fetch_history()
    scheduled = [
        e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    assert scheduled == []


@pytest.mark.record_history
async def test_call_closed_before_confirmation_gets_only_the_closing_note(
    harness: Harness,
) -> None:
    incident = new_incident_id()
    # The first thing callerloop hears of this call is its closure (a late CAD feed).
    created = eligible_call(incident)
    await harness.send(
        cad_event(
            incident,
            CadEventType.CLEARED,
            minutes=30,
            priority=created.priority,
            call_type=created.call_type,
            source=created.source,
            caller_phone=created.caller_phone,
            caller_line_type=created.caller_line_type,
        )
    )
    outcome = await harness.finish(incident)
    assert outcome.texts == [TextKind.CLEARED, TextKind.SURVEY]


async def test_cad_client_publish_starts_the_call_and_returns_its_workflow_id(
    harness: Harness,
) -> None:
    incident = new_incident_id()
    workflow_id = await harness.cad.publish(eligible_call(incident))
    harness.handles.setdefault(incident, harness.handle(incident))
    assert workflow_id == f"call/testville/{incident}"
    await harness.settle(incident, lambda s: s.sent(TextKind.CONFIRMATION))
    assert harness.kinds(incident) == ["confirmation"]


async def test_calls_evicted_from_the_worker_cache_replay_and_go_on(
    env: WorkflowEnvironment,
    database: Database,
    agency: AgencyConfig,
    provider: RecordingProvider,
) -> None:
    """With room for one call, every call's next event or timer finds it evicted: each
    replays its history (the scale bench evicts thousands) and ends as if it never left."""
    agencies = {agency.id: agency}
    async for harness in start_harness(env, database, agencies, provider, workflow_cache_size=1):
        first, second = new_incident_id(), new_incident_id()
        await harness.send(eligible_call(first))
        await harness.send(eligible_call(second))
        await harness.send(cad_event(first, CadEventType.CLEARED, minutes=20))
        await harness.send(cad_event(second, CadEventType.CLEARED, minutes=30))
        for incident in (first, second):
            outcome = await harness.finish(incident)
            assert outcome.texts == [TextKind.CONFIRMATION, TextKind.CLEARED, TextKind.SURVEY]
            assert harness.kinds(incident) == ["confirmation", "cleared", "survey"]


async def test_the_worker_keeps_as_many_calls_cached_as_configured(
    env: WorkflowEnvironment, database: Database, agency: AgencyConfig
) -> None:
    settings = Settings(task_queue=f"test-{uuid.uuid4()}", workflow_cache_size=3)
    with ThreadPoolExecutor(2) as executor:
        main, *_senders = build_workers(
            env.client, settings, database, {agency.id: agency}, LocalProvider(), executor, 2
        )
    assert main.config()["max_cached_workflows"] == 3


async def test_a_call_type_no_safety_rule_can_read_is_never_texted(
    harness: Harness, provider: RecordingProvider
) -> None:
    """Such a type is refused at the CAD edge; one that reaches the call another way
    (here, straight to its workflow) is still default-deny."""
    incident = new_incident_id()
    state = await harness.send(eligible_call(incident, call_type="家庭暴力"))
    await harness.send(cad_event(incident, CadEventType.CLEARED, minutes=30))
    await harness.finish(incident)
    assert state.decision is not None and state.decision.reason == "call_type_unknown"
    assert provider.accepted == []
