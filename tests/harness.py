"""Driving a call workflow from a test: send events, wait for it to settle, read the outbox."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlmodel import col, select
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from callerloop.cad.client import CadClient
from callerloop.core.agency_config import AgencyConfig
from callerloop.core.db import Database, OutboxMessage
from callerloop.core.settings import Settings
from worker import workflow_runner
from workflows.call_for_service import CallForServiceWorkflow, workflow_id_for
from workflows.model import CadEvent, CallOutcome, CallState

SETTLE_TIMEOUT = 20.0
HISTORIES = Path(__file__).parent / "histories"


@dataclass
class Harness:
    env: WorkflowEnvironment
    db: Database
    settings: Settings
    agencies: dict[str, AgencyConfig]
    sent_events: dict[str, int] = field(default_factory=dict)
    # The handles start_workflow returned: on the time-skipping server only these skip
    # time while awaiting the result.
    handles: dict[str, WorkflowHandle[Any, CallOutcome]] = field(default_factory=dict)
    # Set (to the test's name) when `pytest --record-histories` records this test's calls.
    record_as: str | None = None

    @property
    def cad(self) -> CadClient:
        return CadClient(self.env.client, self.settings.task_queue)

    def handle(self, incident_id: str, agency: str = "testville") -> WorkflowHandle[Any, Any]:
        return self.env.client.get_workflow_handle_for(
            CallForServiceWorkflow.run, workflow_id_for(agency, incident_id)
        )

    async def send(self, *events: CadEvent) -> CallState:
        """Deliver events one by one, then wait until the workflow has handled them all
        and has nothing in flight (every event counts as applied or ignored). Events sent
        together may be handled together: send separately when a text between them matters."""
        for event in events:
            delivered = await self.cad.send(event)
            self.handles.setdefault(event.incident_id, delivered.handle)
            self.sent_events[event.incident_id] = self.sent_events.get(event.incident_id, 0) + 1
        incident = events[-1].incident_id
        expected = self.sent_events[incident]
        return await self.settle(
            incident,
            lambda s: s.events_applied + s.events_ignored >= expected,
            agency=events[-1].agency,
        )

    async def state(self, incident_id: str, agency: str = "testville") -> CallState:
        handle = self.handle(incident_id, agency)
        result: CallState = await handle.query(CallForServiceWorkflow.state)
        return result

    async def settle(
        self,
        incident_id: str,
        ready: Callable[[CallState], bool] = lambda _: True,
        agency: str = "testville",
    ) -> CallState:
        """Poll until the workflow is idle (nothing in flight) or done, and `ready` holds."""
        deadline = asyncio.get_running_loop().time() + SETTLE_TIMEOUT
        while True:
            state = await self.state(incident_id, agency)
            if (state.idle or state.purged) and ready(state):
                return state
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"workflow never settled; last state: {state}")
            await asyncio.sleep(0.02)

    async def finish(self, incident_id: str) -> CallOutcome:
        """Let the call run to its end (time skips on the time-skipping server), then
        replay its history: every test's call must replay as it ran, or a worker restart
        or a query would fail it in production."""
        handle = self.handles[incident_id]
        outcome = await handle.result()
        history = await handle.fetch_history()
        replayer = Replayer(
            workflows=[CallForServiceWorkflow],
            data_converter=self.env.client.data_converter,
            workflow_runner=workflow_runner(),  # the runner production uses
        )
        await replayer.replay_workflow(history)
        return outcome

    async def record_histories(self) -> None:
        """Keep every call of this test, finished or not, in tests/histories/."""
        assert self.record_as is not None
        HISTORIES.mkdir(exist_ok=True)
        for number, handle in enumerate(self.handles.values(), start=1):
            history = await handle.fetch_history()
            (HISTORIES / f"{self.record_as}-{number}.json").write_text(history.to_json())

    async def terminate_running(self) -> None:
        """A call left running would stall the shared time-skipping clock for later tests
        (its timers fire into a task queue nobody polls any more)."""
        for handle in self.handles.values():
            description = await handle.describe()
            if description.status == WorkflowExecutionStatus.RUNNING:
                await handle.terminate(reason="test finished")

    def outbox(self, incident_id: str, agency: str = "testville") -> list[OutboxMessage]:
        with self.db.session() as session:
            statement = (
                select(OutboxMessage)
                .where(col(OutboxMessage.workflow_id) == workflow_id_for(agency, incident_id))
                .order_by(col(OutboxMessage.id))
            )
            return list(session.exec(statement))

    def kinds(self, incident_id: str, agency: str = "testville") -> list[str]:
        return [row.kind for row in self.outbox(incident_id, agency)]


async def eventually(predicate: Callable[[], bool], what: str, seconds: float = 10.0) -> None:
    """Wait (in real time) until `predicate` holds: for what a worker does on its own."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def skip_time(env: WorkflowEnvironment, duration: timedelta, attempts: int = 3) -> None:
    """`env.sleep`, patient with a busy server. The time-skipping server holds its clock
    while an activity task is out (a text on its way, or one handed to a stopped worker's
    last poll until its attempt times out), and the skip request gives up after 30 s: on
    a loaded machine (two xdist workers on two cores) ask again until the clock moves."""
    for _ in range(attempts):
        try:
            await env.sleep(duration)
            return
        except RPCError as error:
            if error.status != RPCStatusCode.CANCELLED:  # the request's own time ran out
                raise
            print(f"the server held its clock for 30 s (skipping {duration})", file=sys.stderr)
    raise AssertionError(f"the server's clock never moved (skipping {duration}): a call is stuck")
