"""The `twilio` provider, with the real `twilio` client against the local Twilio stand-in."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import pytest
import requests
from pydantic import SecretStr
from sqlmodel import select
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment
from twilio.request_validator import (  # type: ignore[import-untyped, unused-ignore]
    RequestValidator,
)
from twilio.rest import Client  # type: ignore[import-untyped, unused-ignore]

from activities.sms_providers.base import (
    OutgoingText,
    PermanentProviderError,
    TransientProviderError,
)
from activities.sms_providers.twilio import (
    RedirectingHttpClient,
    TwilioAuthenticationError,
    TwilioProvider,
    twilio_provider_from_settings,
)
from activities.sms_providers.twilio_errors import ERROR_RULES, classify
from activities.texts import TextActivities
from callerloop.core.db import Database, OutboxMessage
from callerloop.core.settings import Settings
from devtools.twilio_standin import TwilioStandIn
from tests.factories import make_agency
from workflows.activity_errors import SmsFailure
from workflows.model import LineType, SendTextInput, TextKind

CALLER = "+17035550142"
SENDER = "+17035550100"
SERVICE_SID = "MG" + "1" * 32
STATUS_URL = "https://callerloop.test/twilio/status"

# What each Twilio code must do, written out independently of ERROR_RULES.
EXPECTED_BY_CODE: dict[int, SmsFailure | None] = {  # None: transient, retried
    21610: SmsFailure.OPTED_OUT,
    21211: SmsFailure.NUMBER_UNUSABLE,
    21265: SmsFailure.NUMBER_UNUSABLE,
    21268: SmsFailure.NUMBER_UNUSABLE,
    21614: SmsFailure.NUMBER_UNUSABLE,
    21635: SmsFailure.NUMBER_UNUSABLE,
    30006: SmsFailure.NUMBER_UNUSABLE,
    20429: None,
    21408: SmsFailure.REJECTED,
}


@pytest.fixture
def standin() -> Iterator[TwilioStandIn]:
    with TwilioStandIn() as running:
        yield running


@pytest.fixture
def twilio(standin: TwilioStandIn) -> TwilioProvider:
    return provider_for(standin)


def provider_for(standin: TwilioStandIn, **options: Any) -> TwilioProvider:
    arguments: dict[str, Any] = {
        "account_sid": standin.account_sid,
        "auth_token": standin.auth_token,
        "api_base_url": standin.base_url,
        "lookups_base_url": standin.base_url,
    }
    return TwilioProvider(**(arguments | options))


def text(**overrides: Any) -> OutgoingText:
    base = OutgoingText(
        to=CALLER,
        body="Testville PD: we received your call. Reply STOP to opt out.",
        sender_number=SENDER,
        messaging_service_sid=None,
        validity_seconds=900,
        reference="call/testville/T-1/confirmation",
        status_callback=STATUS_URL,
    )
    return replace(base, **overrides)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# Sending


def test_send_hands_twilio_every_field_and_returns_the_sid(
    twilio: TwilioProvider, standin: TwilioStandIn
) -> None:
    receipt = twilio.send(text())

    [request] = standin.requests_to("messages")
    assert request.fields == {
        "To": CALLER,
        "From": SENDER,
        "Body": text().body,
        "StatusCallback": STATUS_URL,
        "ValidityPeriod": "900",
    }
    [message] = standin.messages
    assert receipt.provider_id == message.sid and receipt.provider_id.startswith("SM")
    assert receipt.status == "queued"


def test_messaging_service_is_used_instead_of_the_sender_number(
    twilio: TwilioProvider, standin: TwilioStandIn
) -> None:
    receipt = twilio.send(text(messaging_service_sid=SERVICE_SID))

    [request] = standin.requests_to("messages")
    assert request.fields["MessagingServiceSid"] == SERVICE_SID
    assert "From" not in request.fields
    assert receipt.status == "accepted"  # a Messaging Service accepts first, then queues


def test_no_status_callback_is_left_out_of_the_request(
    twilio: TwilioProvider, standin: TwilioStandIn
) -> None:
    twilio.send(text(status_callback=None))
    [request] = standin.requests_to("messages")
    assert "StatusCallback" not in request.fields


# Errors


def test_every_mapped_code_is_tested() -> None:
    assert set(ERROR_RULES) == set(EXPECTED_BY_CODE)


@pytest.mark.parametrize(("code", "failure"), sorted(EXPECTED_BY_CODE.items()))
def test_twilio_error_code_maps_to_its_outcome(
    twilio: TwilioProvider, standin: TwilioStandIn, code: int, failure: SmsFailure | None
) -> None:
    standin.fail_next(code, status=429 if code == 20429 else 400)

    if failure is None:
        with pytest.raises(TransientProviderError) as transient:
            twilio.send(text())
        assert transient.value.code == str(code)
    else:
        with pytest.raises(PermanentProviderError) as permanent:
            twilio.send(text())
        assert permanent.value.failure == failure and permanent.value.code == str(code)
    assert standin.messages == []


def test_number_rule_applies_to_every_send_to_that_number(
    twilio: TwilioProvider, standin: TwilioStandIn
) -> None:
    standin.set_error_for(CALLER, 21614)
    for _ in range(2):
        with pytest.raises(PermanentProviderError) as raised:
            twilio.send(text())
        assert raised.value.failure == SmsFailure.NUMBER_UNUSABLE
    twilio.send(text(to="+17035550199"))
    assert [message.to for message in standin.messages] == ["+17035550199"]


@pytest.mark.parametrize(("status", "code"), [(429, 20429), (500, 20500), (503, 20503)])
def test_throttling_and_server_errors_are_transient(
    twilio: TwilioProvider, standin: TwilioStandIn, status: int, code: int
) -> None:
    standin.fail_next(code, status=status)
    with pytest.raises(TransientProviderError):
        twilio.send(text())


@pytest.mark.parametrize(
    ("status", "code", "outcome"),
    [
        (429, None, "retry"),
        (503, None, "retry"),
        (401, 20003, "retry"),
        (400, None, "failed"),
        (400, 99999, "failed"),
        (500, 21610, "opted_out"),  # a known code wins over the status
    ],
)
def test_classify_falls_back_to_the_http_status(
    status: int, code: int | None, outcome: str
) -> None:
    assert classify(status, code).outcome == outcome


def test_unknown_code_fails_this_text_and_logs_the_code(
    twilio: TwilioProvider, standin: TwilioStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    standin.fail_next(30999, status=400, message="Something new")
    with (
        caplog.at_level(logging.WARNING, logger="activities.sms_providers.twilio"),
        pytest.raises(PermanentProviderError) as raised,
    ):
        twilio.send(text())

    assert raised.value.failure == SmsFailure.REJECTED and raised.value.code == "30999"
    assert "Something new" in raised.value.message
    assert [getattr(record, "twilio_code", None) for record in caplog.records] == ["30999"]


def test_wrong_credentials_are_a_clear_retryable_error(standin: TwilioStandIn) -> None:
    provider = provider_for(standin, auth_token="not-the-token")
    with pytest.raises(TwilioAuthenticationError) as raised:
        provider.send(text())

    assert isinstance(raised.value, TransientProviderError)  # nothing sent: retry
    assert raised.value.code == "20003"
    assert "CALLERLOOP_TWILIO_AUTH_TOKEN" in raised.value.message
    assert standin.messages == []


def test_connection_refused_is_transient(standin: TwilioStandIn) -> None:
    provider = provider_for(standin, api_base_url=f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(TransientProviderError) as raised:
        provider.send(text())
    assert raised.value.code == "connection"


def test_timeout_after_twilio_took_the_text_leaves_the_outcome_unknown(
    standin: TwilioStandIn,
) -> None:
    provider = provider_for(standin, timeout=0.3)
    standin.stall_next(1.0)
    with pytest.raises(requests.ReadTimeout):  # neither permanent nor transient
        provider.send(text())
    assert len(standin.messages) == 1  # Twilio did take it: a resend would text twice


# Line type lookup


@pytest.mark.parametrize(
    ("twilio_type", "line_type"),
    [
        ("mobile", LineType.MOBILE),
        ("landline", LineType.LANDLINE),
        ("fixedVoip", LineType.VOIP),
        ("nonFixedVoip", LineType.VOIP),
        ("tollFree", LineType.UNKNOWN),
        ("unknown", LineType.UNKNOWN),
        (None, LineType.UNKNOWN),
    ],
)
def test_line_type_lookup(
    twilio: TwilioProvider,
    standin: TwilioStandIn,
    twilio_type: str | None,
    line_type: LineType,
) -> None:
    standin.set_line_type(CALLER, twilio_type)
    assert twilio.lookup_line_type(CALLER) == line_type
    [request] = standin.requests_to("lookups")
    assert request.path == f"/v2/PhoneNumbers/{CALLER}"
    assert request.fields == {"Fields": "line_type_intelligence"}


def test_lookup_of_an_unknown_number_defaults_to_mobile(twilio: TwilioProvider) -> None:
    assert twilio.lookup_line_type("+17035550123") == LineType.MOBILE


@pytest.mark.parametrize(("status", "code"), [(429, 20429), (503, 20503)])
def test_lookup_throttled_or_down_is_transient(
    twilio: TwilioProvider, standin: TwilioStandIn, status: int, code: int
) -> None:
    standin.fail_next(code, status=status, endpoint="lookups")
    with pytest.raises(TransientProviderError):
        twilio.lookup_line_type(CALLER)


def test_lookup_error_about_the_number_answers_unknown(
    twilio: TwilioProvider, standin: TwilioStandIn
) -> None:
    standin.fail_next(20404, status=404, endpoint="lookups")
    assert twilio.lookup_line_type("+1555") == LineType.UNKNOWN


def test_lookup_without_a_connection_is_transient(standin: TwilioStandIn) -> None:
    provider = provider_for(standin, lookups_base_url=f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(TransientProviderError):
        provider.lookup_line_type(CALLER)


# Wiring


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json",
            "http://127.0.0.1:9001/2010-04-01/Accounts/AC1/Messages.json",
        ),
        (
            "https://api.ashburn.us1.twilio.com/2010-04-01/Accounts.json",
            "http://127.0.0.1:9001/2010-04-01/Accounts.json",
        ),
        (
            "https://lookups.twilio.com/v2/PhoneNumbers/+17035550142?Fields=x",
            "http://lookups.test/prefix/v2/PhoneNumbers/+17035550142?Fields=x",
        ),
        ("https://verify.twilio.com/v2/Services", "https://verify.twilio.com/v2/Services"),
    ],
)
def test_redirecting_client_rewrites_only_scheme_and_host(url: str, expected: str) -> None:
    client = RedirectingHttpClient(
        {"api": "http://127.0.0.1:9001", "lookups": "http://lookups.test/prefix/"}, timeout=5
    )
    assert client.redirect(url) == expected


def test_provider_from_settings_names_what_is_missing() -> None:
    with pytest.raises(ValueError, match="CALLERLOOP_TWILIO_ACCOUNT_SID and CALLERLOOP_TWILIO"):
        twilio_provider_from_settings(Settings(twilio_account_sid=""))
    with pytest.raises(ValueError, match="AC and 32 hex digits"):
        twilio_provider_from_settings(
            Settings(twilio_account_sid="SK123", twilio_auth_token=SecretStr("token"))
        )


def test_provider_from_settings_talks_to_the_configured_base_urls(
    standin: TwilioStandIn,
) -> None:
    settings = Settings(
        twilio_account_sid=standin.account_sid,
        twilio_auth_token=SecretStr(standin.auth_token),
        twilio_api_base_url=standin.base_url,
        twilio_lookups_base_url=standin.base_url,
    )
    provider = twilio_provider_from_settings(settings)
    assert provider.send(text()).provider_id == standin.messages[0].sid


# Status callbacks from the stand-in


class WebhookReceiver:
    """A tiny HTTP server that records the callbacks posted to it."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, str], str]] = []  # path, form, signature
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                form = dict(parse_qsl(self.rfile.read(length).decode()))
                receiver.posts.append((self.path, form, self.headers["X-Twilio-Signature"]))
                receiver.arrived.set()
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        serve = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        serve.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/twilio/status"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


