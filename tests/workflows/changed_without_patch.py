"""What a careless change looks like: the call now waits before doing anything. In a module
of its own, as workflows are: the sandbox re-imports a workflow's module for every run."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.model import CallInput, CallOutcome


@workflow.defn(name="CallForServiceWorkflow")
class ChangedWithoutPatch:
    @workflow.run
    async def run(self, input: CallInput) -> CallOutcome:
        await workflow.sleep(60)
        return CallOutcome(workflow.info().workflow_id, None, None, "", [])  # type: ignore[arg-type]
