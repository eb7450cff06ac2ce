"""Sending through Temporal: activity retries never double-send; permanent provider
errors change the call's texting state."""

from __future__ import annotations

import pytest

from activities import texts
from activities.sms_providers.base import (
    OutgoingText,
    PermanentProviderError,
    TransientProviderError,
)
from tests.factories import RecordingProvider, cad_event, eligible_call, new_incident_id
from tests.harness import Harness
from workflows.activity_errors import SmsFailure
from workflows.model import CadEventType, TextingState


def throttled(text: OutgoingText) -> None:
    raise TransientProviderError("20429", "Too Many Requests")


def crashed_mid_send(text: OutgoingText) -> None:
    raise ConnectionResetError("connection reset after the request was written")


async def test_retried_send_activity_does_not_send_twice(
    harness: Harness, provider: RecordingProvider
) -> None:
    provider.failures.extend([throttled, throttled])
    incident = new_incident_id()
    await harness.send(eligible_call(incident))
    [row] = harness.outbox(incident)
    assert row.status == "queued" and row.attempts == 3
    assert provider.calls == 3 and len(provider.accepted) == 1


async def test_send_with_unknown_outcome_is_not_repeated(
    harness: Harness, provider: RecordingProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The retry waits out the hand-over's time in flight (wall-clock): 15 s is not the point.
    monkeypatch.setattr(texts, "IN_FLIGHT_WITHOUT_RECORDS_SECONDS", 1.0)
    provider.failures.append(crashed_mid_send)
    incident = new_incident_id()
    state = await harness.send(eligible_call(incident))
    assert provider.calls == 1
    [row] = harness.outbox(incident)
    assert row.status == "unknown"
    assert [t.status for t in state.texts] == ["unknown"]


@pytest.mark.record_history
async def test_carrier_opt_out_marks_the_call_opted_out(
    harness: Harness, provider: RecordingProvider
) -> None:
    def unsubscribed(text: OutgoingText) -> None:
        raise PermanentProviderError(SmsFailure.OPTED_OUT, "21610", "unsubscribed recipient")

    provider.failures.append(unsubscribed)
    incident = new_incident_id()
    state = await harness.send(eligible_call(incident))
    assert state.opted_out and state.texting_state == TextingState.OPTED_OUT
    await harness.send(cad_event(incident, CadEventType.ASSIGNED, minutes=4))
    assert provider.calls == 1


@pytest.mark.record_history
async def test_unusable_number_stops_texting_that_number(
    harness: Harness, provider: RecordingProvider
) -> None:
    def landline(text: OutgoingText) -> None:
        raise PermanentProviderError(SmsFailure.NUMBER_UNUSABLE, "21614", "not a mobile number")

    provider.failures.append(landline)
    incident = new_incident_id()
    state = await harness.send(eligible_call(incident))
    assert state.decision is not None and state.decision.reason == "phone_unusable"
    assert state.texting_state == TextingState.INELIGIBLE
    # A corrected number from CAD is texted again.
    state = await harness.send(
        cad_event(incident, CadEventType.UPDATED, minutes=3, caller_phone="+17035550199")
    )
    assert state.texting_state == TextingState.ACTIVE
    await harness.send(cad_event(incident, CadEventType.ASSIGNED, minutes=4))
    assert [t.to for t in provider.accepted] == ["+17035550199"]
