"""Twilio's webhooks, called as Twilio calls them: form-encoded, signed with the auth token
for the public URL (the app itself is reached as http://testserver, as behind a proxy)."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Mapping

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlmodel import col, select
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from twilio.request_validator import RequestValidator

from callerloop.core.agency_config import AgencyConfig, AgencyConfigError, default_templates
from callerloop.core.db import AutoReply, CallRecord, Database, OptOut, OutboxMessage, utcnow
from callerloop.core.settings import Settings
from callerloop.core.sms_encoding import measure
from callerloop.messaging import inbound as inbound_module
from callerloop.messaging import opt_outs
from callerloop.messaging.inbound import (
    CallSignal,
    SignalDeliveryFailed,
    handle_inbound,
    was_handled,
)
from tests.factories import cad_event, eligible_call, make_agency, new_incident_id, outbox_row
from tests.harness import Harness
from web.app import create_app
from workflows.model import CadEventType, OptOutSignal, TextingState

AUTH_TOKEN = "0123456789abcdef0123456789abcdef"
PUBLIC_URL = "https://callerloop.example.gov"
AGENCY_NUMBER = "+17035550100"
CALLER = "+17035550142"
_sids = itertools.count(1)


def signature(path: str, form: Mapping[str, str], token: str = AUTH_TOKEN) -> str:
    signer = RequestValidator(token)
    signed: str = signer.compute_signature(f"{PUBLIC_URL}{path}", dict(form))
    return signed


def signed_headers(path: str, form: Mapping[str, str]) -> dict[str, str]:
    return {"X-Twilio-Signature": signature(path, form)}


def inbound_form(body: str, **extra: str) -> dict[str, str]:
    """What Twilio posts for an incoming text, with fields callerloop never reads."""
    sid = f"SM{next(_sids):032x}"
    return {
        "ToCountry": "US",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "SmsSid": sid,
        "SmsStatus": "received",
        "Body": body,
        "To": AGENCY_NUMBER,
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": "AC" + "0" * 32,
        "From": CALLER,
        "ApiVersion": "2010-04-01",
        **extra,
    }


def status_form(provider_id: str, status: str, **extra: str) -> dict[str, str]:
    return {
        "MessageSid": provider_id,
        "SmsSid": provider_id,
        "MessageStatus": status,
        "SmsStatus": status,
        "AccountSid": "AC" + "0" * 32,
        "To": CALLER,
        "From": AGENCY_NUMBER,
        "ApiVersion": "2010-04-01",
        "RawDlrDoneDate": "2509011405",  # a field the app has never heard of
        **extra,
    }


def reply_text(response: httpx.Response) -> str | None:
    """The text of the TwiML reply's <Message>, None for an empty <Response/>."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/xml")
    root = ET.fromstring(response.text)
    assert root.tag == "Response"
    messages = root.findall("Message")
    assert len(messages) <= 1, "one reply at most"
    return messages[0].text if messages else None


def web_settings(database: Database, token: str = AUTH_TOKEN) -> Settings:
    # A trailing slash on the configured URL must not break the signed URL.
    return Settings(
        database_url=database.url,
        public_base_url=f"{PUBLIC_URL}/",
        twilio_auth_token=SecretStr(token),
    )


async def no_temporal() -> Client:
    raise AssertionError("this request must not need Temporal")


def make_app(
    database: Database, agency: AgencyConfig, token: str = AUTH_TOKEN, client: Client | None = None
) -> FastAPI:
    async def temporal() -> Client:
        return client if client is not None else await no_temporal()

    return create_app(web_settings(database, token), database, {agency.id: agency}, temporal)


