"""Fuzzing Twilio's two webhooks with correctly signed, arbitrary forms: whatever Twilio (or
anyone holding the token) posts, the answer is a 2xx or a clear 400, never a 5xx, and an
outbox row only ever moves forward.

(The ingest API is fuzzed from its OpenAPI schema in test_ingest_schemathesis.py. The
webhooks' forms are Twilio's, not described by callerloop's schema, so they are generated
here from Twilio's field names and arbitrary text.)"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from sqlmodel import select
from twilio.request_validator import RequestValidator

from callerloop.core.db import Database, OutboxMessage
from callerloop.messaging.delivery_status import STATUS_ORDER
from tests.factories import make_agency, outbox_row
from tests.web.pages import pages_app

BASE = "https://callerloop.test"
TOKEN = "fuzz-token"
AGENCY = make_agency()
STATUS_FIELDS = ["MessageSid", "SmsSid", "MessageStatus", "SmsStatus", "ErrorCode", "To"]
INBOUND_FIELDS = ["MessageSid", "From", "To", "Body", "OptOutType", "MessagingServiceSid"]

text = st.text(max_size=60)
statuses = st.sampled_from([*STATUS_ORDER, "received", "RECEIVED", " Sent "]) | text
phones = st.sampled_from(["+17035550142", "+12025550199", "", "not a number"]) | text
keywords = st.sampled_from(["STOP", "start", "HELP", "Arrêt", "ayuda", "hello?", ""]) | text


def form(fields: list[str], values: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, str]]:
    return st.dictionaries(st.sampled_from(fields) | st.text(min_size=1, max_size=12), values)


status_forms = form(STATUS_FIELDS, statuses | text)
inbound_forms = st.fixed_dictionaries(
    {"MessageSid": st.text(max_size=40), "To": st.just(AGENCY.agency.sender_number or "")},
    optional={"From": phones, "Body": keywords, "OptOutType": keywords},
) | form(INBOUND_FIELDS, keywords | phones)


@pytest.fixture
def web(database: Database) -> Iterator[TestClient]:
    app = pages_app(database, {AGENCY.id: AGENCY}, BASE, twilio_auth_token=SecretStr(TOKEN))
    with TestClient(app, base_url="http://testserver", raise_server_exceptions=False) as client:
        yield client


def post_signed(web: TestClient, path: str, data: dict[str, str]) -> int:
    signature = RequestValidator(TOKEN).compute_signature(f"{BASE}{path}", data)
    response = web.post(path, data=data, headers={"X-Twilio-Signature": signature})
    code: int = response.status_code
    return code


FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(status_forms, st.booleans(), st.sampled_from(["", "?outbox=1", "?outbox=x", "?outbox=-1"]))
def test_any_signed_status_callback_is_taken_or_refused_cleanly(
    web: TestClient, database: Database, data: dict[str, str], ours: bool, query: str
) -> None:
    provider_id = outbox_row(database, status="sent")
    if ours:  # about the text callerloop sent, not some other message
        data = {**data, "MessageSid": provider_id}
    status = post_signed(web, f"/twilio/status{query}", data)
    assert status in (204, 400), (status, data)
    with database.session() as session:
        row = session.exec(
            select(OutboxMessage).where(OutboxMessage.provider_id == provider_id)
        ).one()
    assert STATUS_ORDER[row.status].rank >= STATUS_ORDER["sent"].rank, "never moved back"


@FUZZ
@given(inbound_forms)
def test_any_signed_inbound_text_is_answered_or_refused_cleanly(
    web: TestClient, data: dict[str, str]
) -> None:
    status = post_signed(web, "/twilio/inbound", data)
    assert status in (200, 400), (status, data)
