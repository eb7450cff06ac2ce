"""`make run`'s simulated residents, piece by piece: who does what follows from the seed
and the number alone, in the shares the demo needs; a resident answers the real survey
page as a browser does (cookie, anti-forgery field, Origin) and the answers are stored;
a resident answers a question asked in the text thread in words the thread reads back.
The whole demo on the stack is tests/starter/test_demo_residents_on_the_stack.py."""

from __future__ import annotations

from collections import Counter
from urllib.parse import urlsplit

import httpx
import pytest
from sqlmodel import select

from callerloop.core.agency_config import AgencyConfig
from callerloop.core.db import Database, SurveyAnswer, SurveyComment, SurveyResponse, utcnow
from callerloop.messaging.links import SURVEY
from callerloop.messaging.survey_replies import read_survey_reply
from devtools.demo_residents import (
    FirstReply,
    Mood,
    Resident,
    page_choice,
    resident,
    thread_reply,
)
from devtools.survey_page import SurveyPageError, answer_survey_page, read_form
from tests.factories import call_record, issue_link, make_agency
from tests.web.pages import pages_app

BASE = "http://localhost:8000"  # the stack's public URL
NUMBERS = [f"+1703555{n:04d}" for n in range(2000)]


def test_who_does_what_follows_from_the_seed_and_the_number() -> None:
    assert resident("+17035550142", 7) == resident("+17035550142", 7)
    assert [resident(n, 7) for n in NUMBERS[:50]] != [resident(n, 8) for n in NUMBERS[:50]]
    first = Counter(resident(n, 7).first_reply for n in NUMBERS)
    assert 0.03 < first[FirstReply.STOP] / len(NUMBERS) < 0.07
    assert 0.03 < first[FirstReply.HELP] / len(NUMBERS) < 0.07
    answering = [resident(n, 7) for n in NUMBERS if resident(n, 7).answers_survey]
    assert 0.38 < len(answering) / len(NUMBERS) < 0.48  # 45 % of those who did not STOP
    assert not any(r.first_reply == FirstReply.STOP for r in answering)
    moods = Counter(r.mood for r in answering)
    assert moods[Mood.HAPPY] > moods[Mood.MIXED] > moods[Mood.UNHAPPY] > 0
    # Low scores come from the unhappy, and most of them say why.
    unhappy = [r for r in answering if r.mood == Mood.UNHAPPY]
    assert all(int(r.score("overall")) <= 3 for r in unhappy)
    assert sum(r.comments for r in unhappy) > len(unhappy) / 2


async def test_a_resident_answers_the_survey_page_as_a_browser_does(database: Database) -> None:
    agency = make_agency()
    workflow_id = call_record(database, "T-PAGE-1", utcnow(), priority=4, language="en")
    with database.session() as session:
        link = issue_link(session, base_url=BASE, workflow_id=workflow_id, purpose=SURVEY)
        session.commit()
    unhappy = Resident(
        number="+17035550142",
        seed="test",
        first_reply=None,
        answers_survey=True,
        mood=Mood.UNHAPPY,
        comments=True,
        no_officer=True,
        prefers_thread=False,
    )
    app = pages_app(database, {agency.id: agency}, BASE)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as browser:
        page = await answer_survey_page(
            browser, link, page_choice(unhappy), lambda _: unhappy.comment("en")
        )
        assert urlsplit(page.thanks_url).path == f"{urlsplit(link).path}/thanks"
        # Answered once: the page now says so and has no form; nothing is stored twice.
        with pytest.raises(SurveyPageError, match="no form"):
            await answer_survey_page(browser, link, page_choice(unhappy), lambda _: "")
    with database.session() as session:
        [response] = session.exec(select(SurveyResponse)).all()
        answers = {a.question: a for a in session.exec(select(SurveyAnswer)).all()}
        [comment] = session.exec(select(SurveyComment)).all()
    assert response.channel == "link"
    assert answers["overall"].score == int(unhappy.score("overall"))
    assert answers["officer"].score is None, "no officer came"
    assert comment.comment == unhappy.comment("en")


def test_the_survey_form_is_read_as_the_page_serves_it() -> None:
    html = """<form method="post" action=""><input type="hidden" name="form_token" value="t">
    <input type="radio" name="q_overall" value="5"><input type="radio" name="q_overall"
    value="4"><textarea name="q_comment"></textarea><button>Send</button></form>
    <form action="/other"><input type="hidden" name="x" value="y"></form>"""
    form = read_form(html)
    assert form.action == ""
    assert form.hidden == {"form_token": "t"}
    assert form.choices == {"q_overall": ["5", "4"]}
    assert form.text_fields == ["q_comment"]


def thread_agency() -> AgencyConfig:
    return make_agency(survey={"delivery": "thread"})


def test_a_resident_answers_each_question_of_the_text_thread_as_the_thread_reads_it() -> None:
    agency = thread_agency()
    for number in NUMBERS[:200]:
        person = resident(number, 7)
        if not person.answers_survey:
            continue
        for language in ("en", "es", "fr"):
            for question in agency.survey.questions:
                asked = agency.thread_question_text(question.id, language)
                text = f"{agency.agency.name}: {asked}"
                answer = thread_reply(agency, person, language, text)
                assert answer is not None, (question.id, language)
                read = read_survey_reply(answer)
                if question.kind == "comment":
                    assert read.skip == (not person.comments), answer
                elif question.not_applicable and person.no_officer:
                    assert read.not_applicable, answer
                else:
                    assert read.score == int(person.score(question.id)), answer
    person = resident(NUMBERS[0], 7)
    assert thread_reply(agency, person, "en", "Example: your case was closed.") is None
