"""The survey asked in the text thread, on the time-skipping server through the real
worker: what the provider was handed, and what the survey tables hold afterwards.

Replies reach the call as the inbound handler sends them: read by
`callerloop.messaging.survey_replies` into a `survey_reply` signal."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlmodel import select
from temporalio.testing import WorkflowEnvironment

from callerloop.core.agency_config import AgencyConfig
from callerloop.core.db import Database, SurveyAnswer, SurveyComment, SurveyResponse
from callerloop.messaging.survey_replies import read_survey_reply
from tests.conftest import recording_name, start_harness
from tests.factories import (
    RecordingProvider,
    cad_event,
    eligible_call,
    make_agency,
    new_incident_id,
)
from tests.harness import Harness, skip_time
from workflows.call_for_service import CallForServiceWorkflow
from workflows.model import CadEventType, CallState, OptOutSignal, TextKind

QUESTIONS = 5  # the default survey: call_taker, officer, overall, respect, comment


@pytest.fixture
def thread_agency() -> AgencyConfig:
    # Four texts cover a call's stages: the thread's questions must not be capped by them.
    return make_agency(survey={"delivery": "thread"}, texts={"max_per_call": 4})


@pytest.fixture
async def thread(
    request: pytest.FixtureRequest,
    env: WorkflowEnvironment,
    database: Database,
    thread_agency: AgencyConfig,
    provider: RecordingProvider,
) -> AsyncIterator[Harness]:
    agencies = {"testville": thread_agency}
    recording = recording_name(request)
    async for running in start_harness(env, database, agencies, provider, record_as=recording):
        yield running


def survey_stored(state: CallState) -> bool:
    return state.thread_survey is not None and state.thread_survey.stored


def questions_sent(state: CallState) -> int:
    return sum(1 for t in state.texts if t.kind == TextKind.SURVEY_QUESTION)


async def surveyed_call(harness: Harness, language: str = "en") -> str:
    """A call closed, its survey texted a day later: the thread's first question asked."""
    incident = new_incident_id()
    await harness.send(eligible_call(incident, caller_language=language))
    await harness.send(cad_event(incident, CadEventType.ASSIGNED, minutes=10))
    await harness.send(cad_event(incident, CadEventType.CLEARED, minutes=40))
    await skip_time(harness.env, timedelta(hours=25))
    await harness.settle(incident, lambda s: s.sent(TextKind.SURVEY))
    return incident


async def reply(harness: Harness, incident: str, body: str, message_id: str = "") -> CallState:
    """The caller's text, then the call once it has answered it (or has nothing to say)."""
    before = await harness.state(incident)
    asked = questions_sent(before)
    await harness.handle(incident).signal(
        CallForServiceWorkflow.survey_reply, read_survey_reply(body, message_id)
    )

    def answered(state: CallState) -> bool:
        survey = state.thread_survey
        return survey is not None and (
            questions_sent(state) > asked or not survey.open or survey.awaiting is False
        )

    return await harness.settle(incident, answered)


def bodies(provider: RecordingProvider) -> list[str]:
    return [text.body for text in provider.accepted]


def stored(database: Database) -> list[tuple[SurveyResponse, dict[str, int | None]]]:
    with database.session() as session:
        responses = list(session.exec(select(SurveyResponse)))
        return [
            (
                response,
                {
                    a.question: (0 if a.not_applicable else a.score)
                    for a in session.exec(
                        select(SurveyAnswer).where(SurveyAnswer.response_id == response.id)
                    )
                },
            )
            for response in responses
        ]


@pytest.mark.record_history
async def test_the_thread_asks_each_question_in_turn_thanks_and_stores_the_answers(
    thread: Harness, provider: RecordingProvider, database: Database
) -> None:
    incident = await surveyed_call(thread)
    survey_text = bodies(provider)[-1]
    assert provider.kinds() == ["confirmation", "assigned", "cleared", "survey"]
    assert "/survey/" not in survey_text  # thread only: no link
    assert "Reply SKIP" in survey_text
    assert survey_text.endswith(
        "How satisfied were you with the person who answered your call? "
        "Reply 1 (very dissatisfied) to 5 (very satisfied)."
    )

    await reply(thread, incident, "5")
    assert bodies(provider)[-1].startswith("How satisfied were you with the officer who came?")
    await reply(thread, incident, "0")  # no officer came
    assert bodies(provider)[-1].startswith("Overall, how satisfied")
    await reply(thread, incident, "Satisfied.")
    assert bodies(provider)[-1].startswith("I was treated with respect.")
    await reply(thread, incident, "strongly agree")
    assert bodies(provider)[-1].startswith("Anything else you would like to tell us?")
    state = await reply(thread, incident, "The officer was kind. Call me at 703-555-0142")

    assert provider.kinds()[4:] == ["survey_question"] * (QUESTIONS - 1) + ["survey_thanks"]
    assert bodies(provider)[-1] == "Testville PD: thank you for your answers. They help us improve."
    assert state.thread_survey is not None and state.thread_survey.stored
    [(response, answers)] = stored(database)
    assert response.channel == "thread" and response.language == "en"
    assert answers == {"call_taker": 5, "officer": 0, "overall": 4, "respect": 5}
    assert response.comment is None  # comments never sit with the answers
    with database.session() as session:
        [comment] = session.exec(select(SurveyComment)).all()
    assert comment.comment == "The officer was kind. Call me at 703-555-0142"
    assert comment.case_number == f"C{incident}"

    # A reply after the end is no answer: nothing more is sent or stored.
    await thread.handle(incident).signal(
        CallForServiceWorkflow.survey_reply, read_survey_reply("1")
    )
    await thread.finish(incident)
    assert provider.kinds()[-1] == "survey_thanks"
    assert len(stored(database)) == 1


