"""A workflow whose helper module reads the wall clock. In a module of its own: the
sandbox re-imports a workflow's module (and what it imports) for every run."""

from __future__ import annotations

from temporalio import workflow

from tests.workflows.clock_reading import stamp


# Any exception fails the run (instead of retrying its task forever), so a test sees it.
@workflow.defn(failure_exception_types=[Exception])
class ClockReadingWorkflow:
    @workflow.run
    async def run(self) -> str:
        return stamp()