def client_for(app: FastAPI) -> httpx.AsyncClient:
    """The app in the test's event loop, reached as http://testserver (not the public URL)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


@pytest.fixture
async def web(database: Database, agency: AgencyConfig) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(make_app(database, agency)) as client:
        yield client


def status_of(db: Database, provider_id: str) -> str:
    with db.session() as session:
        row = session.exec(
            select(OutboxMessage).where(col(OutboxMessage.provider_id) == provider_id)
        ).one()
        return row.status


async def post_status(
    web: httpx.AsyncClient, provider_id: str, status: str, **extra: str
) -> httpx.Response:
    form = status_form(provider_id, status, **extra)
    return await web.post(
        "/twilio/status", data=form, headers=signed_headers("/twilio/status", form)
    )


# --- delivery receipts --------------------------------------------------------------------


async def test_receipts_move_the_outbox_row_forward_only(
    web: httpx.AsyncClient, database: Database
) -> None:
    sid = outbox_row(database, "queued")
    for status in ("sent", "delivered", "sent", "queued"):
        assert (await post_status(web, sid, status)).status_code == 204
    assert status_of(database, sid) == "delivered"


async def test_a_failed_receipt_records_its_error_code(
    web: httpx.AsyncClient, database: Database
) -> None:
    sid = outbox_row(database, "sent")
    assert (await post_status(web, sid, "undelivered", ErrorCode="30006")).status_code == 204
    with database.session() as session:
        row = session.exec(select(OutboxMessage).where(col(OutboxMessage.provider_id) == sid)).one()
    assert (row.status, row.error_code) == ("undelivered", "30006")


async def test_a_receipt_for_an_unknown_message_is_accepted(web: httpx.AsyncClient) -> None:
    # Twilio cannot do anything about it; an error would only be retried.
    assert (await post_status(web, "SM" + "f" * 32, "delivered")).status_code == 204


async def test_a_receipt_without_its_fields_is_a_bad_request(web: httpx.AsyncClient) -> None:
    form = {"AccountSid": "AC" + "0" * 32}
    response = await web.post(
        "/twilio/status", data=form, headers=signed_headers("/twilio/status", form)
    )
    assert response.status_code == 400
    assert "MessageSid" in response.text


# --- signatures ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Twilio-Signature": ""},
        {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"},
    ],
    ids=["missing", "empty", "forged"],
)
async def test_unsigned_requests_are_refused_and_change_nothing(
    web: httpx.AsyncClient, database: Database, headers: dict[str, str]
) -> None:
    sid = outbox_row(database, "queued")
    response = await web.post("/twilio/status", data=status_form(sid, "delivered"), headers=headers)
    assert response.status_code == 403
    assert status_of(database, sid) == "queued"

    form = inbound_form("STOP")
    assert (await web.post("/twilio/inbound", data=form, headers=headers)).status_code == 403
    with database.session() as session:
        assert session.exec(select(OptOut)).all() == []


async def test_a_signature_over_other_fields_is_refused(
    web: httpx.AsyncClient, database: Database
) -> None:
    sid = outbox_row(database, "queued")
    signed = status_form(sid, "sent")
    tampered = status_form(sid, "delivered")
    response = await web.post(
        "/twilio/status", data=tampered, headers=signed_headers("/twilio/status", signed)
    )
    assert response.status_code == 403
    assert status_of(database, sid) == "queued"


async def test_a_signature_with_another_token_is_refused(
    web: httpx.AsyncClient, database: Database
) -> None:
    sid = outbox_row(database, "queued")
    form = status_form(sid, "delivered")
    headers = {"X-Twilio-Signature": signature("/twilio/status", form, token="f" * 32)}
    assert (await web.post("/twilio/status", data=form, headers=headers)).status_code == 403
    assert status_of(database, sid) == "queued"


async def test_the_signed_url_is_the_public_one_not_the_one_the_app_sees(
    web: httpx.AsyncClient, database: Database
) -> None:
    """Behind a TLS-terminating proxy the app is reached over http at an internal host;
    Twilio signed the https public URL. Signing what the app sees must fail."""
    sid = outbox_row(database, "queued")
    form = status_form(sid, "sent")
    as_seen = RequestValidator(AUTH_TOKEN).compute_signature(
        "http://testserver/twilio/status", form
    )
    response = await web.post("/twilio/status", data=form, headers={"X-Twilio-Signature": as_seen})
    assert response.status_code == 403
    assert (await post_status(web, sid, "sent")).status_code == 204
    assert status_of(database, sid) == "sent"


async def test_the_query_string_is_part_of_the_signed_url(
    web: httpx.AsyncClient, database: Database
) -> None:
    sid = outbox_row(database, "queued")
    form = status_form(sid, "sent")
    path = "/twilio/status?source=callerloop"
    response = await web.post(
        path, data=form, headers={"X-Twilio-Signature": signature(path, form)}
    )
    assert response.status_code == 204
    assert status_of(database, sid) == "sent"


async def test_without_an_auth_token_every_request_is_refused(
    database: Database, agency: AgencyConfig
) -> None:
    # An empty key would let anyone compute a valid signature.
    sid = outbox_row(database, "queued")
    form = status_form(sid, "delivered")
    async with client_for(make_app(database, agency, token="")) as client:
        headers = {"X-Twilio-Signature": signature("/twilio/status", form, token="")}
        assert (await client.post("/twilio/status", data=form, headers=headers)).status_code == 403
    assert status_of(database, sid) == "queued"


# --- inbound texts without calls ----------------------------------------------------------


async def post_inbound(web: httpx.AsyncClient, body: str, **extra: str) -> httpx.Response:
    form = inbound_form(body, **extra)
    return await web.post(
        "/twilio/inbound", data=form, headers=signed_headers("/twilio/inbound", form)
    )


async def test_help_gets_the_agencys_help_text(web: httpx.AsyncClient) -> None:
    text = reply_text(await post_inbound(web, "HELP"))
    assert text is not None
    assert text.startswith("Testville PD:") and "911" in text and "703-555-0100" in text


async def test_ayuda_gets_the_help_text_in_spanish(web: httpx.AsyncClient) -> None:
    text = reply_text(await post_inbound(web, "Ayuda"))
    assert text is not None and "Emergencias" in text


async def test_a_text_to_an_unknown_number_gets_an_empty_reply(web: httpx.AsyncClient) -> None:
    assert reply_text(await post_inbound(web, "STOP", To="+12025550199")) is None


async def test_an_opt_out_the_provider_answered_is_recorded_without_a_second_reply(
    web: httpx.AsyncClient, database: Database
) -> None:
    """With Twilio's Advanced Opt-Out, Twilio has replied and blocked the number itself
    (`OptOutType`), even for words callerloop does not know."""
    assert reply_text(await post_inbound(web, "DESUSCRIBIR", OptOutType="STOP")) is None
    with database.session() as session:
        row = session.get(OptOut, ("testville", database.pseudonym(CALLER)))
    assert row is not None and row.opted_out


async def test_a_stray_text_without_a_call_is_answered_once_a_day(web: httpx.AsyncClient) -> None:
    first = reply_text(await post_inbound(web, "hello?"))
    assert first is not None and "not monitored" in first and "911" in first
    assert reply_text(await post_inbound(web, "hello??")) is None


async def test_a_captured_stop_played_again_after_start_changes_nothing(
    web: httpx.AsyncClient, database: Database
) -> None:
    """Twilio's signature has no timestamp: a captured request stays valid. The message id
    makes it one-off, so an old STOP cannot undo the resident's START."""
    stop = inbound_form("STOP")
    headers = signed_headers("/twilio/inbound", stop)
    assert reply_text(await web.post("/twilio/inbound", data=stop, headers=headers)) is not None
    assert reply_text(await post_inbound(web, "START")) is not None
    assert not opted_out(database)

    replayed = await web.post("/twilio/inbound", data=stop, headers=headers)
    assert reply_text(replayed) is None
    assert not opted_out(database)


