"""The "never text me" page through the real app: a number registered there is never
texted by a later call (the real workflow on the time-skipping server, judged by what the
provider was handed), its open calls stop texting, the registry keeps only its pseudonym,
every registration gets the same answer, and START texted through the signed webhook
lifts it. Also: a plain "never text me" text does the same from a number with no call."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlmodel import SQLModel, select
from structlog.testing import capture_logs
from temporalio.client import Client

from callerloop.core.agency_config import AgencyConfig
from callerloop.core.db import Database, OptOut
from callerloop.messaging.opt_outs import REGISTERED_ON_PAGE, is_opted_out, record_opt_out
from tests.factories import (
    RecordingProvider,
    cad_event,
    eligible_call,
    make_agency,
    new_incident_id,
)
from tests.harness import Harness
from tests.web.test_twilio_webhooks import (
    CALLER,
    PUBLIC_URL,
    inbound_form,
    make_app,
    reply_text,
    signed_headers,
)
from web.never_text import REGISTRATIONS_PER_HOUR
from workflows.model import CadEventType, TextingState

# CALLER (+17035550142) as a resident writes it.
CALLER_AS_WRITTEN = "(703) 555-0142"
OTHER_NUMBER = "+17035550199"
PATH = "/never-text/testville"


def site(
    database: Database, agency: AgencyConfig, client: Client | None = None, ip: str = "203.0.113.9"
) -> httpx.AsyncClient:
    """The whole app (pages and Twilio's webhooks) at its public https URL, so the form's
    Secure cookie comes back; `client` is Temporal's, for the calls the page tells."""
    transport = httpx.ASGITransport(app=make_app(database, agency, client=client), client=(ip, 1))
    return httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL)


@pytest.fixture
async def web(harness: Harness, agency: AgencyConfig) -> AsyncIterator[httpx.AsyncClient]:
    async with site(harness.db, agency, harness.env.client) as client:
        yield client


def hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match is not None, f"no hidden field {name}"
    return match.group(1)


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


async def register(
    client: httpx.AsyncClient, number: str, lang: str = "en", **headers: str
) -> httpx.Response:
    """Open the form, then send it with `number`, as a browser would."""
    form = await client.get(PATH, params={"lang": lang})
    assert form.status_code == 200
    fields = {"form_token": hidden(form.text, "form_token"), "lang": lang, "phone": number}
    return await client.post(PATH, data=fields, headers=headers)


def registry(db: Database) -> list[OptOut]:
    with db.session() as session:
        return list(session.exec(select(OptOut)))


async def text_in(client: httpx.AsyncClient, body: str) -> str | None:
    form = inbound_form(body)
    response = await client.post(
        "/twilio/inbound", data=form, headers=signed_headers("/twilio/inbound", form)
    )
    return reply_text(response)


# --- what registering does to calls --------------------------------------------------------


async def test_a_registered_number_is_never_texted_by_a_later_call(
    harness: Harness, web: httpx.AsyncClient, provider: RecordingProvider
) -> None:
    registered = await register(web, CALLER_AS_WRITTEN)
    assert registered.status_code == 303
    assert registered.headers["location"] == f"{PATH}/done?lang=en"
    done = await web.get(registered.headers["location"])
    assert done.status_code == 200 and "This number will not be texted" in done.text

    incident = new_incident_id()
    state = await harness.send(eligible_call(incident, caller_phone=CALLER))
    assert state.texting_state == TextingState.OPTED_OUT
    await harness.send(cad_event(incident, CadEventType.ASSIGNED, minutes=5))
    await harness.send(cad_event(incident, CadEventType.DELAYED, minutes=30))
    await harness.send(cad_event(incident, CadEventType.CLEARED, minutes=60))
    await harness.finish(incident)  # through the survey window to the end of its lifecycle
    assert provider.accepted == [], "the provider was handed nothing for this number"
    assert harness.kinds(incident) == []


async def test_an_open_call_of_the_number_stops_texting(
    harness: Harness, web: httpx.AsyncClient, provider: RecordingProvider
) -> None:
    incident = new_incident_id()
    await harness.send(eligible_call(incident, caller_phone=CALLER))
    assert provider.kinds() == ["confirmation"]

    assert (await register(web, CALLER_AS_WRITTEN)).status_code == 303
    state = await harness.settle(incident, lambda s: s.opted_out)
    assert state.texting_state == TextingState.OPTED_OUT
    await harness.send(cad_event(incident, CadEventType.ASSIGNED, minutes=10))
    await harness.send(cad_event(incident, CadEventType.CLEARED, minutes=40))
    assert provider.kinds() == ["confirmation"], "nothing after the registration"