def test_auto_callbacks_post_sent_then_delivered_signed(webhook: WebhookReceiver) -> None:
    with TwilioStandIn(auto_callbacks=True, callback_delay=0.01) as standin:
        receipt = provider_for(standin).send(text(status_callback=webhook.url))
    # stop() waited for the callback threads

    assert [form["MessageStatus"] for _, form, _ in webhook.posts] == ["sent", "delivered"]
    validator = RequestValidator(standin.auth_token)
    for path, form, signature in webhook.posts:
        assert path == "/twilio/status"
        assert form["MessageSid"] == receipt.provider_id and form["To"] == CALLER
        assert validator.validate(webhook.url, form, signature)
    assert [result.http_status for result in standin.callbacks] == [204, 204]
    assert standin.message(receipt.provider_id).status == "delivered"


def test_status_callback_carries_the_error_code(
    twilio: TwilioProvider, standin: TwilioStandIn, webhook: WebhookReceiver
) -> None:
    receipt = twilio.send(text(status_callback=webhook.url))
    assert standin.send_status_callback(receipt.provider_id, "undelivered", 30006) == 204
    [(_, form, _)] = webhook.posts
    assert form["MessageStatus"] == "undelivered" and form["ErrorCode"] == "30006"


# Through the send activity


def test_send_activity_retries_a_429_without_a_double_send(
    database: Database, standin: TwilioStandIn, twilio: TwilioProvider
) -> None:
    agency = make_agency()
    activities = TextActivities(database, {agency.id: agency}, twilio, "https://callerloop.test")
    send = SendTextInput(
        workflow_id="call/testville/T-1",
        agency="testville",
        incident_id="T-1",
        case_number="25-071089",
        kind=TextKind.CONFIRMATION,
        language="en",
        to=CALLER,
    )
    env = ActivityEnvironment()
    standin.fail_next(20429, status=429)

    with pytest.raises(TransientProviderError):
        env.run(activities.send_text, send)  # Temporal would retry this attempt
    sent = env.run(activities.send_text, send)
    again = env.run(activities.send_text, send)  # a late duplicate attempt

    assert [request.status for request in standin.requests_to("messages")] == [429, 201]
    [message] = standin.messages
    assert sent.provider_id == message.sid and not sent.already_sent
    assert again.already_sent and again.provider_id == message.sid
    with database.session() as session:
        [row] = session.exec(select(OutboxMessage)).all()
    assert row.status == "queued" and row.provider_id == message.sid and row.attempts == 2


