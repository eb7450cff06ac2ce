"""Safety stops under timing: a text on its way (in its retries, waiting for its turn, at
the provider) when the call turns sensitive or the caller replies STOP; START after a
STOP; a closing note followed by a late unit status; an operator's resend that outlives
its call. Each test judges what the provider received, not the workflow's own state."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta

import pytest
from sqlmodel import select
from temporalio.client import WorkflowUpdateFailedError

from activities import pacing
from activities.sms_providers.base import OutgoingText, TransientProviderError
from callerloop.cad.edge_stops import hold_at_edge
from callerloop.core.db import SendRevocation
from callerloop.messaging.opt_outs import record_opt_out
from tests.factories import RecordingProvider, cad_event, eligible_call, new_incident_id
from tests.harness import Harness, eventually, skip_time
from tests.workflows.held_activities import HeldOutboxReport
from workflows.call_for_service import CallForServiceWorkflow
from workflows.model import (
    CadEventType,
    LineType,
    OptInSignal,
    OptOutSignal,
    ResendConfirmationRequest,
    SuppressRequest,
)

PHONE = "+17035550142"


def throttled(text: OutgoingText) -> None:
    raise TransientProviderError("20429", "Too Many Requests")


async def start_call(harness: Harness, incident: str, **fields: object) -> None:
    """The call's first event, without waiting for the workflow to settle (its first text
    may be held up on purpose)."""
    delivered = await harness.cad.send(eligible_call(incident, **fields))
    harness.handles[incident] = delivered.handle


# --- each safety fact, arriving while the first text waits out a throttled retry ----------


async def call_in_retry(harness: Harness, provider: RecordingProvider) -> str:
    """A new call whose confirmation was throttled once and now waits in backoff."""
    provider.failures.append(throttled)
    incident = new_incident_id()
    await start_call(harness, incident)
    await eventually(lambda: provider.calls >= 1, "the first, throttled attempt")
    return incident


Stop = Callable[[Harness, str], Awaitable[object]]


def cad_update(**fields: object) -> Stop:
    async def stop(harness: Harness, incident: str) -> object:
        return await harness.cad.send(
            cad_event(incident, CadEventType.UPDATED, minutes=1, **fields)  # type: ignore[arg-type]
        )

    return stop


async def caller_replies_stop(harness: Harness, incident: str) -> object:
    await harness.handle(incident).signal(
        CallForServiceWorkflow.opt_out, OptOutSignal(keyword="STOP")
    )
    return None


async def operator_suppresses(harness: Harness, incident: str) -> object:
    # Started, not awaited: the answer may wait for the send on its way to be withdrawn.
    return asyncio.create_task(
        harness.handle(incident).execute_update(
            "suppress", SuppressRequest(by="sgt.lee", reason="caller's partner reads the texts")
        )
    )


SAFETY_FACTS: dict[str, Stop] = {
    "reclassified to a sensitive type": cad_update(call_type="DOMESTIC DISTURBANCE"),
    "escalated to priority 1": cad_update(priority=1),
    "flagged in progress": cad_update(in_progress=True),
    "flagged do not text": cad_update(do_not_text=True),
    "found to be a landline": cad_update(caller_line_type=LineType.LANDLINE),
    "the caller replied STOP": caller_replies_stop,
    "an operator suppressed it": operator_suppresses,
}


@pytest.mark.parametrize("fact", SAFETY_FACTS, ids=list(SAFETY_FACTS))
async def test_a_text_in_retry_never_reaches_the_provider_after_a_safety_stop(
    fact: str, harness: Harness, provider: RecordingProvider
) -> None:
    provider.failures.extend([throttled, throttled])
    incident = new_incident_id()
    await start_call(harness, incident)
    await eventually(lambda: provider.calls >= 1, "the first, throttled attempt")

    pending = await SAFETY_FACTS[fact](harness, incident)
    # Days pass: any retry still scheduled would have run by now.
    await skip_time(harness.env, timedelta(days=2))
    await harness.settle(incident)
    if isinstance(pending, asyncio.Task):
        await asyncio.wait_for(pending, 30)

    assert provider.accepted == [], f"texted after the call was {fact}"
    assert [row.status for row in harness.outbox(incident)] == ["withheld"]


# --- an attempt that never hears of its cancellation ----------------------------------


@pytest.fixture
def first_turn_held() -> Iterator[tuple[threading.Event, threading.Event]]:
    """The sender's first turn is held until released: the attempt has claimed its row
    and waits to hand it over, as a busy or restarted worker's attempt might."""
    waiting, release = threading.Event(), threading.Event()
    original = pacing.Pacer.wait_turn

    def held_turn(self: pacing.Pacer) -> None:
        if not waiting.is_set():
            waiting.set()
            release.wait(20)
        original(self)

    pacing.Pacer.wait_turn = held_turn  # type: ignore[method-assign]
    try:
        yield waiting, release
    finally:
        release.set()
        pacing.Pacer.wait_turn = original  # type: ignore[method-assign]


