"""Language by reply: a resident texts ESPAÑOL (or العربية, LANG fr…) to the agency's
number, through the real signed webhook, and the running call's later texts and pages are
in that language: the real workflow on the time-skipping server, its `mark_language`
update, its record, its status page."""

# ruff: noqa: RUF001  (Chinese punctuation is full-width on purpose)

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import Browser, expect
from sqlmodel import select
from temporalio.client import WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from callerloop.core.agency_config import AgencyConfig, default_templates
from callerloop.core.db import CallRecord, Database
from callerloop.core.sms_encoding import measure
from callerloop.messaging.inbound import CallSignal, SignalDeliveryFailed, handle_inbound
from callerloop.messaging.opt_outs import record_opt_out
from tests.conftest import start_harness
from tests.factories import (
    RecordingProvider,
    cad_event,
    eligible_call,
    make_agency,
    new_incident_id,
)
from tests.harness import Harness
from tests.web.browser import serious_violations
from tests.web.pages import link_in_text, pages_app
from tests.web.serving import free_port, serving
from tests.web.test_twilio_webhooks import (
    CALLER,
    client_for,
    inbound_form,
    make_app,
    open_call_record,
    reply_text,
    signed_headers,
)
from workflows.call_for_service import workflow_id_for
from workflows.model import CadEventType, MarkLanguageRequest

NAME = "Testville PD"


def template(language: str, kind: str) -> str:
    text = str(default_templates()[language][kind])
    return text.format(agency_name=NAME, non_emergency_phone="703-555-0100")


async def text_in(client: httpx.AsyncClient, body: str) -> str | None:
    form = inbound_form(body)
    response = await client.post(
        "/twilio/inbound", data=form, headers=signed_headers("/twilio/inbound", form)
    )
    return reply_text(response)


def record_language(db: Database, incident: str) -> str | None:
    with db.session() as session:
        record = session.get(CallRecord, workflow_id_for("testville", incident))
        assert record is not None
        return record.language


@pytest.fixture
async def twilio(harness: Harness, agency: AgencyConfig) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(make_app(harness.db, agency, client=harness.env.client)) as client:
        yield client


# --- a running call ------------------------------------------------------------------------


async def test_a_resident_switches_a_running_call_to_spanish(
    harness: Harness, twilio: httpx.AsyncClient
) -> None:
    incident = new_incident_id()
    await harness.send(eligible_call(incident, caller_language="en"))
    assert [(r.kind, r.language) for r in harness.outbox(incident)] == [("confirmation", "en")]

    reply = await text_in(twilio, "Español, por favor")
    assert reply == template("es", "language_changed")
    assert record_language(harness.db, incident) == "es", "the pages follow at once"
    state = await harness.settle(incident, lambda s: s.caller_language == "es")
    [action] = state.operator_actions
    assert (action.action, action.by, action.reason, action.detail) == (
        "mark_language",
        "resident",
        "replied ESPAÑOL",
        "es",
    )

    await harness.send(cad_event(incident, CadEventType.ASSIGNED, minutes=10))
    assigned = harness.outbox(incident)[-1]
    assert (assigned.kind, assigned.language) == ("assigned", "es")
    assert assigned.body == f"{NAME}: un agente fue asignado a su caso C{incident}."
    page = await twilio.get(urlsplit(link_in_text(harness, incident, "confirmation")).path)
    assert '<html lang="es">' in page.text and "Estado de su llamada" in page.text

    assert await text_in(twilio, "LANG fr") == template("fr", "language_changed")
    await harness.settle(incident, lambda s: s.caller_language == "fr")
    await harness.send(cad_event(incident, CadEventType.CLEARED, minutes=40))
    cleared = harness.outbox(incident)[-1]
    assert (cleared.kind, cleared.language) == ("cleared", "fr")