def test_standin_answers_a_message_fetch_with_its_latest_status(
    twilio: TwilioProvider, standin: TwilioStandIn, webhook: WebhookReceiver
) -> None:
    receipt = twilio.send(text(status_callback=webhook.url))
    standin.send_status_callback(receipt.provider_id, "delivered")
    client = Client(
        standin.account_sid,
        standin.auth_token,
        http_client=RedirectingHttpClient({"api": standin.base_url}, timeout=5),
    )
    assert client.messages(receipt.provider_id).fetch().status == "delivered"


def test_standin_can_stop_without_having_started() -> None:
    TwilioStandIn().stop()


def test_an_outage_refuses_every_send_for_a_while_then_lifts(
    standin: TwilioStandIn, twilio: TwilioProvider
) -> None:
    standin.fail_for(0.5, 20429, 429, at_least=2)
    for _ in range(2):  # at least two refused, however long the requests take
        with pytest.raises(TransientProviderError):
            twilio.send(text())
    time.sleep(0.6)
    assert twilio.send(text()).provider_id.startswith("SM")
    assert [r.status for r in standin.requests_to("messages")] == [429, 429, 201]


def test_dropped_status_callbacks_are_never_posted(standin: TwilioStandIn) -> None:
    """As when the web app is down and Twilio gives up on the webhook."""
    receipt = provider_for(standin).send(text())
    standin.drop_next_callbacks(1)
    assert standin.send_status_callback(receipt.provider_id, "delivered") is None
    assert standin.callbacks_dropped == 1 and standin.callbacks[-1].error == "dropped"
    assert standin.message(receipt.provider_id).status == "delivered"


