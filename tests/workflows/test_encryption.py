"""Payload encryption end to end: Temporal's own history holds no caller's number in clear,
and keys rotate under calls in flight."""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from pydantic import SecretStr
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from callerloop.cad.client import CadClient
from callerloop.core.codec import EncryptionKeyError, codec_from_spec, data_converter, new_key_spec
from callerloop.core.db import Database
from callerloop.core.settings import Settings
from tests.factories import RecordingProvider, cad_event, eligible_call, make_agency
from tests.harness import Harness
from worker import all_running, build_workers
from workflows.call_for_service import CallForServiceWorkflow, workflow_id_for
from workflows.model import CadEventType, CallOutcome, CallState, TextKind

CALLER = "+17035550142"
ROTATION_TIME_SCALE = 20_000.0  # the 24-hour survey comes 4 s after the close


async def raw_history(client: Client, workflow_id: str) -> bytes:
    """The history exactly as the server stores it, not decoded by any client."""
    response = await client.workflow_service.get_workflow_execution_history(
        GetWorkflowExecutionHistoryRequest(
            namespace=client.namespace, execution=WorkflowExecution(workflow_id=workflow_id)
        )
    )
    return response.history.SerializeToString()


async def test_temporal_history_holds_no_phone_number_or_call_type_in_clear(
    harness: Harness,
) -> None:
    incident = f"ENC-{uuid.uuid4().hex[:6]}"
    state = await harness.send(eligible_call(incident, caller_language="es"))
    assert state.caller_phone == CALLER  # the worker and client decrypt as usual
    assert harness.kinds(incident) == ["confirmation"]

    history = await raw_history(harness.env.client, workflow_id_for("testville", incident))
    assert b"binary/encrypted" in history
    for secret in (CALLER, CALLER.removeprefix("+1"), "NOISE COMPLAINT", "C" + incident):
        assert secret.encode() not in history, f"{secret} in clear in Temporal's history"


def client_with_keys(env: WorkflowEnvironment, keys: str) -> Client:
    """The environment's client with another codec."""
    config = env.client.config()
    config["data_converter"] = data_converter(codec_from_spec(keys))
    return Client(**config)


async def test_calls_started_under_the_old_key_finish_after_rotation(
    dev_server: WorkflowEnvironment, database: Database
) -> None:
    """Key A encrypts the start of a call; the worker then restarts with key B primary and
    A kept to decrypt, and the call runs to its end (survey and purge included). On the
    dev server, which moves a call off a stopped worker as a real cluster does."""
    env = dev_server
    key_a, key_b = new_key_spec("2026-a"), new_key_spec("2026-b")
    settings = Settings(
        task_queue=f"rotation-{uuid.uuid4()}",
        database_url=database.url,
        public_base_url="https://callerloop.test",
        encryption_keys=SecretStr(key_a),
        time_scale=ROTATION_TIME_SCALE,
    )
    agency = make_agency(timing={"survey_window": "PT2H"})
    agencies = {agency.id: agency}
    provider = RecordingProvider()
    incident = f"ROT-{uuid.uuid4().hex[:6]}"
    workflow_id = workflow_id_for(agency.id, incident)

    before = client_with_keys(env, key_a)
    with ThreadPoolExecutor(4) as executor:
        async with all_running(
            build_workers(before, settings, database, agencies, provider, executor, 4)
        ):
            handle = (
                await CadClient(before, settings.task_queue).send(eligible_call(incident))
            ).handle
            await settled(handle, texts=1)

    after = client_with_keys(env, f"{key_b},{key_a}")
    with ThreadPoolExecutor(4) as executor:
        async with all_running(
            build_workers(after, settings, database, agencies, provider, executor, 4)
        ):
            cad = CadClient(after, settings.task_queue)
            assigned = await cad.send(cad_event(incident, CadEventType.ASSIGNED, minutes=5))
            await settled(assigned.handle, texts=2)
            delivered = await cad.send(cad_event(incident, CadEventType.CLEARED, minutes=40))
            outcome = await delivered.handle.result()

    assert outcome.texts == [
        TextKind.CONFIRMATION, TextKind.ASSIGNED, TextKind.CLEARED, TextKind.SURVEY,
    ]  # fmt: skip
    assert len(provider.accepted) == 4
    history = await raw_history(env.client, workflow_id)
    assert b"2026-a" in history and b"2026-b" in history  # both keys' payloads are there
    # Without key A, the call's start (encrypted under A) is unreadable.
    events = (await env.client.get_workflow_handle(workflow_id).fetch_history()).events
    started = events[0].workflow_execution_started_event_attributes
    only_b = client_with_keys(env, key_b)
    with pytest.raises(EncryptionKeyError, match="2026-a"):
        await only_b.data_converter.decode(started.input.payloads)
    assert await after.data_converter.decode(started.input.payloads)


async def settled(
    handle: WorkflowHandle[CallForServiceWorkflow, CallOutcome], texts: int
) -> CallState:
    """The call's state once it has sent `texts` texts and has nothing in flight."""
    for _ in range(500):
        state = await handle.query(CallForServiceWorkflow.state)
        if state.idle and len(state.texts) >= texts:
            return state
        await asyncio.sleep(0.02)
    raise AssertionError(f"never settled with {texts} texts: {state}")