async def test_a_text_whose_handling_failed_is_handled_when_twilio_retries(
    database: Database, agency: AgencyConfig
) -> None:
    incident = new_incident_id()
    open_call_record(database, incident)

    async def temporal_down() -> Client:
        raise RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b"")

    app = create_app(web_settings(database), database, {agency.id: agency}, temporal_down)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    form = inbound_form("STOP")
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        post = await client.post(
            "/twilio/inbound", data=form, headers=signed_headers("/twilio/inbound", form)
        )
        assert post.status_code == 500  # so Twilio retries
        assert not was_handled(database, form["MessageSid"])
        with database.session() as session:  # meanwhile the call ended: nobody to tell
            session.delete(session.get(CallRecord, f"call/testville/{incident}"))
            session.commit()
        retry = await client.post(
            "/twilio/inbound", data=form, headers=signed_headers("/twilio/inbound", form)
        )
    assert retry.status_code == 200
    assert was_handled(database, form["MessageSid"])
    assert opted_out(database)


# --- inbound texts and running calls ------------------------------------------------------


@pytest.fixture
async def twilio(harness: Harness, agency: AgencyConfig) -> AsyncIterator[httpx.AsyncClient]:
    """The app in the test's event loop, signalling calls through the harness's Temporal."""
    async with client_for(make_app(harness.db, agency, client=harness.env.client)) as client:
        yield client


async def text_in(twilio: httpx.AsyncClient, body: str, **extra: str) -> str | None:
    form = inbound_form(body, **extra)
    response = await twilio.post(
        "/twilio/inbound", data=form, headers=signed_headers("/twilio/inbound", form)
    )
    return reply_text(response)