# Personal data in Twilio's errors

TWILIO_21211 = f"The 'To' number {CALLER} is not a valid phone number."
# How a number may be quoted back: E.164, national, digits only, URL-encoded.
SPELLINGS = (CALLER, "(703) 555-0142", "703-555-0142", "7035550142", "%2B17035550142")


@pytest.mark.parametrize(
    ("code", "status", "message"),
    [
        (21211, 400, TWILIO_21211),
        (21614, 400, "703-555-0142 is not a mobile number"),
        (20429, 429, "Too many requests to (703) 555-0142"),
    ],
)
def test_twilio_errors_quoting_the_number_are_masked_before_anything_keeps_them(
    twilio: TwilioProvider, standin: TwilioStandIn, code: int, status: int, message: str
) -> None:
    """The error goes into Temporal's failure, the logs and the outbox row."""
    standin.fail_next(code, status=status, message=message)
    with pytest.raises((PermanentProviderError, TransientProviderError)) as raised:
        twilio.send(text())
    error = raised.value
    assert isinstance(error, PermanentProviderError | TransientProviderError)
    assert "***42" in error.message
    for spelling in SPELLINGS:
        assert spelling not in str(error)
    # The client's own exception quotes the number: it does not travel along as the cause.
    assert error.__cause__ is None and error.__suppress_context__


