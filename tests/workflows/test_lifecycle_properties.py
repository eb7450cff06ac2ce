"""Property-based tests of the pure lifecycle: thousands of random call histories run
through the same `apply_event`, `refresh_decision` and `plan` the workflow runs."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.factories import make_agency
from tests.workflows.scenarios import Action, Event, call_histories, makes_unsafe, opts_out
from tests.workflows.simulation import Simulation
from workflows.model import CadEventType, TextKind

POLICY = make_agency().to_policy()


def simulate(actions: list[Action]) -> tuple[Simulation, list[bool], list[bool]]:
    """Run the history; return the simulation and, per step, whether the call was unsafe
    for good and whether it was opted out once the step's facts were applied."""
    simulation = Simulation(POLICY)
    unsafe: list[bool] = []
    opted_out: list[bool] = []
    for step, action in enumerate(actions):
        if simulation.finished:
            break
        simulation.act(action, step)
        unsafe.append(makes_unsafe(action) or (bool(unsafe) and unsafe[-1]))
        stop = opts_out(action)
        opted_out.append(stop if stop is not None else bool(opted_out) and opted_out[-1])
    simulation.play_until(simulation.now + timedelta(days=60), len(actions))
    return simulation, unsafe, opted_out


@settings(max_examples=1500, deadline=None)
@given(call_histories("P-1"))
def test_no_text_after_a_call_becomes_unsafe_or_opts_out(actions: list[Action]) -> None:
    simulation, unsafe, opted_out = simulate(actions)
    for step, kind in simulation.sends:
        if step < len(unsafe):
            assert not unsafe[step], f"{kind} sent at step {step} after the call became unsafe"
            assert not opted_out[step], f"{kind} sent at step {step} while opted out"
        else:  # the final run: nothing after anything unsafe, nor while opted out
            assert not any(unsafe) and not (opted_out and opted_out[-1])


@settings(max_examples=1000, deadline=None)
@given(call_histories("P-1"))
def test_each_kind_at_most_once_and_never_over_the_cap(actions: list[Action]) -> None:
    simulation, _, _ = simulate(actions)
    kinds = [kind for _, kind in simulation.sends]
    assert len(kinds) == len(set(kinds))
    assert len(kinds) <= POLICY.max_texts_per_call
    if kinds:
        assert kinds[0] in (TextKind.CONFIRMATION, TextKind.CLEARED)
    if TextKind.SURVEY in kinds:
        assert kinds.index(TextKind.SURVEY) == len(kinds) - 1


@settings(max_examples=500, deadline=None)
@given(call_histories("P-1"), st.sampled_from([1, 2]))
def test_a_smaller_cap_is_respected(actions: list[Action], cap: int) -> None:
    simulation = Simulation(make_agency(texts={"max_per_call": cap}).to_policy())
    for step, action in enumerate(actions):
        simulation.act(action, step)
    simulation.play_until(simulation.now + timedelta(days=60), len(actions))
    assert len(simulation.sends) <= cap


@settings(max_examples=500, deadline=None)
@given(call_histories("P-1"))
def test_every_call_finishes_and_the_survey_follows_the_clearing(actions: list[Action]) -> None:
    simulation, _, _ = simulate(actions)
    assert simulation.finished, "a call must end (purge) within 60 days of its last event"
    surveys = [kind for _, kind in simulation.sends if kind == TextKind.SURVEY]
    assert len(simulation.survey_waits) == len(surveys)
    assert all(wait >= timedelta(hours=24) for wait in simulation.survey_waits)


STAGE = ["confirmation", "delayed", "assigned", "cleared", "survey"]


@settings(max_examples=1000, deadline=None)
@given(call_histories("P-1"))
def test_texts_tell_the_stages_in_order_unless_the_call_is_reopened(
    actions: list[Action],
) -> None:
    simulation, _, _ = simulate(actions)
    reopens = [
        step
        for step, action in enumerate(actions)
        if isinstance(action, Event) and action.event.event_type == CadEventType.REOPENED
    ]
    told, told_at = -1, -1
    for step, kind in simulation.sends:
        if any(told_at <= reopen <= step for reopen in reopens):
            told = -1
        stage = STAGE.index(kind.value)
        assert stage >= told, f"{kind} after a later stage's text: {simulation.sends}"
        told, told_at = max(told, stage), step