def opted_out(db: Database) -> bool:
    with db.session() as session:
        row = session.get(OptOut, ("testville", db.pseudonym(CALLER)))
    return bool(row and row.opted_out)


CONFIRMATION_WORDS = {"en": "no more texts", "es": "no le enviaremos", "fr": "ne recevrez plus"}
# Every keyword the issue names, and plain requests, each in the caller's language.
OPT_OUTS_BY_LANGUAGE = {
    "en": [
        *("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"),
        *("stop texting me", "No more texts, thanks"),
    ],
    "es": ["ALTO", "PARAR", "BAJA", "Stop", "dejen de enviarme mensajes", "no más mensajes"],
    "fr": ["ARRET", "Arrêt", "arrêtez de m'écrire", "Plus de messages svp"],
}


@pytest.mark.parametrize(
    ("body", "language"),
    [(body, lang) for lang, bodies in OPT_OUTS_BY_LANGUAGE.items() for body in bodies],
)
async def test_opt_out_stops_an_open_call_mid_lifecycle(
    harness: Harness, twilio: httpx.AsyncClient, body: str, language: str
) -> None:
    incident = new_incident_id()
    await harness.send(eligible_call(incident, caller_language=language))
    assert harness.kinds(incident) == ["confirmation"]

    reply = await text_in(twilio, body)
    assert reply is not None and CONFIRMATION_WORDS[language] in reply and "START" in reply
    assert opted_out(harness.db)
    state = await harness.settle(incident, lambda s: s.opted_out)
    assert state.texting_state == TextingState.OPTED_OUT

    state = await harness.send(cad_event(incident, CadEventType.ASSIGNED, minutes=10))
    assert harness.kinds(incident) == ["confirmation"], "no text after the opt-out"
    assert state.texting_state == TextingState.OPTED_OUT


async def test_opt_out_blocks_new_calls_until_start(
    harness: Harness, twilio: httpx.AsyncClient
) -> None:
    first = new_incident_id()
    await harness.send(eligible_call(first))
    assert await text_in(twilio, "STOP") is not None
    assert await text_in(twilio, "stop") is None, "one confirmation at most"

    blocked = new_incident_id()
    state = await harness.send(eligible_call(blocked))
    assert state.texting_state == TextingState.OPTED_OUT
    assert harness.kinds(blocked) == []

    reply = await text_in(twilio, "START")
    assert reply is not None and "STOP" in reply
    assert not opted_out(harness.db)
    # The open calls hear it too. The blocked one sends nothing of what it went through
    # while opted out (no stale confirmation), but texts what happens from now on.
    state = await harness.settle(blocked, lambda s: not s.opted_out)
    assert state.texting_state == TextingState.ACTIVE
    assert harness.kinds(blocked) == []
    await harness.send(cad_event(blocked, CadEventType.ASSIGNED, minutes=5))
    assert harness.kinds(blocked) == ["assigned"]

    later = new_incident_id()
    await harness.send(eligible_call(later))
    assert harness.kinds(later) == ["confirmation"]


async def test_other_texts_get_one_auto_reply_per_call(
    harness: Harness, twilio: httpx.AsyncClient
) -> None:
    first = new_incident_id()
    await harness.send(eligible_call(first, caller_language="es"))
    reply = await text_in(twilio, "¿Cuándo llega el agente?")
    assert reply is not None and "911" in reply and "nadie lee" in reply
    assert await text_in(twilio, "hola??") is None

    second = new_incident_id()
    await harness.send(eligible_call(second, caller_language="es"))
    assert await text_in(twilio, "otra pregunta") is not None, "a new call, a new reply"
    assert await text_in(twilio, "y otra") is None
    with harness.db.session() as session:
        replied = {row.workflow_id for row in session.exec(select(AutoReply))}
    assert replied == {f"call/testville/{first}", f"call/testville/{second}"}
    # Talking to the number opts nobody out.
    assert not opted_out(harness.db)
    assert (await harness.state(first)).texting_state == TextingState.ACTIVE


async def test_help_during_a_call_names_the_agency(
    harness: Harness, twilio: httpx.AsyncClient
) -> None:
    incident = new_incident_id()
    await harness.send(eligible_call(incident, caller_language="fr"))
    reply = await text_in(twilio, "aide")
    assert reply is not None and reply.startswith("Testville PD :") and "911" in reply
    assert (await harness.state(incident)).texting_state == TextingState.ACTIVE