def test_a_lookup_that_cannot_connect_does_not_quote_the_number(standin: TwilioStandIn) -> None:
    """requests quotes the URL, and a lookup's URL is the number (/v2/PhoneNumbers/+1…)."""
    provider = provider_for(standin, lookups_base_url=f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(TransientProviderError) as raised:
        provider.lookup_line_type(CALLER)
    assert "PhoneNumbers" in raised.value.message  # the URL is there, the number is not
    for spelling in SPELLINGS:
        assert spelling not in str(raised.value)
    assert raised.value.__cause__ is None


def test_the_outbox_keeps_twilios_refusal_with_the_number_masked(
    database: Database, standin: TwilioStandIn, twilio: TwilioProvider
) -> None:
    agency = make_agency()
    activities = TextActivities(database, {agency.id: agency}, twilio, "https://callerloop.test")
    send = SendTextInput(
        workflow_id="call/testville/T-1",
        agency="testville",
        incident_id="T-1",
        case_number="25-071089",
        kind=TextKind.CONFIRMATION,
        language="en",
        to=CALLER,
    )
    standin.fail_next(21211, status=400, message=TWILIO_21211)
    with pytest.raises(ApplicationError) as raised:
        ActivityEnvironment().run(activities.send_text, send)
    assert CALLER not in str(raised.value) and "***42" in str(raised.value)
    with database.session() as session:
        [row] = session.exec(select(OutboxMessage)).all()
    assert (row.status, row.error_code) == ("failed", "21211")
    assert row.error_message is not None
    assert row.error_message.endswith("The 'To' number ***42 is not a valid phone number.")
