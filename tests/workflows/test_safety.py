"""Safety stops mid-call: opt-out, reclassification to a sensitive type, escalation,
do-not-text, operator suppression. After any of them, nothing more is texted."""

from __future__ import annotations

import pytest
from temporalio import activity

import worker
from activities.call_records import CallRecordActivities
from callerloop.messaging.opt_outs import record_opt_out
from tests.factories import RecordingProvider, cad_event, eligible_call, new_incident_id
from tests.harness import Harness
from workflows.call_for_service import CallForServiceWorkflow
from workflows.model import (
    CadEventType,
    CallSource,
    OptInSignal,
    OptOutSignal,
    RecordCallInput,
    SuppressSignal,
    TextingState,
)


@pytest.mark.record_history
async def test_opt_out_mid_call_stops_every_later_text(harness: Harness) -> None:
    incident = new_incident_id()
    await harness.send(eligible_call(incident))
    await harness.handle(incident).signal(
        CallForServiceWorkflow.opt_out, OptOutSignal(keyword="STOP")
    )
    await harness.send(
        cad_event(incident, CadEventType.ASSIGNED, minutes=5),
        cad_event(incident, CadEventType.DELAYED, minutes=6),
        cad_event(incident, CadEventType.CLEARED, minutes=30),
    )
    outcome = await harness.finish(incident)
    assert harness.kinds(incident) == ["confirmation"]
    assert outcome.texting_state == TextingState.FINISHED
    assert outcome.reason == "opted_out"


@pytest.mark.record_history
async def test_opt_in_after_opt_out_resumes_texting(harness: Harness) -> None:
    incident = new_incident_id()
    await harness.send(eligible_call(incident))
    handle = harness.handle(incident)
    await handle.signal(CallForServiceWorkflow.opt_out, OptOutSignal(keyword="STOP"))
    state = await harness.settle(incident, lambda s: s.opted_out)
    assert state.texting_state == TextingState.OPTED_OUT
    await handle.signal(CallForServiceWorkflow.opt_in, OptInSignal(keyword="START"))
    await harness.settle(incident, lambda s: not s.opted_out)
    await harness.send(cad_event(incident, CadEventType.ASSIGNED, minutes=5))
    assert harness.kinds(incident) == ["confirmation", "assigned"]


class StopLandsAsTheCallIsRecorded(CallRecordActivities):
    """The race: the caller's STOP reaches the registry just as the call is first put on
    record, too early for the STOP's handler to find the call and signal it. (An earlier
    version also looked at the registry before the record, and a STOP right after that
    look slipped through; that look is gone, so it is not injected here.)"""

    @activity.defn(name="record_call")
    def record_call(self, input: RecordCallInput) -> None:
        super().record_call(input)
        phone = input.snapshot.caller_phone
        if phone is not None:
            record_opt_out(self._db, input.snapshot.agency, phone, "STOP", opted_out=True)


@pytest.fixture
def stop_lands_as_the_call_is_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker, "CallRecordActivities", StopLandsAsTheCallIsRecorded)


async def test_a_stop_written_as_the_call_is_recorded_stops_the_first_text(
    stop_lands_as_the_call_is_recorded: None,
    harness: Harness,
    provider: RecordingProvider,
) -> None:
    incident = new_incident_id()
    state = await harness.send(eligible_call(incident))
    assert state.texting_state == TextingState.OPTED_OUT
    await harness.send(cad_event(incident, CadEventType.CLEARED, minutes=30))
    await harness.finish(incident)
    assert provider.calls == 0


async def test_number_in_the_opt_out_registry_is_never_texted(
    harness: Harness, provider: RecordingProvider
) -> None:
    incident = new_incident_id()
    record_opt_out(harness.db, "testville", "+17035550142", "STOP", opted_out=True)
    state = await harness.send(eligible_call(incident, caller_phone="+17035550142"))
    assert state.texting_state == TextingState.OPTED_OUT
    await harness.send(cad_event(incident, CadEventType.CLEARED, minutes=30))
    await harness.finish(incident)
    assert provider.calls == 0


