"""Temporal's floor for callerloop's shape of work: a workflow with no logic that is
started the same way (signal-with-start), receives the same CAD events as signals and runs
the same number of activities (one per text; the purge, as callerloop's, a local activity
in the last workflow task), with the same survey wait.

Its texts run where callerloop's do: on a task queue of their own, which the server paces
(callerloop's sender queue, `worker.sms_task_queue`). On the workflow's own queue the SDK
would run them eagerly, handed back with the workflow task's completion, which spares the
server a trip through matching per activity that callerloop cannot skip: a sender's limit
holds across workers only on its own queue."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow

FLOOR_TASK_QUEUE = "bench-floor"


def text_task_queue(task_queue: str) -> str:
    """The queue the floor's texts run on, beside its workflow's `task_queue`."""
    return f"{task_queue}-texts"


@dataclass
class FloorInput:
    events: int  # how many event signals the call receives
    survey_delay_seconds: float  # the wait before the last text, as callerloop's survey
    texts_on_own_queue: bool = True  # False: on the workflow's queue (eager, see above)


@dataclass
class FloorStep:
    workflow_id: str
    name: str


@workflow.defn
class FloorWorkflow:
    def __init__(self) -> None:
        self._received: list[str] = []

    @workflow.signal
    def cad_event(self, event_id: str) -> None:
        self._received.append(event_id)

    def _more_than(self, count: int) -> Callable[[], bool]:
        return lambda: len(self._received) > count

    @workflow.run
    async def run(self, input: FloorInput) -> None:
        info = workflow.info()
        wid = info.workflow_id
        texts = text_task_queue(info.task_queue) if input.texts_on_own_queue else None
        done = 0
        while done < input.events:
            await workflow.wait_condition(self._more_than(done))
            await workflow.execute_activity(
                "floor_step",
                FloorStep(wid, self._received[done]),
                task_queue=texts,
                start_to_close_timeout=timedelta(minutes=1),
            )
            done += 1
        await workflow.sleep(input.survey_delay_seconds)
        await workflow.execute_activity(
            "floor_step",
            FloorStep(wid, "survey"),
            task_queue=texts,
            start_to_close_timeout=timedelta(minutes=1),
        )
        await workflow.execute_local_activity(
            "floor_step", FloorStep(wid, "purge"), start_to_close_timeout=timedelta(minutes=1)
        )