@pytest.mark.record_history
async def test_an_attempt_that_never_hears_of_its_cancellation_is_refused_at_the_hand_off(
    first_turn_held: tuple[threading.Event, threading.Event],
    harness: Harness,
    provider: RecordingProvider,
) -> None:
    waiting, release = first_turn_held
    incident = new_incident_id()
    await start_call(harness, incident)
    await eventually(waiting.is_set, "the attempt waiting for its turn")

    await cad_update(call_type="SEXUAL ASSAULT")(harness, incident)

    def revoked() -> bool:
        with harness.db.session() as session:
            return session.exec(select(SendRevocation)).first() is not None

    await eventually(revoked, "the call to withdraw its send")
    release.set()  # the attempt goes on as if no cancellation had reached it
    await skip_time(harness.env, timedelta(hours=1))
    await harness.settle(incident)

    assert provider.calls == 0
    assert [row.status for row in harness.outbox(incident)] == ["withheld"]


async def test_a_text_already_at_the_provider_when_the_call_turns_sensitive_is_kept_as_sent(
    harness: Harness, provider: RecordingProvider
) -> None:
    at_provider, answer = threading.Event(), threading.Event()

    def slow_answer(text: OutgoingText) -> None:
        at_provider.set()
        answer.wait(20)

    provider.failures.append(slow_answer)
    incident = new_incident_id()
    await start_call(harness, incident)
    await eventually(at_provider.is_set, "the provider holding the text")
    await cad_update(call_type="DOMESTIC DISTURBANCE")(harness, incident)
    await asyncio.sleep(0.2)
    answer.set()  # the provider accepts what it was handed before the stop
    await skip_time(harness.env, timedelta(days=2))
    await harness.settle(incident)

    assert provider.calls == 1 and provider.kinds() == ["confirmation"]
    [row] = harness.outbox(incident)
    assert row.status == "queued" and row.provider_id is not None


# --- START after STOP -------------------------------------------------------------------


@pytest.mark.record_history
async def test_start_lets_through_only_texts_for_what_happens_after_it(
    harness: Harness, provider: RecordingProvider
) -> None:
    """A call made while its number was opted out: the delay threshold, the closure and
    the survey's time all pass. START then sends none of that backlog; a unit assigned
    after the START is texted."""
    record_opt_out(harness.db, "testville", PHONE, "STOP", opted_out=True)
    incident = new_incident_id()
    await harness.send(eligible_call(incident, priority=3))  # delay notice due after 1 h
    await skip_time(harness.env, timedelta(hours=2))
    await harness.send(cad_event(incident, CadEventType.CLEARED, minutes=130))
    await skip_time(harness.env, timedelta(hours=26))  # the survey's time has come and gone

    # START, as the inbound webhook handles it: the registry first, then every open call.
    record_opt_out(harness.db, "testville", PHONE, "START", opted_out=False)
    await harness.handle(incident).signal(
        CallForServiceWorkflow.opt_in, OptInSignal(keyword="START")
    )
    await skip_time(harness.env, timedelta(hours=1))
    await harness.settle(incident)
    assert provider.accepted == [], "START let texts held back while opted out through"

    await harness.send(cad_event(incident, CadEventType.REOPENED, minutes=2000))
    await harness.send(cad_event(incident, CadEventType.ASSIGNED, minutes=2001))
    assert provider.kinds() == ["assigned"]


