"""The runner production workers use is the one every test uses, and it is the sandbox:
a non-deterministic call in any module a workflow imports fails the run, in production
as in the tests, instead of passing every test and diverging on replay."""

from __future__ import annotations

import importlib
import sys
import uuid
from pathlib import Path
from types import ModuleType

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from callerloop.core.workflow_code import SharedWorkflowCode
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


def test_reimported_workflow_modules_share_compiled_code_but_never_module_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sandbox re-imports workflow modules per run: each import is its own (a value
    one run sets is not seen by the next), but
    the bytecode is read once per worker: runs after the file changed on disk still run
    the code the worker started with."""
    package = tmp_path / "pinnedpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "logic.py").write_text("STATE: list[int] = []\n\ndef answer():\n    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    finder = SharedWorkflowCode(["pinnedpkg"])
    monkeypatch.setattr(sys, "meta_path", [finder, *sys.meta_path])

    def fresh_import() -> ModuleType:
        for name in [n for n in sys.modules if n.split(".")[0] == "pinnedpkg"]:
            monkeypatch.delitem(sys.modules, name)
        return importlib.import_module("pinnedpkg.logic")

    first = fresh_import()
    first.STATE.append(1)
    (package / "logic.py").write_text("STATE: list[int] = []\n\ndef answer():\n    return 1 + 1\n")
    second = fresh_import()

    assert second is not first and second.STATE == []
    assert second.answer.__code__ is first.answer.__code__
    assert second.answer() == 1


def test_the_production_runner_shares_workflow_code() -> None:
    workflow_runner()
    finders = [f for f in sys.meta_path if isinstance(f, SharedWorkflowCode)]
    assert [f.packages for f in finders] == [("workflows",)]
