"""The outbox protocol: a retried send never sends twice, whatever fails where."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy.pool import QueuePool
from sqlmodel import select
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.sms_providers.base import (
    OutgoingText,
    PermanentProviderError,
    TransientProviderError,
)
from activities.texts import OutcomeNotKnownYet, TextActivities
from callerloop.core.db import Database, LinkToken, OutboxMessage
from callerloop.messaging.links import hash_token
from tests.factories import RecordingProvider, hand_over_long_ago, make_agency
from workflows.activity_errors import PERMANENT_SMS_ERROR, SmsFailure
from workflows.model import SendTextInput, SendTextResult, TextKind


def send_input(kind: TextKind = TextKind.CONFIRMATION, language: str = "en") -> SendTextInput:
    return SendTextInput(
        workflow_id="call/testville/T-1",
        agency="testville",
        incident_id="T-1",
        case_number="25-071089",
        kind=kind,
        language=language,
        to="+17035550142",
    )


@pytest.fixture
def activities(database: Database, provider: RecordingProvider) -> TextActivities:
    agency = make_agency()
    return TextActivities(database, {agency.id: agency}, provider, "https://callerloop.test")


def outbox(database: Database) -> list[OutboxMessage]:
    with database.session() as session:
        return list(session.exec(select(OutboxMessage)))


def crash_after_handing_over(text: OutgoingText) -> None:
    """The provider took the text, then the worker died before recording the id."""
    raise ConnectionResetError("worker lost the connection mid-send")


def test_repeated_send_reaches_the_provider_once(
    activities: TextActivities, provider: RecordingProvider, database: Database
) -> None:
    env = ActivityEnvironment()
    first = env.run(activities.send_text, send_input())
    second = env.run(activities.send_text, send_input())
    assert provider.calls == 1
    assert not first.already_sent and second.already_sent
    assert second.provider_id == first.provider_id
    [row] = outbox(database)
    assert row.status == "queued" and row.provider_id == first.provider_id and row.attempts == 1


def test_outbox_row_is_written_before_the_provider_is_called(
    activities: TextActivities, provider: RecordingProvider, database: Database
) -> None:
    seen: list[str] = []

    def look_at_outbox(text: OutgoingText) -> None:
        [row] = outbox(database)
        seen.append(row.status)

    provider.failures.append(look_at_outbox)
    ActivityEnvironment().run(activities.send_text, send_input())
    assert seen == ["handing_over"]


def test_no_database_connection_is_held_while_the_provider_is_called(
    activities: TextActivities, provider: RecordingProvider, database: Database
) -> None:
    """A provider can take seconds to answer (and a paced send waits its turn): a send
    holding a pooled connection meanwhile would starve every other activity of them."""
    pool = database.engine.pool
    assert isinstance(pool, QueuePool)
    held: list[int] = []
    provider.failures.append(lambda text: held.append(pool.checkedout()))
    ActivityEnvironment().run(activities.send_text, send_input())
    assert held == [0]


def test_crash_mid_send_is_not_resent(
    activities: TextActivities, provider: RecordingProvider, database: Database
) -> None:
    provider.failures.append(crash_after_handing_over)
    env = ActivityEnvironment()
    with pytest.raises(ConnectionResetError):
        env.run(activities.send_text, send_input())
    with pytest.raises(OutcomeNotKnownYet):  # too soon: the attempt may still be at work
        env.run(activities.send_text, send_input())
    hand_over_long_ago(database)
    retried = env.run(activities.send_text, send_input())
    assert provider.calls == 1  # at most once: the retry does not call the provider
    assert retried.status == "unknown" and retried.already_sent
    [row] = outbox(database)
    assert row.status == "unknown"


def test_an_attempt_given_up_on_leaves_its_retry_mid_send_alone(
    activities: TextActivities, provider: RecordingProvider, database: Database
) -> None:
    """Temporal gave up on an attempt held up before it looked at the row, and retried: the
    old attempt finds the retry's hand-over in progress. Without provider records it must
    not settle the row `unknown` under the retry, which then sends and records the text."""
    stale_attempt: list[BaseException] = []

    def stale_attempt_looks_now(text: OutgoingText) -> None:
        try:
            ActivityEnvironment().run(activities.send_text, send_input())
        except BaseException as error:
            stale_attempt.append(error)
        [row] = outbox(database)
        assert row.status == "handing_over"

    provider.failures.append(stale_attempt_looks_now)
    sent = ActivityEnvironment().run(activities.send_text, send_input())
    assert len(stale_attempt) == 1 and isinstance(stale_attempt[0], OutcomeNotKnownYet)
    assert provider.calls == 1 and not sent.already_sent
    [row] = outbox(database)
    assert row.status == "queued" and row.provider_id == sent.provider_id


def test_transient_error_is_retried_and_sent_once(
    activities: TextActivities, provider: RecordingProvider, database: Database
) -> None:
    def throttled(text: OutgoingText) -> None:
        raise TransientProviderError("20429", "Too Many Requests")

    provider.failures.append(throttled)
    env = ActivityEnvironment()
    with pytest.raises(TransientProviderError):
        env.run(activities.send_text, send_input())
    assert outbox(database)[0].status == "pending"
    result = env.run(activities.send_text, send_input())
    assert result.status == "queued" and len(provider.accepted) == 1
    [row] = outbox(database)
    assert row.attempts == 2


def test_permanent_error_is_not_retryable_and_names_the_failure(
    activities: TextActivities, provider: RecordingProvider, database: Database
) -> None:
    def opted_out(text: OutgoingText) -> None:
        raise PermanentProviderError(SmsFailure.OPTED_OUT, "21610", "unsubscribed recipient")

    provider.failures.append(opted_out)
    with pytest.raises(ApplicationError) as raised:
        ActivityEnvironment().run(activities.send_text, send_input())
    assert raised.value.type == PERMANENT_SMS_ERROR and raised.value.non_retryable
    assert raised.value.details == ("opted_out",)
    [row] = outbox(database)
    assert row.status == "failed" and row.error_code == "21610"


def test_accented_spanish_is_counted_as_ucs2(
    database: Database, provider: RecordingProvider
) -> None:
    accented = make_agency(
        templates={"es": {"confirmation": "Caso {case_number}: recibimos su llamada. Está en "
                          "camino la atención policial; la información está en {status_url} "
                          "Responda STOP para no recibir más mensajes."}}
    )  # fmt: skip
    activities = TextActivities(database, {accented.id: accented}, provider, "https://x.test")
    ActivityEnvironment().run(activities.send_text, send_input(language="es"))
    [row] = outbox(database)
    assert row.body is not None
    assert row.encoding == "UCS-2"  # á, ó and ú are not in GSM-7
    assert row.segments == 3 == -(-len(row.body) // 67)


def test_rendered_text_counts_segments_and_stores_only_the_link_hash(
    activities: TextActivities, provider: RecordingProvider, database: Database
) -> None:
    ActivityEnvironment().run(activities.send_text, send_input(language="es"))
    [row] = outbox(database)
    assert row.body is not None and "25-071089" in row.body and "STOP" in row.body
    assert row.encoding == "GSM-7"  # the shipped Spanish is worded around á í ó ú
    assert row.segments == 1
    token = row.body.split("/s/")[1].split()[0]
    with database.session() as session:
        [link] = session.exec(select(LinkToken)).all()
    assert link.token_hash == hash_token(token) and token not in link.token_hash
    assert len(token) >= 22  # 128 bits in URL-safe base64


def test_an_attempt_given_up_on_while_waiting_its_turn_does_not_send(
    activities: TextActivities, provider: RecordingProvider, database: Database
) -> None:
    """Temporal retries an attempt that outlived its start-to-close timeout, but the old
    attempt's thread goes on: if it was waiting for its pacing turn, it must not send after
    the retry did."""
    entered, release = threading.Event(), threading.Event()
    first = True

    class GatedPacer:
        def wait_turn(self) -> None:
            nonlocal first
            if first:
                first = False
                entered.set()
                release.wait(10)

        def space_requests(self) -> None:
            pass

    activities._pacers["testville"] = GatedPacer()  # type: ignore[assignment]
    results: list[SendTextResult] = []
    old = threading.Thread(
        target=lambda: results.append(ActivityEnvironment().run(activities.send_text, send_input()))
    )
    old.start()
    assert entered.wait(10)
    retried = ActivityEnvironment().run(activities.send_text, send_input())
    release.set()
    old.join(10)
    assert provider.calls == 1 and not retried.already_sent
    assert results[0].already_sent
    [row] = outbox(database)
    assert row.status == "queued" and row.attempts == 1