async def test_skip_moves_on_and_a_reply_not_understood_is_asked_once_more(
    thread: Harness, provider: RecordingProvider, database: Database
) -> None:
    incident = await surveyed_call(thread)
    await reply(thread, incident, "skip")
    officer = bodies(provider)[-1]
    assert officer.startswith("How satisfied were you with the officer")
    await reply(thread, incident, "who is this?")
    assert bodies(provider)[-1] == f"Sorry, we did not understand. {officer}"
    await reply(thread, incident, "what do you mean")  # twice: moves on, unanswered
    assert bodies(provider)[-1].startswith("Overall, how satisfied")
    for answer in ("2", "SKIP", "pass"):
        await reply(thread, incident, answer)
    await thread.finish(incident)

    [(_, answers)] = stored(database)
    assert answers == {"overall": 2}  # skipped questions have no answer row
    assert provider.kinds().count("survey_thanks") == 1


async def test_silence_ends_the_survey_and_keeps_what_was_answered(
    thread: Harness, provider: RecordingProvider, database: Database
) -> None:
    incident = await surveyed_call(thread)
    await reply(thread, incident, "4")
    texts_before = len(provider.accepted)

    await skip_time(thread.env, timedelta(hours=2, minutes=1))  # the agency's thread_silence
    state = await thread.settle(incident, survey_stored)
    assert state.thread_survey is not None and state.thread_survey.ended == "silence"
    await thread.handle(incident).signal(
        CallForServiceWorkflow.survey_reply, read_survey_reply("5")
    )
    await thread.finish(incident)

    assert len(provider.accepted) == texts_before  # no thanks, no next question
    [(_, answers)] = stored(database)
    assert answers == {"call_taker": 4}


@pytest.mark.parametrize(
    ("language", "words", "score"),
    [
        ("en", "very satisfied", 5),
        ("es", "Muy satisfecha", 5),
        ("fr", "très insatisfait", 1),
    ],
)
async def test_a_word_answer_in_each_language(
    thread: Harness,
    provider: RecordingProvider,
    database: Database,
    language: str,
    words: str,
    score: int,
) -> None:
    incident = await surveyed_call(thread, language)
    opening = {"en": "Reply SKIP", "es": "Responda SALTAR", "fr": "Répondez PASSER"}
    assert opening[language] in bodies(provider)[-1]
    await reply(thread, incident, words)
    await reply(thread, incident, "skip")
    state = await thread.state(incident)
    assert state.thread_survey is not None and state.thread_survey.current == 2
    await skip_time(thread.env, timedelta(hours=3))
    await thread.finish(incident)
    [(response, answers)] = stored(database)
    assert answers == {"call_taker": score}
    assert response.language == language


@pytest.mark.record_history
async def test_stop_in_the_middle_ends_the_questions_at_once(
    thread: Harness, provider: RecordingProvider, database: Database
) -> None:
    incident = await surveyed_call(thread)
    await reply(thread, incident, "3")
    await reply(thread, incident, "4")
    texts_before = len(provider.accepted)

    await thread.handle(incident).signal(
        CallForServiceWorkflow.opt_out, OptOutSignal(phone="+17035550142", keyword="STOP")
    )
    await thread.settle(incident, survey_stored)
    await thread.handle(incident).signal(
        CallForServiceWorkflow.survey_reply, read_survey_reply("5")
    )
    await thread.finish(incident)

    assert len(provider.accepted) == texts_before  # not one text after the STOP
    [(_, answers)] = stored(database)
    assert answers == {"call_taker": 3, "officer": 4}


async def test_both_offers_the_link_and_one_answer_counts(
    env: WorkflowEnvironment, database: Database, provider: RecordingProvider
) -> None:
    agency = make_agency(survey={"delivery": "link", "delivery_by_language": {"es": "both"}})
    async for harness in start_harness(env, database, {"testville": agency}, provider):
        english = await surveyed_call(harness, "en")
        assert "/survey/" in bodies(provider)[-1]
        assert harness.kinds(english)[-1] == "survey"
        state = await harness.state(english)
        assert state.thread_survey is None  # English: the link only

        spanish = await surveyed_call(harness, "es")
        text = bodies(provider)[-1]
        assert "/survey/" in text and text.endswith("a la persona que ha atendido su llamada.")
        await reply(harness, spanish, "5")
        await harness.handle(spanish).signal(
            CallForServiceWorkflow.survey_reply, read_survey_reply("skip")
        )
        await skip_time(env, timedelta(hours=3))
        await harness.finish(spanish)
        [(response, answers)] = stored(database)
        assert response.channel == "thread" and answers == {"call_taker": 5}
