"""The status page and the survey over HTTP, opened from the links the real workflow texted:
what they show (and never show), tokens, the guessing limit, languages, and answering once."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlmodel import select
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.texts import TextActivities
from callerloop.core.agency_config import AgencyConfig
from callerloop.core.db import (
    AnsweredSurvey,
    CallRecord,
    Database,
    LinkToken,
    SurveyAnswer,
    SurveyComment,
    SurveyResponse,
    utcnow,
)
from tests.activities.test_send_text import send_input
from tests.conftest import start_harness
from tests.factories import (
    RecordingProvider,
    cad_event,
    eligible_call,
    issue_link,
    make_agency,
    new_incident_id,
)
from tests.harness import Harness, skip_time
from tests.web.pages import link_in_text, pages_app
from web.page_security import GuessLimiter
from workflows.model import CadEventType, TextKind

BASE = "https://callerloop.test"
PHONE = "+17035550142"
CALL_TYPE = "NOISE COMPLAINT DELAY"


def survey_agency() -> AgencyConfig:
    return make_agency(
        survey={"call_type_groups": {"disorder": [r"\bNOISE", r"\bPARTY"], "property": ["THEFT"]}}
    )


@pytest.fixture
def agency() -> AgencyConfig:
    return survey_agency()


@pytest.fixture
async def harness(
    env: WorkflowEnvironment, database: Database, agency: AgencyConfig, provider: RecordingProvider
) -> AsyncIterator[Harness]:
    async for running in start_harness(env, database, {agency.id: agency}, provider):
        yield running


def client_for(
    database: Database,
    agency: AgencyConfig,
    limiter: GuessLimiter | None = None,
    ip: str = "203.0.113.7",
) -> httpx.AsyncClient:
    app = pages_app(database, {agency.id: agency}, BASE, guess_limiter=limiter)
    transport = httpx.ASGITransport(app=app, client=(ip, 50000))
    return httpx.AsyncClient(transport=transport, base_url=BASE)


async def texted_call(harness: Harness, **fields: object) -> str:
    incident = new_incident_id()
    details: dict[str, object] = {"call_type": CALL_TYPE, "caller_phone": PHONE, **fields}
    await harness.send(eligible_call(incident, **details))
    return incident


async def surveyed_call(harness: Harness, **fields: object) -> str:
    """A call that was cleared and, the survey delay later, texted its survey link."""
    incident = await texted_call(harness, **fields)
    await harness.send(cad_event(incident, CadEventType.ASSIGNED, minutes=5))
    await harness.send(
        cad_event(incident, CadEventType.CLEARED, minutes=40, disposition="REPORT TAKEN SMITH")
    )
    await skip_time(harness.env, timedelta(hours=25))
    await harness.settle(incident, lambda s: s.sent(TextKind.SURVEY))
    return incident


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match is not None, f"no hidden field {name}"
    return match.group(1)


def full_answers(html: str, **overrides: str) -> dict[str, str]:
    answers = {
        "form_token": hidden(html, "form_token"),
        "submission": hidden(html, "submission"),
        "lang": hidden(html, "lang"),
        "q_call_taker": "5",
        "q_officer": "na",
        "q_overall": "4",
        "q_respect": "5",
        "q_comment": "Quick and kind.",
    }
    answers.update(overrides)
    return answers


async def test_status_page_from_the_confirmation_text(
    harness: Harness, database: Database, agency: AgencyConfig
) -> None:
    incident = await texted_call(harness)
    link = link_in_text(harness, incident, "confirmation")
    assert link.startswith(f"{BASE}/s/")
    async with client_for(database, agency) as client:
        page = await client.get(link)
    assert page.status_code == 200
    text = text_of(page.text)
    assert "Testville PD" in text
    assert f"C{incident}" in text  # the case number
    assert "Received" in text
    assert "911" in text and "703-555-0100" in text  # how to reach the police
    # The event happened at T0 = 14:00 UTC, shown in the agency's time zone.
    assert "September 1, 2025, 10:00 AM (Eastern Time)" in text
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "same-origin"


async def test_status_words_follow_the_call(
    harness: Harness, database: Database, agency: AgencyConfig
) -> None:
    incident = await texted_call(harness, priority=3)  # delay notice after 1 h unassigned
    link = link_in_text(harness, incident, "confirmation")
    async with client_for(database, agency) as client:

        async def status() -> str:
            match = re.search(
                r'class="status status-(\w+)">([^<]+)<', (await client.get(link)).text
            )
            assert match is not None
            return f"{match.group(1)}: {match.group(2)}"

        assert await status() == "received: Received"
        await skip_time(harness.env, timedelta(minutes=70))
        await harness.settle(incident, lambda s: s.sent(TextKind.DELAYED))
        assert await status() == "delayed: Delayed"
        await harness.send(cad_event(incident, CadEventType.ASSIGNED, minutes=75))
        assert await status() == "assigned: Officer assigned"
        await harness.send(cad_event(incident, CadEventType.CLEARED, minutes=90))
        assert await status() == "closed: Closed"
        assert "September 1, 2025, 11:30 AM" in text_of((await client.get(link)).text)


async def test_pages_show_no_personal_data(
    harness: Harness, database: Database, agency: AgencyConfig
) -> None:
    incident = await surveyed_call(harness, caller_language="en")
    pages = [
        link_in_text(harness, incident, "confirmation"),
        link_in_text(harness, incident, "survey"),
    ]
    async with client_for(database, agency) as client:
        for link in pages:
            for language in ("en", "es", "fr"):
                page = await client.get(link, params={"lang": language})
                assert page.status_code == 200
                for secret in (
                    PHONE,
                    "7035550142",
                    "555-0142",
                    "0142",
                    CALL_TYPE,
                    "NOISE",
                    "SMITH",
                    "REPORT TAKEN",
                ):
                    assert secret not in page.text, f"{secret!r} on {link} ({language})"


async def test_unknown_expired_and_other_purpose_tokens_get_the_same_404(
    harness: Harness, database: Database, agency: AgencyConfig
) -> None:
    incident = await texted_call(harness)
    status_link = link_in_text(harness, incident, "confirmation")
    status_token = status_link.rsplit("/", 1)[1]
    with database.session() as session:
        expired_link = issue_link(
            session,
            base_url=BASE,
            workflow_id=harness.outbox(incident)[0].workflow_id,
            purpose="status",
            expires_at=utcnow() - timedelta(seconds=1),
        )
        session.commit()
    async with client_for(database, agency) as client:
        assert (await client.get(status_link)).status_code == 200
        refused = [
            await client.get(expired_link),
            await client.get(f"/s/{'A' * 22}"),  # well-formed, never issued
            await client.get("/s/not-a-token"),
            await client.get(f"/survey/{status_token}"),  # a status token is not a survey token
            await client.get(f"/survey/{'A' * 22}/thanks"),
        ]
    assert [r.status_code for r in refused] == [404] * len(refused)
    # One page for all: nothing tells a token that never existed from one that expired.
    bodies = {r.text for r in refused}
    assert len(bodies) == 1
    assert "not valid or is no longer available" in bodies.pop()


async def test_pages_go_dark_when_the_call_is_stopped_for_safety(
    harness: Harness, database: Database, agency: AgencyConfig
) -> None:
    """Reclassified as domestic violence, the call never texts again, and its status page
    shows nothing more: whoever holds the phone may not be the caller."""
    incident = await texted_call(harness)
    link = link_in_text(harness, incident, "confirmation")
    async with client_for(database, agency) as client:
        assert (await client.get(link)).status_code == 200
        state = await harness.send(
            cad_event(incident, CadEventType.UPDATED, minutes=3, call_type="DOMESTIC VIOL NO INJ")
        )
        assert state.blocked is not None
        stopped = await client.get(link)
        never_issued = await client.get(f"/s/{'B' * 22}")
    assert stopped.status_code == 404
    assert stopped.text == never_issued.text


async def test_token_guessing_is_rate_limited(
    harness: Harness, database: Database, agency: AgencyConfig
) -> None:
    incident = await texted_call(harness)
    real_link = link_in_text(harness, incident, "confirmation")
    clock = [1000.0]
    limiter = GuessLimiter(max_misses=5, window_seconds=60, clock=lambda: clock[0])
    async with (
        client_for(database, agency, limiter, ip="198.51.100.1") as guesser,
        client_for(database, agency, limiter, ip="198.51.100.2") as bystander,
    ):
        guesses = [await guesser.get(f"/s/{i:022d}") for i in range(5)]
        assert [g.status_code for g in guesses] == [404] * 5
        blocked = await guesser.get(f"/s/{5:022d}")
        assert blocked.status_code == 429
        assert 1 <= int(blocked.headers["retry-after"]) <= 60
        assert "Too many attempts" in blocked.text
        # While blocked, even a real token tells the guesser nothing.
        assert (await guesser.get(real_link)).status_code == 429
        assert (await guesser.post(f"/survey/{5:022d}", data={})).status_code == 429
        # Another client is not affected.
        assert (await bystander.get(real_link)).status_code == 200
        assert (await bystander.get(f"/s/{6:022d}")).status_code == 404
        # Once the misses age out, the guesser may try again.
        clock[0] += 61
        assert (await guesser.get(real_link)).status_code == 200


async def test_language_from_query_then_caller_then_browser(
    harness: Harness, database: Database, agency: AgencyConfig
) -> None:
    spanish_caller = await texted_call(harness, caller_language="es")
    no_language = await texted_call(harness, caller_language=None)
    spanish_link = link_in_text(harness, spanish_caller, "confirmation")
    plain_link = link_in_text(harness, no_language, "confirmation")

    def language(page: httpx.Response) -> str:
        match = re.search(r'<html lang="(\w+)">', page.text)
        assert match is not None
        return match.group(1)

    async with client_for(database, agency) as client:
        assert language(await client.get(spanish_link)) == "es"
        assert "Estado de su llamada" in (await client.get(spanish_link)).text
        assert language(await client.get(spanish_link, params={"lang": "fr"})) == "fr"
        french_browser = {"Accept-Language": "de-DE, fr-CA;q=0.8, en;q=0.5"}
        assert language(await client.get(spanish_link, headers=french_browser)) == "es"
        assert language(await client.get(plain_link, headers=french_browser)) == "fr"
        assert language(await client.get(plain_link, headers={"Accept-Language": "es-MX"})) == "es"
        assert language(await client.get(plain_link, headers={"Accept-Language": "de"})) == "en"
        for odd in ("xx-YY, *;q=0.1", "fr;q=abc", ";;,", "ES-us"):
            page = await client.get(plain_link, headers={"Accept-Language": odd})
            assert page.status_code == 200, odd
        assert language(await client.get(plain_link, headers={"Accept-Language": "ES-us"})) == "es"
        assert language(await client.get(plain_link, params={"lang": "de"})) == "en"
        switch = (await client.get(plain_link)).text
    for code, name in (("en", "English"), ("es", "Español"), ("fr", "Français")):
        assert f'href="?lang={code}" lang="{code}" hreflang="{code}"' in switch
        assert name in switch


async def test_survey_is_stored_once_without_personal_data(
    harness: Harness, database: Database, agency: AgencyConfig
) -> None:
    incident = await surveyed_call(harness, caller_language="fr", priority=3)
    link = link_in_text(harness, incident, "survey")
    status_link = link_in_text(harness, incident, "confirmation")
    path = urlsplit(link).path
    async with client_for(database, agency) as client:
        form = await client.get(link)
        assert form.status_code == 200
        assert '<html lang="fr">' in form.text
        answers = full_answers(form.text, lang="es")
        sent = await client.post(path, data=answers)
        assert sent.status_code == 303
        assert sent.headers["location"] == f"{path}/thanks?lang=es"
        thanks = await client.get(sent.headers["location"])
        assert thanks.status_code == 200 and "Gracias" in thanks.text
        # The same form posted again (a double click) is the same answer, not a second one.
        assert (await client.post(path, data=answers)).status_code == 303
        # The link opened again: already answered, no form.
        again = await client.get(link, params={"lang": "en"})
        assert again.status_code == 200
        assert "already been answered" in again.text and "<form" not in again.text
        # Another form for the same link (the page was open twice): refused.
        second = await client.post(path, data={**answers, "submission": "another-form"})
        assert second.status_code == 409
        assert "already been answered" in text_of(second.text) or "ya fue respondida" in second.text

    with database.session() as session:
        [response] = session.exec(select(SurveyResponse)).all()
        stored = session.exec(select(SurveyAnswer)).all()
        assert len(session.exec(select(AnsweredSurvey)).all()) == 1
        call = session.exec(select(CallRecord)).one()
        [comment] = session.exec(select(SurveyComment)).all()
    assert (response.agency, response.priority, response.call_type_group) == (
        "testville",
        3,
        "disorder",
    )
    assert (response.language, response.page_language) == ("fr", "es")
    # The month the call came in, in the agency's time zone.
    assert call.received_at is not None
    assert response.month == f"{call.received_at.astimezone(ZoneInfo('America/New_York')):%Y-%m}"
    # The comment goes to supervisors with the case number, never with the answers.
    assert response.comment is None
    assert (comment.comment, comment.case_number, comment.score) == (
        "Quick and kind.",
        call.case_number,
        4.0,
    )
    assert (comment.agency, comment.call_type_group, comment.language) == (
        "testville",
        "disorder",
        "fr",
    )
    assert {(a.question, a.score, a.not_applicable) for a in stored} == {
        ("call_taker", 5, False),
        ("officer", None, True),
        ("overall", 4, False),
        ("respect", 5, False),
    }
    everything = " ".join(str(v) for v in response.model_dump().values())
    assert PHONE not in everything and incident not in everything

    # The lifecycle ends: personal data is purged, the survey closes, the answers stay.
    await harness.finish(incident)
    async with client_for(database, agency) as client:
        assert (await client.get(link)).status_code == 404
        status = await client.get(status_link)
        assert status.status_code == 200 and "status-closed" in status.text
    with database.session() as session:
        assert len(session.exec(select(SurveyResponse)).all()) == 1
        assert len(session.exec(select(SurveyAnswer)).all()) == 4


async def test_survey_rejects_cross_site_posts(
    harness: Harness, database: Database, agency: AgencyConfig
) -> None:
    incident = await surveyed_call(harness)
    link = link_in_text(harness, incident, "survey")
    path = urlsplit(link).path
    async with client_for(database, agency) as client:
        answers = full_answers((await client.get(link)).text)
        cross_site = await client.post(path, data=answers, headers={"Origin": "https://evil.test"})
        opaque = await client.post(path, data=answers, headers={"Origin": "null"})
        forged = await client.post(path, data={**answers, "form_token": "0" * 64})
    async with client_for(database, agency) as cookieless:  # a post from elsewhere: no cookie
        no_cookie = await cookieless.post(path, data=answers)
    for refused in (cross_site, opaque, forged, no_cookie):
        assert refused.status_code == 403
        assert "Your answers were not sent" in refused.text
    with database.session() as session:
        assert session.exec(select(SurveyResponse)).all() == []


async def test_survey_explains_what_is_missing_or_wrong(
    harness: Harness, database: Database, agency: AgencyConfig
) -> None:
    incident = await surveyed_call(harness)
    link = link_in_text(harness, incident, "survey")
    path = urlsplit(link).path
    async with client_for(database, agency) as client:
        html = (await client.get(link)).text
        answers = full_answers(html, q_call_taker="", q_overall="9", q_respect="na")
        answers["q_comment"] = "x" * 1001
        page = await client.post(path, data=answers)
        assert page.status_code == 422
        text = text_of(page.text)
        assert "Please check your answers" in text
        assert text.count("Choose an answer.") == 2  # in the summary and at the question
        assert text.count("Choose one of the answers shown.") == 4  # overall, respect
        assert "at most 1000 characters" in text
        assert 'aria-invalid="true"' in page.text
        # What was answered well is kept.
        assert re.search(r'value="na" checked', page.text)
        # A corrected form goes through.
        fixed = await client.post(path, data=full_answers(page.text))
        assert fixed.status_code == 303
    with database.session() as session:
        assert len(session.exec(select(SurveyResponse)).all()) == 1


async def test_an_agency_asks_its_own_questions(
    env: WorkflowEnvironment, database: Database, provider: RecordingProvider
) -> None:
    agency = make_agency(
        survey={
            "questions": [
                {"id": "overall", "kind": "satisfaction"},
                {
                    "id": "safety",
                    "kind": "agreement",
                    "text": {"en": "I feel safe.", "fr": "Je me sens en sécurité."},
                    "required": False,
                },
            ]
        },
        agency={"languages": ["en", "fr"]},
    )
    async for harness in start_harness(env, database, {agency.id: agency}, provider):
        incident = await surveyed_call(harness, call_type="THEFT FROM AUTO", priority=4)
        link = link_in_text(harness, incident, "survey")
        async with client_for(database, agency) as client:
            html = (await client.get(link, params={"lang": "fr"})).text
            assert "Je me sens en sécurité." in html and "(facultatif)" in html
            assert "q_call_taker" not in html
            # No Spanish text for this question: the agency's default, marked as English.
            spanish = (await client.get(link, params={"lang": "es"})).text
            assert '<legend lang="en">I feel safe.' in spanish
            data = {
                "form_token": hidden(html, "form_token"),
                "submission": hidden(html, "submission"),
                "lang": "fr",
                "q_overall": "2",
            }
            assert (await client.post(urlsplit(link).path, data=data)).status_code == 303
    with database.session() as session:
        [response] = session.exec(select(SurveyResponse)).all()
        [answer] = session.exec(select(SurveyAnswer)).all()
    assert (answer.question, answer.score) == ("overall", 2)
    assert (response.call_type_group, response.priority) == ("other", 4)


async def test_phone_simulator_only_with_the_local_provider(
    harness: Harness, database: Database, agency: AgencyConfig
) -> None:
    incident = await texted_call(harness)
    link = link_in_text(harness, incident, "confirmation")
    local = pages_app(database, {agency.id: agency}, BASE, sms_provider="local")
    twilio = pages_app(database, {agency.id: agency}, BASE, sms_provider="twilio")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=local), base_url=BASE) as client:
        page = await client.get("/dev/phone")
    assert page.status_code == 200
    assert PHONE in page.text
    assert f'<a href="{link}">{link}</a>' in page.text
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=twilio), base_url=BASE
    ) as client:
        assert (await client.get("/dev/phone")).status_code == 404
    # It shows numbers and live links: not to other machines.
    remote = httpx.ASGITransport(app=local, client=("203.0.113.9", 50000))
    async with httpx.AsyncClient(transport=remote, base_url=BASE) as client:
        assert (await client.get("/dev/phone")).status_code == 404


def test_links_expire_with_the_retention_period_and_the_survey_window(
    database: Database, provider: RecordingProvider
) -> None:
    """The send activity dates each link: a status link for the retention period, a
    survey link for the survey window (divided by the time scale, like the workflow's wait)."""
    agency = make_agency(timing={"survey_window": "P5D"}, retention={"outbox_days": 30})
    activities = TextActivities(database, {agency.id: agency}, provider, BASE, time_scale=10)
    before = utcnow()
    ActivityEnvironment().run(activities.send_text, send_input(TextKind.CONFIRMATION))
    ActivityEnvironment().run(activities.send_text, send_input(TextKind.SURVEY))
    after = utcnow()
    with database.session() as session:
        links = {link.purpose: link for link in session.exec(select(LinkToken))}
    status_expiry, survey_expiry = links["status"].expires_at, links["survey"].expires_at
    assert status_expiry is not None and survey_expiry is not None
    assert before + timedelta(days=30) <= status_expiry <= after + timedelta(days=30)
    assert before + timedelta(hours=12) <= survey_expiry <= after + timedelta(hours=12)
