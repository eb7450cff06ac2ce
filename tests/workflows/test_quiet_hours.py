"""Surveys never go out during the agency's quiet hours, in its own time zone."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from temporalio.testing import WorkflowEnvironment

from callerloop.core.agency_config import AgencyConfig
from callerloop.core.db import Database
from tests.conftest import recording_name, start_harness
from tests.factories import (
    RecordingProvider,
    cad_event,
    eligible_call,
    make_agency,
    new_incident_id,
)
from tests.harness import Harness, skip_time
from workflows.model import CadEventType, TextKind

ZONE = ZoneInfo("America/Los_Angeles")


# The survey window, as long as the test agency's unless a test makes it shorter.
@pytest.fixture
def survey_window() -> str:
    return "P7D"


@pytest.fixture
async def quiet_agency(env: WorkflowEnvironment, survey_window: str) -> AgencyConfig:
    """Quiet hours that cover the moment the survey would fall due: from one hour before
    to three hours after (the shared test clock has no fixed time of day)."""
    due = (await env.get_current_time()).astimezone(ZONE) + timedelta(hours=24)
    start, end = due - timedelta(hours=1), due + timedelta(hours=3)
    return make_agency(
        agency={"time_zone": "America/Los_Angeles"},
        timing={
            "quiet_hours": {"start": start.strftime("%H:%M"), "end": end.strftime("%H:%M")},
            "survey_window": survey_window,
        },
    )


@pytest.fixture
async def quiet_harness(
    request: pytest.FixtureRequest,
    env: WorkflowEnvironment,
    database: Database,
    quiet_agency: AgencyConfig,
) -> AsyncIterator[Harness]:
    async for running in start_harness(
        env,
        database,
        {quiet_agency.id: quiet_agency},
        RecordingProvider(),
        record_as=recording_name(request),
    ):
        yield running


async def test_survey_due_in_quiet_hours_waits_for_their_end(quiet_harness: Harness) -> None:
    harness, incident = quiet_harness, new_incident_id()
    await harness.send(eligible_call(incident))
    await harness.send(cad_event(incident, CadEventType.CLEARED, minutes=9))
    await skip_time(harness.env, timedelta(hours=26))
    state = await harness.settle(incident)
    assert not state.sent(TextKind.SURVEY), "sent inside quiet hours"

    await skip_time(harness.env, timedelta(hours=2))
    state = await harness.settle(incident, lambda s: s.sent(TextKind.SURVEY))
    survey_at = next(t.at for t in state.texts if t.kind == TextKind.SURVEY)
    assert state.closed_at is not None
    # Quiet hours end 3 h after the due time (floored to the minute): the survey goes then.
    waited = survey_at - state.closed_at
    assert timedelta(hours=27) - timedelta(minutes=1) <= waited < timedelta(hours=27, minutes=5)


@pytest.mark.record_history
@pytest.mark.parametrize("survey_window", ["PT2H"])
async def test_a_window_shorter_than_the_quiet_hours_still_gets_its_survey(
    quiet_harness: Harness,
) -> None:
    """The window counts from when the survey may go, after the quiet hours: counted from
    the due time, a 2 h window would end the call an hour before the night did."""
    harness, incident = quiet_harness, new_incident_id()
    await harness.send(eligible_call(incident))
    await harness.send(cad_event(incident, CadEventType.CLEARED, minutes=9))
    await skip_time(harness.env, timedelta(hours=28))
    state = await harness.settle(incident, lambda s: s.sent(TextKind.SURVEY))
    assert not state.purged, "the call ended as soon as its survey went"
    await harness.finish(incident)