# --- signalling calls ----------------------------------------------------------------------


def open_call_record(db: Database, incident: str, language: str = "en") -> str:
    workflow_id = f"call/testville/{incident}"
    with db.session() as session:
        session.add(
            CallRecord(
                workflow_id=workflow_id,
                agency="testville",
                incident_id=incident,
                language=language,
                caller_phone=CALLER,
                texting_state="active",
                received_at=utcnow(),
                updated_at=utcnow(),
            )
        )
        session.commit()
    return workflow_id


async def test_every_open_call_is_tried_and_a_failure_is_raised(
    database: Database, agency: AgencyConfig
) -> None:
    """The registry has the opt-out whatever happens; a call that ended is skipped; a call
    that could not be told is an error (Twilio's retry then finds the number opted out)."""
    ended, unreachable, fine = (open_call_record(database, new_incident_id()) for _ in range(3))
    told: list[str] = []

    async def signal_call(workflow_id: str, signal: CallSignal) -> None:
        if workflow_id == ended:
            raise RPCError("workflow execution already completed", RPCStatusCode.NOT_FOUND, b"")
        if workflow_id == unreachable:
            raise RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b"")
        told.append(workflow_id)

    with pytest.raises(SignalDeliveryFailed, match=unreachable):
        await handle_inbound(database, agency, CALLER, "STOP", signal_call)
    assert told == [fine]
    assert opted_out(database)


async def test_an_agency_words_its_own_replies(database: Database) -> None:
    """The replies are templates: an agency overrides them as it does its texts."""
    own = "{agency_name}: no more texts. Text START to get them back. Emergencies: 911."
    agency = make_agency(templates={"en": {"opt_out": own}})

    async def signal_call(workflow_id: str, signal: CallSignal) -> None:
        pass

    reply = await handle_inbound(database, agency, CALLER, "STOP", signal_call)
    assert reply.text == own.format(agency_name=agency.agency.name)


def test_a_reply_that_leaves_out_its_keyword_is_refused_at_load() -> None:
    with pytest.raises(AgencyConfigError, match=r"templates\.en\.opt_out must tell .* START"):
        make_agency(templates={"en": {"opt_out": "{agency_name}: no more texts."}})
    with pytest.raises(AgencyConfigError, match=r"templates\.en\.opt_in: unknown placeholder"):
        make_agency(templates={"en": {"opt_in": "Texts again {case}. Reply STOP to stop."}})


async def test_the_reply_is_in_the_latest_calls_language(
    database: Database, agency: AgencyConfig
) -> None:
    open_call_record(database, new_incident_id(), language="fr")

    async def signal_call(workflow_id: str, signal: CallSignal) -> None:
        assert isinstance(signal, OptOutSignal) and signal.keyword == "STOP"

    reply = await handle_inbound(database, agency, CALLER, "STOP", signal_call)
    assert reply.text is not None and "ne recevrez plus" in reply.text


@pytest.mark.parametrize("kind", ["opt_out", "opt_in", "not_monitored"])
def test_callerloops_own_replies_fit_one_gsm7_segment(kind: str) -> None:
    for language in ("en", "es", "fr"):
        body = default_templates()[language][kind].format(
            agency_name="Example City Police", non_emergency_phone="703-555-0100"
        )
        size = measure(body)
        assert (size.encoding, size.segments) == ("GSM-7", 1), (language, body)


async def test_a_call_recorded_while_a_stop_is_written_is_still_told(
    database: Database, agency: AgencyConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The handler looks for the number's calls only once the STOP is committed: a call
    whose record lands meanwhile is signalled (had the lookup come first it would be
    missed, and the call's own look at the registry may have come just before the STOP)."""
    recorded_meanwhile: list[str] = []
    write_the_stop = opt_outs.record_opt_out

    def stop_then_a_call_is_recorded(*args: object, **kwargs: object) -> None:
        write_the_stop(*args, **kwargs)  # type: ignore[arg-type]
        recorded_meanwhile.append(open_call_record(database, new_incident_id()))

    monkeypatch.setattr(inbound_module, "record_opt_out", stop_then_a_call_is_recorded)
    told: list[str] = []

    async def signal_call(workflow_id: str, signal: CallSignal) -> None:
        assert isinstance(signal, OptOutSignal)
        told.append(workflow_id)

    await handle_inbound(database, agency, CALLER, "STOP", signal_call)
    assert told == recorded_meanwhile and len(told) == 1
    assert opted_out(database)