async def test_start_from_the_number_lifts_it(
    harness: Harness, web: httpx.AsyncClient, provider: RecordingProvider
) -> None:
    assert (await register(web, CALLER_AS_WRITTEN)).status_code == 303
    blocked = new_incident_id()
    assert (await harness.send(eligible_call(blocked))).texting_state == TextingState.OPTED_OUT

    reply = await text_in(web, "START")
    assert reply is not None and "STOP" in reply
    assert not is_opted_out(harness.db, "testville", CALLER)
    [row] = registry(harness.db)
    assert (row.opted_out, row.keyword) == (False, "START")
    await harness.settle(blocked, lambda s: not s.opted_out)
    await harness.send(cad_event(blocked, CadEventType.ASSIGNED, minutes=5))
    later = new_incident_id()
    await harness.send(eligible_call(later))
    assert provider.kinds() == ["assigned", "confirmation"]


async def test_the_answer_is_the_same_whatever_the_numbers_history(
    harness: Harness, web: httpx.AsyncClient
) -> None:
    """A number with an open call that already said STOP, and one never heard of."""
    incident = new_incident_id()
    await harness.send(eligible_call(incident, caller_phone=CALLER))
    record_opt_out(harness.db, "testville", CALLER, "STOP", True)

    known, unknown = await register(web, CALLER_AS_WRITTEN), await register(web, OTHER_NUMBER)
    for answer in (known, unknown):
        assert answer.status_code == 303
    assert known.content == unknown.content
    cookies_aside = {"set-cookie", "date"}
    assert {k: v for k, v in known.headers.items() if k not in cookies_aside} == {
        k: v for k, v in unknown.headers.items() if k not in cookies_aside
    }
    pages = [(await web.get(a.headers["location"])).text for a in (known, unknown)]
    assert pages[0] == pages[1]
    rows = {row.phone_pseudonym: row for row in registry(harness.db)}
    for number in (CALLER, OTHER_NUMBER):
        row = rows[harness.db.pseudonym(number)]
        assert (row.opted_out, row.keyword) == (True, REGISTERED_ON_PAGE)
    await harness.settle(incident, lambda s: s.opted_out)


async def test_a_plain_never_text_me_from_a_number_without_a_call_registers_it(
    harness: Harness, web: httpx.AsyncClient, provider: RecordingProvider
) -> None:
    """As STOP does: no call is needed for the number to be kept out of every later one."""
    reply = await text_in(web, "Never text me again please")
    assert reply is not None and "START" in reply
    [row] = registry(harness.db)
    assert (row.opted_out, row.keyword) == (True, "NEVER TEXT ME AGAIN")
    incident = new_incident_id()
    assert (await harness.send(eligible_call(incident))).texting_state == TextingState.OPTED_OUT
    assert provider.accepted == []


# --- the registry and the logs ---------------------------------------------------------------


def every_stored_value(db: Database) -> str:
    """Every value in every table, as text."""
    values: list[str] = []
    with db.engine.connect() as connection:
        for table in SQLModel.metadata.sorted_tables:
            for row in connection.execute(table.select()):
                values.extend(str(value) for value in row)
    return "\n".join(values)


async def test_the_registry_holds_the_pseudonym_not_the_number(
    database: Database, agency: AgencyConfig
) -> None:
    with capture_logs() as logs:
        async with site(database, agency) as client:
            assert (await register(client, "703.555.0199")).status_code == 303
    [row] = registry(database)
    assert (row.agency, row.phone_pseudonym, row.opted_out, row.keyword) == (
        "testville",
        database.pseudonym(OTHER_NUMBER),
        True,
        REGISTERED_ON_PAGE,
    )
    assert is_opted_out(database, "testville", OTHER_NUMBER)
    stored = every_stored_value(database)
    assert "5550199" not in stored and "555.0199" not in stored
    assert {"event": "number registered never to be texted", "agency": "testville"} in [
        {k: v for k, v in entry.items() if k in ("event", "agency")} for entry in logs
    ]
    assert "0199" not in repr(logs)


# --- the form ----------------------------------------------------------------------------------


async def test_a_bad_number_gets_a_clear_error_in_the_pages_language(
    database: Database, agency: AgencyConfig
) -> None:
    async with site(database, agency) as client:
        wrong = await register(client, "555-12", lang="es")
        empty = await register(client, "  ", lang="fr")
        assert (wrong.status_code, empty.status_code) == (422, 422)
        assert text_of(wrong.text).count("Este no es un número de teléfono válido.") == 2
        assert "Revise el número de teléfono" in wrong.text
        assert 'value="555-12"' in wrong.text and 'aria-invalid="true"' in wrong.text
        assert text_of(empty.text).count("Saisissez un numéro de téléphone.") == 2
        assert '<html lang="fr"' in empty.text
        assert registry(database) == []
        # The form it answers with goes through once corrected.
        fields = {"form_token": hidden(wrong.text, "form_token"), "lang": "es"}
        fixed = await client.post(PATH, data={**fields, "phone": "703 555 0199"})
        assert (fixed.status_code, fixed.headers["location"]) == (303, f"{PATH}/done?lang=es")
    assert is_opted_out(database, "testville", OTHER_NUMBER)


