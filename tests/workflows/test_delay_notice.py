"""The delay notice: once, when no unit is assigned within the agency's threshold for the
call's priority, or when CAD says the response is delayed."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.factories import cad_event, eligible_call, new_incident_id
from tests.harness import Harness, skip_time
from workflows.model import CadEventType, TextKind


@pytest.mark.record_history
async def test_delay_notice_when_no_unit_within_threshold(harness: Harness) -> None:
    incident = new_incident_id()
    await harness.send(eligible_call(incident, priority=4))  # threshold PT2H

    await skip_time(harness.env, timedelta(minutes=110))
    state = await harness.settle(incident)
    assert not state.sent(TextKind.DELAYED)

    await skip_time(harness.env, timedelta(minutes=15))
    state = await harness.settle(incident, lambda s: s.sent(TextKind.DELAYED))
    assert harness.kinds(incident) == ["confirmation", "delayed"]
    assert state.received_at is not None
    delayed_at = next(t.at for t in state.texts if t.kind == TextKind.DELAYED)
    assert timedelta(hours=2) <= delayed_at - state.received_at < timedelta(hours=2, minutes=15)


async def test_threshold_follows_the_current_priority(harness: Harness) -> None:
    incident = new_incident_id()
    await harness.send(eligible_call(incident, priority=4))
    await harness.send(cad_event(incident, CadEventType.UPDATED, minutes=5, priority=3))  # PT1H
    await skip_time(harness.env, timedelta(minutes=65))
    await harness.settle(incident, lambda s: s.sent(TextKind.DELAYED))
    assert harness.kinds(incident) == ["confirmation", "delayed"]


async def test_no_delay_notice_when_a_unit_is_assigned_in_time(harness: Harness) -> None:
    incident = new_incident_id()
    await harness.send(eligible_call(incident, priority=4))
    await harness.send(cad_event(incident, CadEventType.ASSIGNED, minutes=30))
    await skip_time(harness.env, timedelta(hours=3))
    await harness.send(cad_event(incident, CadEventType.CLEARED, minutes=200))
    outcome = await harness.finish(incident)
    assert TextKind.DELAYED not in outcome.texts
    assert harness.kinds(incident) == ["confirmation", "assigned", "cleared", "survey"]


@pytest.mark.record_history
async def test_explicit_delay_event_sends_the_notice_at_most_once(harness: Harness) -> None:
    incident = new_incident_id()
    await harness.send(eligible_call(incident, priority=4))
    await harness.send(cad_event(incident, CadEventType.DELAYED, minutes=3))
    assert harness.kinds(incident) == ["confirmation", "delayed"]

    # A second delay report, then the threshold passing, send nothing more.
    await harness.send(cad_event(incident, CadEventType.DELAYED, minutes=40))
    await skip_time(harness.env, timedelta(hours=3))
    await harness.send(cad_event(incident, CadEventType.ASSIGNED, minutes=190))
    await harness.send(cad_event(incident, CadEventType.CLEARED, minutes=230))
    outcome = await harness.finish(incident)
    assert outcome.texts.count(TextKind.DELAYED) == 1
    assert harness.kinds(incident) == ["confirmation", "delayed", "assigned", "cleared", "survey"]
