"""The runner production workers use is the one every test uses, and it is the sandbox:
a non-deterministic call in any module a workflow imports fails the run, in production
as in the tests, instead of passing every test and diverging on replay."""

from __future__ import annotations

import uuid

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from tests.workflows.clock_reading_workflow import ClockReadingWorkflow
from worker import workflow_runner


def test_the_production_runner_is_the_sandbox_and_shares_only_the_data_contract() -> None:
    runner = workflow_runner()
    assert isinstance(runner, SandboxedWorkflowRunner)
    passed = runner.restrictions.passthrough_modules
    # Only the data contract (dataclasses) is shared: the workflow's logic is re-imported
    # in every run's sandbox, where a clock read or other non-determinism fails the run.
    shared = {name for name in passed if name == "workflows" or name.startswith("workflows.")}
    assert shared == {"workflows.model"}


async def test_a_clock_read_in_a_module_the_workflow_imports_fails_the_run(
    env: WorkflowEnvironment,
) -> None:
    task_queue = f"sandbox-{uuid.uuid4()}"
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[ClockReadingWorkflow],
        workflow_runner=workflow_runner(),  # what `callerloop worker` runs
    ):
        with pytest.raises(WorkflowFailureError) as failed:
            await env.client.execute_workflow(
                ClockReadingWorkflow.run, id=f"clock-{uuid.uuid4()}", task_queue=task_queue
            )
    assert "datetime.datetime.now" in str(failed.value.cause)