async def test_a_language_the_agency_does_not_offer_gets_the_ones_it_does(
    harness: Harness, twilio: httpx.AsyncClient
) -> None:
    incident = new_incident_id()
    await harness.send(eligible_call(incident, caller_language="es"))
    offered = f"{template('es', 'languages_offered')} ENGLISH, ESPAÑOL, FRANÇAIS"
    assert await text_in(twilio, "中文") == offered  # in the call's language
    assert await text_in(twilio, "LANG de") == offered
    assert await text_in(twilio, "idioma") == offered  # which ones?
    state = await harness.state(incident)
    assert (state.caller_language, state.operator_actions) == ("es", [])
    assert record_language(harness.db, incident) == "es"
    assert measure(offered).encoding == "GSM-7"


async def test_a_language_named_in_a_sentence_changes_nothing(
    harness: Harness, twilio: httpx.AsyncClient
) -> None:
    incident = new_incident_id()
    await harness.send(eligible_call(incident, caller_language="en"))
    reply = await text_in(twilio, "I speak English but my neighbour called")
    assert reply == template("en", "not_monitored")
    state = await harness.state(incident)
    assert (state.caller_language, state.operator_actions) == ("en", [])


async def test_a_call_that_ended_is_skipped(harness: Harness, twilio: httpx.AsyncClient) -> None:
    ended, running = new_incident_id(), new_incident_id()
    await harness.send(eligible_call(ended, caller_language="en"))
    await harness.send(eligible_call(running, caller_language="en"))
    await harness.handle(ended).terminate(reason="test: the call ended")

    assert await text_in(twilio, "FRANÇAIS") == template("fr", "language_changed")
    await harness.settle(running, lambda s: s.caller_language == "fr")
    assert record_language(harness.db, running) == "fr"
    assert record_language(harness.db, ended) == "en"  # nobody took it


# --- draft languages: a non-Latin script and a right-to-left one -----------------------------


async def test_chinese_and_arabic_by_reply_texts_and_pages(
    env: WorkflowEnvironment, database: Database, provider: RecordingProvider
) -> None:
    agency = make_agency(agency={"languages": ["en", "zh", "ar"]})
    async for harness in start_harness(env, database, {agency.id: agency}, provider):
        incident = new_incident_id()
        await harness.send(eligible_call(incident, caller_language="en"))
        async with client_for(make_app(database, agency, client=env.client)) as client:
            assert await text_in(client, "بالعربية") == template("ar", "language_changed")
            await harness.settle(incident, lambda s: s.caller_language == "ar")
            await harness.send(cad_event(incident, CadEventType.ASSIGNED, minutes=10))
            assigned = harness.outbox(incident)[-1]
            assert (assigned.kind, assigned.language) == ("assigned", "ar")
            assert assigned.body is not None and "تم تكليف ضابط" in assigned.body
            assert (measure(assigned.body).encoding, assigned.segments) == (
                "UCS-2",
                measure(assigned.body).segments,
            )
            status = urlsplit(link_in_text(harness, incident, "confirmation")).path
            page = (await client.get(status)).text
            assert '<html lang="ar" dir="rtl">' in page and "حالة مكالمتك" in page

            assert await text_in(client, "请用中文") == template("zh", "language_changed")
            await harness.settle(incident, lambda s: s.caller_language == "zh")
            await harness.send(cad_event(incident, CadEventType.CLEARED, minutes=30))
            cleared = harness.outbox(incident)[-1]
            assert (cleared.kind, cleared.language) == ("cleared", "zh")
            assert cleared.body == f"{NAME}：案件 C{incident} 已结案。感谢您与我们联系。"
            page = (await client.get(status)).text
            assert '<html lang="zh-Hans">' in page and "您来电的处理状态" in page

            assert await text_in(client, "停止") == template("zh", "opt_out")
            await harness.settle(incident, lambda s: s.opted_out)


