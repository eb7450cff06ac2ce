"""The same random call histories, through the real workflow on the time-skipping server:
once a call is unsafe (or opted out) the outbox never grows again."""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness import Harness
from tests.workflows.scenarios import Action, Event, Signal, call_histories, unsafe_for_good
from workflows.call_for_service import CallForServiceWorkflow
from workflows.model import CallState, OptInSignal, OptOutSignal, SuppressSignal

_incidents = itertools.count(1)


async def run_history(harness: Harness, incident: str, actions: list[Action]) -> None:
    sent_outbox: list[int] = []  # outbox size after each step settled
    unsafe: list[bool] = []
    opted_out: list[bool] = []
    finished = False
    for action in actions:
        before = len(harness.outbox(incident))
        if isinstance(action, Event):
            state = await harness.send(action.event)
        elif isinstance(action, Signal):
            handle = harness.handle(incident)
            if action.kind == "opt_out":
                await handle.signal(CallForServiceWorkflow.opt_out, OptOutSignal(keyword="STOP"))
                state = await harness.settle(incident, lambda s: s.opted_out)
            elif action.kind == "opt_in":
                await handle.signal(CallForServiceWorkflow.opt_in, OptInSignal(keyword="START"))
                state = await harness.settle(incident, _opted_in_or_unsafe)
            else:
                await handle.signal(CallForServiceWorkflow.suppress, SuppressSignal(reason="test"))
                state = await harness.settle(incident, lambda s: s.suppressed_reason is not None)
        else:
            await harness.env.sleep(timedelta(minutes=action.minutes))
            state = await harness.settle(incident)
        after = len(harness.outbox(incident))
        if (unsafe and unsafe[-1]) or (opted_out and opted_out[-1] and not _opted_in(action)):
            assert after == before, f"texted after the call became unsafe or opted out: {action}"
        unsafe.append(unsafe_for_good(state) or (bool(unsafe) and unsafe[-1]))
        opted_out.append(state.opted_out)
        sent_outbox.append(after)
        if state.purged:
            finished = True
            break
    if not finished:
        await harness.terminate_running()
    if any(unsafe):
        first_unsafe = unsafe.index(True)
        assert len(harness.outbox(incident)) == sent_outbox[first_unsafe]


def _opted_in(action: Action) -> bool:
    return isinstance(action, Signal) and action.kind == "opt_in"


def _opted_in_or_unsafe(state: CallState) -> bool:
    return not state.opted_out


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_workflow_never_texts_after_a_safety_stop(
    data: st.DataObject, harness: Harness, event_loop_for_sync_tests: asyncio.AbstractEventLoop
) -> None:
    incident = f"H-{next(_incidents):05d}"
    actions = data.draw(call_histories(incident, max_actions=8, eligible_start=True))
    event_loop_for_sync_tests.run_until_complete(run_history(harness, incident, actions))
