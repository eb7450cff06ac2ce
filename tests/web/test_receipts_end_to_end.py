"""A text sent with the real twilio client to the local Twilio stand-in, whose signed
delivery receipts reach the web app over HTTP and move the outbox row forward."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from pydantic import SecretStr
from sqlmodel import select
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from activities.sms_providers.base import OutgoingText, ProviderReceipt
from activities.sms_providers.twilio import TwilioProvider
from activities.texts import TextActivities
from callerloop.core.db import Database, OutboxMessage
from callerloop.core.settings import Settings
from callerloop.messaging.delivery_status import apply_delivery_status
from devtools.twilio_standin import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, TwilioStandIn
from tests.activities.test_send_text import send_input
from tests.factories import make_agency
from tests.web.serving import free_port, serving
from web.app import create_app
from workflows.model import LineType


@pytest.fixture
def web_url(database: Database) -> Iterator[str]:
    """The web app on a real port, as Twilio would reach it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = Settings(public_base_url=url, twilio_auth_token=SecretStr(DEFAULT_AUTH_TOKEN))
    agency = make_agency()

    async def no_temporal() -> Client:
        raise AssertionError("receipts never signal a workflow")

    app = create_app(settings, database, {agency.id: agency}, no_temporal)
    with serving(app, port) as served:
        yield served


def outbox_status(database: Database) -> str:
    with database.session() as session:
        return session.exec(select(OutboxMessage)).one().status


def test_send_and_its_receipts(database: Database, web_url: str) -> None:
    with TwilioStandIn(auto_callbacks=True, callback_delay=0.05) as standin:
        provider = TwilioProvider(
            DEFAULT_ACCOUNT_SID,
            DEFAULT_AUTH_TOKEN,
            api_base_url=standin.base_url,
            lookups_base_url=standin.base_url,
        )
        agency = make_agency()
        activities = TextActivities(database, {agency.id: agency}, provider, web_url)
        result = ActivityEnvironment().run(activities.send_text, send_input())
        [message] = standin.messages
        assert result.provider_id == message.sid
        assert message.status_callback is not None
        assert message.status_callback.startswith(f"{web_url}/twilio/status?outbox=")
        deadline = time.monotonic() + 10
        while outbox_status(database) != "delivered" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert outbox_status(database) == "delivered"
        assert [(c.status, c.http_status) for c in standin.callbacks] == [
            ("sent", 204),
            ("delivered", 204),
        ]


def test_receipt_that_overtakes_the_send_finds_its_row_by_outbox_id(
    database: Database,
) -> None:
    agency = make_agency()

    class FastCarrier:
        """Twilio answers the send slower than its own delivery receipt arrives."""

        name = "overtaken"

        def send(self, text: OutgoingText) -> ProviderReceipt:
            with database.session() as session:
                row = session.exec(select(OutboxMessage)).one()
            assert row.id is not None
            assert apply_delivery_status(database, "SM" + "1" * 32, "delivered", None, row.id)
            return ProviderReceipt(provider_id="SM" + "1" * 32, status="queued")

        def lookup_line_type(self, phone: str) -> LineType:
            raise NotImplementedError

    activities = TextActivities(database, {agency.id: agency}, FastCarrier(), "https://x.test")
    ActivityEnvironment().run(activities.send_text, send_input())
    with database.session() as session:
        row = session.exec(select(OutboxMessage)).one()
    assert row.status == "delivered"  # the late "queued" answer did not roll it back
    assert row.provider_id == "SM" + "1" * 32


def test_a_failure_receipt_that_overtakes_the_send_keeps_its_error_code(
    database: Database,
) -> None:
    """The carrier's answer (30003: unreachable) is what staff read in the outbox; the
    send recording the provider's late `queued` must not wipe it."""
    agency = make_agency()
    sid = "SM" + "2" * 32

    class UnreachablePhone:
        name = "overtaken"

        def send(self, text: OutgoingText) -> ProviderReceipt:
            with database.session() as session:
                row = session.exec(select(OutboxMessage)).one()
            assert apply_delivery_status(database, sid, "undelivered", "30003", row.id)
            return ProviderReceipt(provider_id=sid, status="queued")

        def lookup_line_type(self, phone: str) -> LineType:
            raise NotImplementedError

    activities = TextActivities(database, {agency.id: agency}, UnreachablePhone(), "https://x.test")
    result = ActivityEnvironment().run(activities.send_text, send_input())
    with database.session() as session:
        row = session.exec(select(OutboxMessage)).one()
    assert (row.status, row.error_code, row.provider_id) == ("undelivered", "30003", sid)
    assert result.status == "undelivered"