async def test_an_arabic_page_reads_right_to_left_in_a_browser(
    env: WorkflowEnvironment,
    database: Database,
    provider: RecordingProvider,
    browser: Browser,
    axe_script: str,
) -> None:
    agency = make_agency(agency={"languages": ["en", "ar"]})
    port = free_port()
    with serving(pages_app(database, {agency.id: agency}, f"http://127.0.0.1:{port}"), port) as url:
        async for harness in start_harness(
            env, database, {agency.id: agency}, provider, public_base_url=url
        ):
            incident = new_incident_id()
            await harness.send(eligible_call(incident, caller_language="ar"))
            context = await browser.new_context(locale="en-US", bypass_csp=True)
            page = await context.new_page()
            await page.goto(link_in_text(harness, incident, "confirmation"))
            await expect(page.locator("html")).to_have_attribute("dir", "rtl")
            direction = await page.evaluate("getComputedStyle(document.body).direction")
            assert direction == "rtl"
            await expect(page.get_by_role("heading", level=1)).to_have_text("حالة مكالمتك")
            # The language switch offers the agency's languages, each named in itself.
            await page.get_by_role("link", name="English").click()
            await expect(page.locator("html")).not_to_have_attribute("dir", "rtl")
            await page.get_by_role("link", name="العربية").click()
            assert not await serious_violations(page, axe_script)
            await context.close()


# --- what the handler does with each answer of a call ----------------------------------------


async def test_a_call_that_turns_the_update_down_is_skipped_and_a_timeout_fails(
    database: Database, agency: AgencyConfig
) -> None:
    refusing, fine = (open_call_record(database, new_incident_id()) for _ in range(2))
    told: list[str] = []

    async def signal_call(workflow_id: str, signal: CallSignal) -> None:
        assert isinstance(signal, MarkLanguageRequest)
        if workflow_id == refusing:
            raise WorkflowUpdateFailedError(ApplicationError("the call has finished"))
        told.append(workflow_id)

    reply = await handle_inbound(database, agency, CALLER, "ESPANOL", signal_call)
    assert reply.text == template("es", "language_changed")
    assert told == [fine]
    with database.session() as session:
        languages = {r.workflow_id: r.language for r in session.exec(select(CallRecord))}
    assert (languages[refusing], languages[fine]) == ("en", "es")

    async def timing_out(workflow_id: str, signal: CallSignal) -> None:
        raise WorkflowUpdateRPCTimeoutOrCancelledError()

    with pytest.raises(SignalDeliveryFailed):  # a 500: Twilio tries the webhook again
        await handle_inbound(database, agency, CALLER, "FRENCH", timing_out)


async def test_when_no_call_takes_the_language_the_reply_does_not_claim_it(
    database: Database, agency: AgencyConfig
) -> None:
    open_call_record(database, new_incident_id())

    async def ending(workflow_id: str, signal: CallSignal) -> None:
        raise WorkflowUpdateFailedError(ApplicationError("the call has finished"))

    reply = await handle_inbound(database, agency, CALLER, "ESPAÑOL", ending)
    assert reply.text == template("es", "not_monitored")


async def test_a_number_that_opted_out_is_switched_silently(
    database: Database, agency: AgencyConfig
) -> None:
    workflow_id = open_call_record(database, new_incident_id())
    record_opt_out(database, agency.id, CALLER, "STOP", True)
    told: list[CallSignal] = []

    async def signal_call(workflow_id: str, signal: CallSignal) -> None:
        told.append(signal)

    reply = await handle_inbound(database, agency, CALLER, "inglés", signal_call)
    assert reply.text is None
    assert told == [MarkLanguageRequest("resident", "replied INGLÉS", "en")]
    with database.session() as session:
        record = session.get(CallRecord, workflow_id)
        assert record is not None and record.language == "en"


async def test_without_an_open_call_the_reply_is_the_not_monitored_one_in_that_language(
    database: Database, agency: AgencyConfig
) -> None:
    async def signal_call(workflow_id: str, signal: CallSignal) -> None:
        raise AssertionError("there is no call to tell")

    reply = await handle_inbound(database, agency, CALLER, "FRANCAIS", signal_call)
    not_monitored = template("fr", "not_monitored")
    assert reply.text == not_monitored


@pytest.mark.parametrize("kind", ["language_changed", "languages_offered"])
@pytest.mark.parametrize("language", ["en", "es", "fr"])
def test_the_language_replies_fit_one_gsm7_segment(kind: str, language: str) -> None:
    body = str(default_templates()[language][kind]).format(agency_name="Example City Police")
    if kind == "languages_offered":
        body += " ENGLISH, ESPAÑOL, FRANÇAIS"
    size = measure(body)
    assert (size.encoding, size.segments) == ("GSM-7", 1), body
