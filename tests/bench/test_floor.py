"""The floor's worker runs what the bench's (encrypting) client starts: with its own
converter it could not read one payload, and every floor step went missing. Its texts run
on a queue of their own, as callerloop's do on their sender's."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

from temporalio.common import WorkflowIDConflictPolicy
from temporalio.testing import WorkflowEnvironment

from bench.floor import read_steps
from bench.floor_workflow import FloorInput, FloorWorkflow, text_task_queue
from callerloop.core.settings import PROJECT_ROOT
from tests.conftest import TEST_ENCRYPTION_KEYS


async def test_the_floor_worker_runs_workflows_the_encrypting_client_starts(
    dev_server: WorkflowEnvironment, tmp_path: Path
) -> None:
    task_queue, log = f"floor-{uuid.uuid4()}", tmp_path / "steps.log"
    address = dev_server.client.service_client.config.target_host
    env = {**os.environ, "CALLERLOOP_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEYS}
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.floor",
        address,
        task_queue,
        str(log),
        "1000",
        cwd=PROJECT_ROOT,
        env=env,
    )
    try:
        handle = await dev_server.client.start_workflow(
            FloorWorkflow.run,
            FloorInput(events=2, survey_delay_seconds=0.1),
            id=f"floor/{uuid.uuid4()}",
            task_queue=task_queue,
            start_signal="cad_event",
            start_signal_args=["created"],
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        await handle.signal("cad_event", "cleared")
        await asyncio.wait_for(handle.result(), timeout=60)
        history = await handle.fetch_history()
    finally:
        worker.terminate()
        await asyncio.wait_for(worker.wait(), timeout=10)
    assert [name for _, name, _ in read_steps(log)] == ["created", "cleared", "survey", "purge"]
    texts_queues = [
        event.activity_task_scheduled_event_attributes.task_queue.name
        for event in history.events
        if event.HasField("activity_task_scheduled_event_attributes")
    ]
    assert texts_queues == [text_task_queue(task_queue)] * 3