@pytest.mark.parametrize(
    "number",
    [
        '<script>alert("x")</script>',
        "703'; DROP TABLE opt_outs; --",
        "703\x00555\x000142",
        "9" * 500,
    ],
    ids=["markup", "sql", "nul", "long"],
)
async def test_hostile_input_is_a_bad_number_shown_as_text(
    database: Database, agency: AgencyConfig, number: str
) -> None:
    async with site(database, agency) as client:
        page = await register(client, number)
    assert page.status_code == 422
    assert "This is not a valid phone number." in page.text
    assert "<script>" not in page.text
    assert registry(database) == []


async def test_a_forged_post_changes_nothing(database: Database, agency: AgencyConfig) -> None:
    async with site(database, agency) as client:
        form = await client.get(PATH)
        fields = {"form_token": hidden(form.text, "form_token"), "lang": "en", "phone": CALLER}
        cross_site = await client.post(PATH, data=fields, headers={"Origin": "https://evil.test"})
        opaque = await client.post(PATH, data=fields, headers={"Origin": "null"})
        forged = await client.post(PATH, data={**fields, "form_token": "0" * 64})
    async with site(database, agency) as cookieless:  # a post from another site: no cookie
        no_cookie = await cookieless.post(PATH, data=fields)
    for refused in (cross_site, opaque, forged, no_cookie):
        assert refused.status_code == 403
        assert "The number was not registered" in refused.text
    assert registry(database) == []


async def test_registrations_are_rate_limited_per_client(
    database: Database, agency: AgencyConfig
) -> None:
    async with site(database, agency) as client:
        form = await client.get(PATH)
        fields = {"form_token": hidden(form.text, "form_token"), "lang": "en"}
        numbers = [f"+1703555{n:04d}" for n in range(110, 110 + REGISTRATIONS_PER_HOUR + 1)]
        answers = [await client.post(PATH, data={**fields, "phone": n}) for n in numbers]
        assert [a.status_code for a in answers] == [303] * REGISTRATIONS_PER_HOUR + [429]
        assert int(answers[-1].headers["Retry-After"]) > 0
        assert "Too many attempts" in answers[-1].text
        assert not is_opted_out(database, "testville", numbers[-1])
        assert (await client.get(PATH)).status_code == 200, "the form itself stays open"


async def test_an_unknown_agency_has_no_page(database: Database, agency: AgencyConfig) -> None:
    async with site(database, agency) as client:
        assert (await client.get("/never-text/nowhere")).status_code == 404
        assert (await client.post("/never-text/nowhere", data={"phone": CALLER})).status_code == 404
        assert (await client.get("/never-text/nowhere/done")).status_code == 404
    assert registry(database) == []


@pytest.mark.parametrize(
    ("language", "heading", "undo"),
    [
        ("en", "Never text me", "text START to"),
        ("es", "No me envíen mensajes nunca", "envíe START al"),
        ("fr", "Ne m'envoyez jamais de messages", "envoyez START au"),
        ("zh", "永远不要给我发短信", "请发送 START 至"),
        ("ar", "لا ترسلوا لي رسائل أبدًا", "أرسل START إلى"),
    ],
)
async def test_the_page_in_each_language_says_how_to_undo_it(
    database: Database, language: str, heading: str, undo: str
) -> None:
    agency = make_agency(agency={"languages": ["en", "es", "fr", "zh", "ar"]})
    async with site(database, agency) as client:
        page = await client.get(PATH, params={"lang": language})
    assert page.status_code == 200
    html = page.text.replace("&#39;", "'")
    assert f"<h1>{heading}</h1>" in html
    assert undo in text_of(html)
    assert '<a href="sms:+17035550100">(703) 555-0100</a>' in html
    assert "(201) 555-0123" in html  # the example, as the region writes numbers
    assert ('dir="rtl"' in html.split(">", 2)[1]) == (language == "ar")
    assert page.headers["content-security-policy"].startswith("default-src 'none'")


async def test_an_agency_texting_from_a_pool_says_where_to_send_start(
    database: Database,
) -> None:
    agency = make_agency(agency={"sender_number": None, "messaging_service_sid": "MG" + "0" * 32})
    async with site(database, agency) as client:
        page = await client.get(PATH)
    assert "text START to the number our texts come from" in page.text
    assert "sms:" not in page.text
