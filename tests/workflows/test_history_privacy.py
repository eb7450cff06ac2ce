"""Nothing personal in clear anywhere in Temporal: calls driven through the real worker
into provider errors that quote the number (as Twilio's do), a send cut off mid-request
by an exception quoting it, retries and a permanent refusal, then every byte the server
keeps for them (history with its failures and stack traces, memo, search attributes,
the description of the execution) is searched for the number in every spelling, the call
type and the case number. Only the search attributes meant to be plain (Agency,
IncidentId, CallStatus, CallPriority, TextingState) may be read there."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.failure.v1 import Failure
from temporalio.api.workflowservice.v1 import (
    DescribeWorkflowExecutionRequest,
    GetWorkflowExecutionHistoryRequest,
)
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities import texts
from activities.sms_providers.base import (
    OutgoingText,
    PermanentProviderError,
    TransientProviderError,
)
from callerloop.core.db import Database
from tests.conftest import start_harness
from tests.factories import RecordingProvider, cad_event, eligible_call, make_agency
from tests.harness import Harness
from workflows.activity_errors import SmsFailure
from workflows.call_for_service import workflow_id_for
from workflows.model import CadEventType

PHONE = "+17035550142"
# Every spelling a provider, a library or a person may quote the number in.
PHONE_SPELLINGS = (
    PHONE,
    "17035550142",
    "7035550142",
    "703-555-0142",
    "(703) 555-0142",
    "(703)555-0142",
    "703.555.0142",
    "703 555 0142",
    "%2B17035550142",
    "555-0142",
    "5550142",
)
CALL_TYPE = "NOISE COMPLAINT DELAY"


def throttled(text: OutgoingText) -> None:
    raise TransientProviderError("20429", f"Too many requests for {text.to}; retry later")


def cut_off_mid_send(text: OutgoingText) -> None:
    """The worker's connection died after the request left: the outcome is unknown, and
    the exception is nothing callerloop wrote (a library's, quoting what it sent)."""
    raise ConnectionResetError(f"reset while POSTing To={text.to} ((703) 555-0142) to Twilio")


def invalid_number(text: OutgoingText) -> None:
    """Twilio's own text for 21211."""
    raise PermanentProviderError(
        SmsFailure.NUMBER_UNUSABLE,
        "21211",
        f"The 'To' number {text.to} is not a valid phone number.",
    )


async def stored_bytes(client: Client, workflow_id: str) -> bytes:
    """Everything the server keeps for the call, as it keeps it: no codec decodes it."""
    execution = WorkflowExecution(workflow_id=workflow_id)
    history = await client.workflow_service.get_workflow_execution_history(
        GetWorkflowExecutionHistoryRequest(namespace=client.namespace, execution=execution)
    )
    described = await client.workflow_service.describe_workflow_execution(
        DescribeWorkflowExecutionRequest(namespace=client.namespace, execution=execution)
    )
    return history.history.SerializeToString() + described.SerializeToString()


async def failure_messages(client: Client, handle: WorkflowHandle[Any, Any]) -> list[str]:
    """The failures in the call's history, decrypted with the client's keys: what an
    operator with the keys (the codec server) reads, down every cause."""
    messages = []
    for event in (await handle.fetch_history()).events:
        for failure in (
            event.activity_task_started_event_attributes.last_failure,
            event.activity_task_failed_event_attributes.failure,
        ):
            if failure.ByteSize():
                error: BaseException | None = await client.data_converter.decode_failure(
                    Failure.FromString(failure.SerializeToString())
                )
                while error is not None:
                    messages.append(str(error))
                    error = error.__cause__
    return messages


@pytest.fixture
def quick_unknown_outcome(monkeypatch: pytest.MonkeyPatch) -> None:
    # A cut-off send is settled `unknown` once it can no longer be in flight (wall clock):
    # 15 s in production; 0 takes the same path on the first retry, so the cut-off's own
    # failure is the one its next attempt records in history.
    monkeypatch.setattr(texts, "IN_FLIGHT_WITHOUT_RECORDS_SECONDS", 0.0)


@pytest.fixture
async def dev_harness(
    dev_server: WorkflowEnvironment, database: Database, provider: RecordingProvider
) -> AsyncIterator[Harness]:
    """On the real dev server, which records a retried activity's last failure in its
    history as a cluster does (the time-skipping server does not). A minute of policy time
    per second: the survey a second after the close, its window a second."""
    agency = make_agency(
        timing={
            "survey_delay": "PT1M",
            "survey_window": "PT1M",
            "delay_thresholds": {"3": "P1D", "4": "P1D"},
        }
    )
    async for running in start_harness(
        dev_server, database, {agency.id: agency}, provider, time_scale=60
    ):
        yield running


@pytest.mark.usefixtures("quick_unknown_outcome")
async def test_history_of_calls_through_provider_errors_and_crashes_holds_nothing_personal(
    dev_harness: Harness, provider: RecordingProvider
) -> None:
    harness = dev_harness
    run = uuid.uuid4().hex[:6]
    retried, refused = f"PII-{run}-1", f"PII-{run}-2"
    # Case numbers unlike the incident ids, which are plain search attributes on purpose.
    cases = {retried: f"CN{run}77", refused: f"CN{run}88"}

    # Throttled with the number in the message, then sent on the retry; the next text cut
    # off mid-request by an exception quoting the number, settled `unknown`, never resent.
    provider.failures.append(throttled)
    await harness.send(eligible_call(retried, case_number=cases[retried], call_type=CALL_TYPE))
    provider.failures.append(cut_off_mid_send)
    await harness.send(cad_event(retried, CadEventType.ASSIGNED, minutes=5))
    # Refused for good with Twilio's 21211 text.
    provider.failures.append(invalid_number)
    state = await harness.send(
        eligible_call(refused, case_number=cases[refused], call_type=CALL_TYPE)
    )
    assert state.decision is not None and state.decision.reason == "phone_unusable"
    [refused_row] = harness.outbox(refused)
    assert refused_row.error_message == "The 'To' number ***42 is not a valid phone number."
    assert provider.calls == 4 and len(provider.accepted) == 1

    for incident in (retried, refused):
        await harness.send(cad_event(incident, CadEventType.CLEARED, minutes=30))
    # Survey, purge, done.
    await asyncio.gather(*(harness.handles[incident].result() for incident in (retried, refused)))

    # The failures are there, readable with the keys: the provider's own text masked, the
    # cut-off exception as the library raised it (encrypted, like every payload).
    client = harness.env.client
    read = await failure_messages(client, harness.handles[retried])
    assert any("Too many requests for ***42" in message for message in read), read
    assert any(f"reset while POSTing To={PHONE}" in message for message in read), read
    read = await failure_messages(client, harness.handles[refused])
    assert any("The 'To' number ***42 is not a valid" in message for message in read), read

    for incident in (retried, refused):
        stored = await stored_bytes(client, workflow_id_for("testville", incident))
        assert b"binary/encrypted" in stored and b"Encoded failure" in stored
        for secret in (*PHONE_SPELLINGS, CALL_TYPE, "NOISE COMPLAINT", cases[incident]):
            assert secret.encode() not in stored, f"{secret!r} in clear in {incident}'s history"
        assert incident.encode() in stored  # IncidentId: plain, as meant (the UI searches it)

    # The purge takes the provider's error text with the number and the body.
    assert [row.error_message for row in harness.outbox(refused)] == [None]