# --- a late unit status after the closing note --------------------------------------------


@pytest.mark.record_history
async def test_a_closing_note_is_never_followed_by_an_assigned_text_without_a_reopen(
    harness: Harness, provider: RecordingProvider
) -> None:
    incident = new_incident_id()
    await harness.send(eligible_call(incident))
    await harness.send(cad_event(incident, CadEventType.CLEARED, minutes=10))
    await harness.send(cad_event(incident, CadEventType.ASSIGNED, minutes=20))
    await harness.finish(incident)
    assert provider.kinds() == ["confirmation", "cleared", "survey"]


# --- an operator's resend that outlives its call -------------------------------------------


async def test_a_resend_outlived_by_stop_and_closure_is_refused_and_the_call_finishes(
    held_outbox_report: type[HeldOutboxReport], harness: Harness, provider: RecordingProvider
) -> None:
    incident = new_incident_id()
    await harness.send(eligible_call(incident))
    handle = harness.handle(incident)
    resend = asyncio.create_task(
        handle.execute_update(
            CallForServiceWorkflow.resend_confirmation,
            ResendConfirmationRequest(by="dispatcher.kim", reason="caller says no text came"),
        )
    )
    await eventually(held_outbox_report.looking.is_set, "the resend looking at the outbox")
    await handle.signal(CallForServiceWorkflow.opt_out, OptOutSignal(keyword="STOP"))
    await harness.send(cad_event(incident, CadEventType.CLEARED, minutes=10))
    held_outbox_report.answer.set()

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await asyncio.wait_for(resend, 30)
    assert "not resent" in str(refused.value.cause)
    outcome = await asyncio.wait_for(harness.finish(incident), 60)
    assert outcome.reason == "opted_out"
    assert provider.kinds() == ["confirmation"]


# --- facts the workflow has not seen yet (its worker restarting) --------------------------


async def test_a_stop_in_the_registry_stops_a_text_in_retry_before_the_call_hears_of_it(
    harness: Harness, provider: RecordingProvider
) -> None:
    """The inbound webhook writes the registry at once and signals the call after: the
    hand-off reads the registry, so the STOP holds while the signal is still on its way."""
    incident = await call_in_retry(harness, provider)
    record_opt_out(harness.db, "testville", PHONE, "STOP", opted_out=True)  # no signal
    await skip_time(harness.env, timedelta(hours=1))
    assert provider.accepted == []
    assert [row.status for row in harness.outbox(incident)] == ["withheld"]


async def test_a_safety_fact_at_the_cad_edge_stops_a_text_in_retry_before_the_call_hears_of_it(
    harness: Harness, provider: RecordingProvider
) -> None:
    incident = await call_in_retry(harness, provider)
    sensitive = cad_event(incident, CadEventType.UPDATED, minutes=1, call_type="SEXUAL ASSAULT")
    hold_at_edge(harness.db, harness.agencies, sensitive)
    await skip_time(harness.env, timedelta(hours=1))  # the event itself is never signalled
    assert provider.accepted == []
    assert [row.status for row in harness.outbox(incident)] == ["withheld"]


async def test_a_close_at_the_cad_edge_stops_an_earlier_stages_text_before_the_call_hears_of_it(
    harness: Harness, provider: RecordingProvider
) -> None:
    incident = await call_in_retry(harness, provider)
    hold_at_edge(harness.db, harness.agencies, cad_event(incident, CadEventType.CLEARED, minutes=9))
    await skip_time(harness.env, timedelta(hours=1))  # the close itself is never signalled
    assert provider.accepted == [], "a confirmation after the call was over"
    # A reopen, newer by CAD's clock, lifts it: the unit's text goes.
    hold_at_edge(
        harness.db, harness.agencies, cad_event(incident, CadEventType.REOPENED, minutes=10)
    )
    await harness.send(cad_event(incident, CadEventType.ASSIGNED, minutes=11))
    assert provider.kinds() == ["assigned"]
