"""Hostile input gets nowhere: SQL and markup in every text field a CAD sends are stored
as they came and shown as text; secrets never reach the logs; behind TLS every answer
tells browsers to stay on https."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr
from sqlmodel import func, select
from temporalio.testing import WorkflowEnvironment

from callerloop.cad import dead_letters
from callerloop.cad.delivery import EVENTS_PATH
from callerloop.cad.http_client import event_json
from callerloop.core.agency_config import AgencyConfig
from callerloop.core.db import CallRecord, Database, OutboxMessage
from callerloop.staff.api_keys import create_key
from tests.conftest import start_harness
from tests.factories import RecordingProvider, eligible_call, make_agency, new_incident_id
from tests.harness import Harness
from tests.web.pages import link_in_text, pages_app

BASE = "https://callerloop.test"
# What an attacker (or a careless CAD integration) might put in any text field.
SQL = "C-1'; DROP TABLE outbox; --"
MARKUP = '<script>alert("x")</script><img src=x onerror=alert(1)>'
CALL_TYPE = f"NOISE COMPLAINT {MARKUP} {SQL}"


@pytest.fixture
def agency() -> AgencyConfig:
    return make_agency()


@pytest.fixture
async def harness(
    env: WorkflowEnvironment, database: Database, agency: AgencyConfig
) -> AsyncIterator[Harness]:
    async for running in start_harness(env, database, {agency.id: agency}, RecordingProvider()):
        yield running


async def test_sql_and_markup_in_cad_fields_are_stored_verbatim_and_shown_as_text(
    harness: Harness, database: Database, agency: AgencyConfig
) -> None:
    incident = new_incident_id()
    case_number = f"{SQL}{MARKUP}"
    await harness.send(
        eligible_call(incident, case_number=case_number, call_type=CALL_TYPE, disposition=SQL)
    )
    with database.session() as session:
        record = session.get(CallRecord, f"call/testville/{incident}")
        texts = session.exec(select(func.count()).select_from(OutboxMessage)).one()
    assert record is not None
    assert (record.case_number, record.call_type) == (case_number, CALL_TYPE)
    assert texts == 1, "the outbox table is still there, with the confirmation in it"
    [confirmation] = harness.outbox(incident)
    assert confirmation.body is not None and case_number in confirmation.body  # SMS is text

    app = pages_app(database, {agency.id: agency}, BASE)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as web:
        page = await web.get(link_in_text(harness, incident, "confirmation"))
    assert page.status_code == 200
    assert "<script>" not in page.text and "<img" not in page.text
    assert "&lt;script&gt;" in page.text and "DROP TABLE outbox" in page.text
    assert "script-src" not in page.headers["content-security-policy"]  # no script may run


async def test_markup_posted_to_the_ingest_api_is_refused_or_kept_as_text(
    database: Database, agency: AgencyConfig
) -> None:
    """A bad field's error names it; the message quotes nothing back as markup."""
    key = create_key(database, agency.id, "CAD")[1]
    app = pages_app(database, {agency.id: agency}, BASE)
    body = event_json(eligible_call(new_incident_id()))
    body["caller_phone"] = MARKUP
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as web:
        response = await web.post(
            EVENTS_PATH, json=body, headers={"Authorization": f"Bearer {key}"}
        )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/json"
    assert "caller_phone" in response.text
    assert response.json()["dead_letter_id"] > 0, "the refused body is kept for review"


async def test_behind_tls_every_answer_asks_for_https_only(
    database: Database, agency: AgencyConfig
) -> None:
    for base, expected in ((BASE, True), ("http://localhost:8000", False)):
        app = pages_app(database, {agency.id: agency}, base)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base) as web:
            for path in ("/healthz", "/s/no-such-token", "/dashboard/login", "/opendata/"):
                response = await web.get(path)
                hsts = response.headers.get("strict-transport-security")
                assert (hsts == "max-age=31536000; includeSubDomains") is expected, (base, path)


async def test_secrets_never_reach_the_logs(
    database: Database, agency: AgencyConfig, caplog: pytest.LogCaptureFixture
) -> None:
    """Keys, tokens and passwords go through the app and its failure paths; none is
    written to a log line, whatever the level."""
    key = create_key(database, agency.id, "CAD")[1]
    twilio_token = "twilio-auth-token-0123456789abcdef"
    pages_secret = "pages-secret-0123456789abcdef"
    app = pages_app(
        database,
        {agency.id: agency},
        BASE,
        twilio_auth_token=SecretStr(twilio_token),
        pages_secret=SecretStr(pages_secret),
    )
    caplog.set_level(logging.DEBUG)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as web:
        await web.post(EVENTS_PATH, content=b"{not json", headers={"X-API-Key": key})
        await web.post(EVENTS_PATH, json={}, headers={"Authorization": f"Bearer {key}x"})
        await web.post(
            "/twilio/inbound", data={"Body": "STOP"}, headers={"X-Twilio-Signature": "forged"}
        )
        await web.post("/dashboard/login", data={"username": "admin", "password": "hunter2-secret"})
    logged = "\n".join(record.getMessage() + repr(record.__dict__) for record in caplog.records)
    assert logged, "the requests above must have logged something"
    for secret in (key, twilio_token, pages_secret, "hunter2-secret"):
        assert secret not in logged


async def test_a_body_with_nul_characters_is_refused_and_kept(database: Database) -> None:
    """PostgreSQL text cannot hold NUL: the body is kept with U+FFFD in its place."""
    agency = make_agency()
    key = create_key(database, agency.id, "CAD")[1]
    app = pages_app(database, {agency.id: agency}, BASE)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as web:
        response = await web.post(
            EVENTS_PATH,
            content=b'{"agency": "\x00"}',
            headers={"X-API-Key": key, "content-type": "application/json"},
        )
    assert response.status_code == 422
    letter = dead_letters.show(database, response.json()["dead_letter_id"])
    assert letter is not None
    assert letter.body == '{"agency": "\ufffd"}' and "U+FFFD" in letter.reason
