"""The survey in the text thread as a resident answers it: their texts through the real
signed `/twilio/inbound` webhook, the real workflow on the time-skipping server, and what
the provider was handed in return."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlmodel import select
from temporalio.testing import WorkflowEnvironment

from callerloop.core.agency_config import AgencyConfig
from callerloop.core.db import Database, SurveyAnswer, SurveyResponse
from tests.conftest import start_harness
from tests.factories import (
    RecordingProvider,
    cad_event,
    eligible_call,
    make_agency,
    new_incident_id,
)
from tests.harness import Harness, skip_time
from tests.web.test_twilio_webhooks import (
    client_for,
    inbound_form,
    make_app,
    reply_text,
    signed_headers,
)
from workflows.model import CadEventType, CallState, TextKind

INBOUND = "/twilio/inbound"


@pytest.fixture
def thread_agency() -> AgencyConfig:
    return make_agency(survey={"delivery": "thread"})


@pytest.fixture
async def thread(
    env: WorkflowEnvironment,
    database: Database,
    thread_agency: AgencyConfig,
    provider: RecordingProvider,
) -> AsyncIterator[Harness]:
    async for running in start_harness(env, database, {"testville": thread_agency}, provider):
        yield running


@pytest.fixture
async def twilio(thread: Harness, thread_agency: AgencyConfig) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(make_app(thread.db, thread_agency, client=thread.env.client)) as client:
        yield client


async def text_in(client: httpx.AsyncClient, body: str) -> str | None:
    form = inbound_form(body)
    response = await client.post(INBOUND, data=form, headers=signed_headers(INBOUND, form))
    return reply_text(response)


def asked(state: CallState) -> int:
    return sum(1 for t in state.texts if t.kind == TextKind.SURVEY_QUESTION)


async def surveyed_call(harness: Harness) -> str:
    incident = new_incident_id()
    await harness.send(eligible_call(incident))
    await harness.send(cad_event(incident, CadEventType.CLEARED, minutes=30))
    await skip_time(harness.env, timedelta(hours=25))
    await harness.settle(incident, lambda s: s.sent(TextKind.SURVEY))
    return incident


async def test_answers_by_text_get_the_next_question_and_keywords_keep_their_meaning(
    thread: Harness, twilio: httpx.AsyncClient, provider: RecordingProvider, database: Database
) -> None:
    incident = await surveyed_call(thread)

    assert await text_in(twilio, "4") is None  # the call texts the next question itself
    await thread.settle(incident, lambda s: asked(s) == 1)
    assert provider.accepted[-1].body.startswith("How satisfied were you with the officer")

    help_reply = await text_in(twilio, "HELP")  # a keyword is no answer
    assert help_reply is not None and "911" in help_reply
    state = await thread.settle(incident)
    assert asked(state) == 1 and state.thread_survey is not None and state.thread_survey.awaiting

    assert await text_in(twilio, "No officer came") is None
    await thread.settle(incident, lambda s: asked(s) == 2)
    texts_before_stop = len(provider.accepted)
    stop_reply = await text_in(twilio, "STOP")
    assert stop_reply is not None and "START" in stop_reply
    await thread.settle(incident, lambda s: bool(s.thread_survey and s.thread_survey.stored))

    # The survey is over: a text now gets the "not monitored" answer, once for the call.
    assert await text_in(twilio, "START") is not None
    not_monitored = await text_in(twilio, "5")
    assert not_monitored is not None and "not monitored" in not_monitored
    assert await text_in(twilio, "hello?") is None
    await thread.finish(incident)

    assert len(provider.accepted) == texts_before_stop  # nothing texted from the STOP on
    with database.session() as session:
        [response] = session.exec(select(SurveyResponse)).all()
        answers = {
            a.question: ("na" if a.not_applicable else a.score)
            for a in session.exec(select(SurveyAnswer))
        }
    assert response.channel == "thread"
    assert answers == {"call_taker": 4, "officer": "na"}


async def test_a_text_with_no_survey_asking_gets_the_not_monitored_answer(
    thread: Harness, twilio: httpx.AsyncClient, provider: RecordingProvider
) -> None:
    incident = new_incident_id()
    await thread.send(eligible_call(incident))
    reply = await text_in(twilio, "5")
    assert reply is not None and "not monitored" in reply
    assert provider.kinds() == ["confirmation"]