@pytest.mark.record_history
async def test_reclassified_to_a_sensitive_type_stops_texting_for_good(harness: Harness) -> None:
    incident = new_incident_id()
    await harness.send(eligible_call(incident, call_type="NOISE COMPLAINT DELAY"))
    state = await harness.send(
        cad_event(incident, CadEventType.UPDATED, minutes=4, call_type="DOMESTIC VIOL NO INJ")
    )
    assert state.texting_state == TextingState.BLOCKED
    # Reclassified back: still never texts again.
    await harness.send(
        cad_event(incident, CadEventType.UPDATED, minutes=8, call_type="NOISE COMPLAINT"),
        cad_event(incident, CadEventType.ASSIGNED, minutes=9),
        cad_event(incident, CadEventType.CLEARED, minutes=40),
    )
    outcome = await harness.finish(incident)
    assert harness.kinds(incident) == ["confirmation"]
    assert outcome.reason == "call_type_sensitive"


async def test_agency_excluded_type_and_in_progress_block_too(harness: Harness) -> None:
    excluded, in_progress = new_incident_id(), new_incident_id()
    await harness.send(eligible_call(excluded, call_type="WEAPON VIOL GUN DELAY"))
    await harness.send(eligible_call(in_progress, call_type="TRESPASSING IN PROG"))
    calls = ((excluded, "call_type_excluded"), (in_progress, "in_progress"))
    for incident, _ in calls:  # before either is run to its end (that skips time)
        await harness.send(cad_event(incident, CadEventType.CLEARED, minutes=30))
    for incident, reason in calls:
        outcome = await harness.finish(incident)
        assert outcome.texts == [] and outcome.reason == reason


@pytest.mark.record_history
async def test_escalation_above_eligible_priorities_stops_texting(harness: Harness) -> None:
    incident = new_incident_id()
    await harness.send(eligible_call(incident, priority=4))
    state = await harness.send(cad_event(incident, CadEventType.UPDATED, minutes=2, priority=1))
    assert state.texting_state == TextingState.BLOCKED
    await harness.send(
        cad_event(incident, CadEventType.UPDATED, minutes=20, priority=4),
        cad_event(incident, CadEventType.ASSIGNED, minutes=21),
        cad_event(incident, CadEventType.CLEARED, minutes=60),
    )
    outcome = await harness.finish(incident)
    assert harness.kinds(incident) == ["confirmation"]
    assert outcome.reason == "priority_escalated"


@pytest.mark.record_history
async def test_do_not_text_flag_and_operator_suppression(harness: Harness) -> None:
    flagged, suppressed = new_incident_id(), new_incident_id()
    await harness.send(eligible_call(flagged), eligible_call(suppressed))
    await harness.send(cad_event(flagged, CadEventType.UPDATED, minutes=1, do_not_text=True))
    await harness.handle(suppressed).signal(
        CallForServiceWorkflow.suppress,
        SuppressSignal(reason="caller asked the call-taker", by="op7"),
    )
    await harness.settle(suppressed, lambda s: s.blocked is not None)
    # Both calls hear everything before either is run to its end: finishing one skips
    # time, and the other (never to be texted again) may end meanwhile.
    for incident in (flagged, suppressed):
        await harness.send(
            cad_event(incident, CadEventType.ASSIGNED, minutes=5),
            cad_event(incident, CadEventType.CLEARED, minutes=30),
        )
    for incident in (flagged, suppressed):
        outcome = await harness.finish(incident)
        assert outcome.texts == ["confirmation"]
        assert outcome.texting_state == TextingState.FINISHED
    state = await harness.state(suppressed)
    assert state.blocked is not None and "op7" in state.blocked.detail


async def test_officer_initiated_call_is_never_texted(
    harness: Harness, provider: RecordingProvider
) -> None:
    incident = new_incident_id()
    await harness.send(
        eligible_call(incident, source=CallSource.OFFICER),
        cad_event(incident, CadEventType.CLEARED, minutes=20),
    )
    outcome = await harness.finish(incident)
    assert outcome.reason == "officer_initiated"
    assert provider.calls == 0
