"""The CAD side's client: every CAD event becomes a signal-with-start of its call's workflow."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from workflows import search_attributes as sa
from workflows.call_for_service import CallForServiceWorkflow, workflow_id_for
from workflows.details import summary
from workflows.event_identity import with_event_id
from workflows.model import (
    CadEvent,
    CallInput,
    CallOutcome,
    OptInSignal,
    OptOutSignal,
    SuppressSignal,
)


class CallAlreadyFinished(Exception):
    """The call's lifecycle is over (personal data purged); events for it are not applied."""


@dataclass
class Delivered:
    workflow_id: str
    handle: WorkflowHandle[CallForServiceWorkflow, CallOutcome]


class CadClient:
    def __init__(
        self, client: Client, task_queue: str, *, rpc_timeout: timedelta | None = None
    ) -> None:
        """`rpc_timeout` bounds each delivery: without it, the client retries an unreachable
        server for several seconds before giving up."""
        self._client = client
        self._task_queue = task_queue
        self._rpc_timeout = rpc_timeout

    async def send(self, event: CadEvent) -> Delivered:
        """Start the call's workflow with this event, or signal it if it runs already.

        An event without an id gets the one derived from its content, as on every entry
        path: never the empty string, on which two different events would be one."""
        event = with_event_id(event)
        workflow_id = workflow_id_for(event.agency, event.incident_id)
        try:
            handle = await self._client.start_workflow(
                CallForServiceWorkflow.run,
                CallInput(agency=event.agency, incident_id=event.incident_id),
                id=workflow_id,
                task_queue=self._task_queue,
                start_signal="cad_event",
                start_signal_args=[event],
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                # A finished call is not restarted by a late event: that would text again.
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(sa.AGENCY, event.agency),
                        SearchAttributePair(sa.INCIDENT_ID, event.incident_id),
                    ]
                ),
                static_summary=summary(event.agency, event.incident_id, event.priority),
                rpc_timeout=self._rpc_timeout,
            )
        except WorkflowAlreadyStartedError as error:
            raise CallAlreadyFinished(
                f"{workflow_id} has finished; event {event.event_id} not applied"
            ) from error
        return Delivered(workflow_id=workflow_id, handle=handle)

    async def publish(self, event: CadEvent) -> str:
        """Deliver one event; returns the call's workflow id (the name CAD adapters use)."""
        return (await self.send(event)).workflow_id

    def handle(
        self, agency: str, incident_id: str
    ) -> WorkflowHandle[CallForServiceWorkflow, object]:
        return self._client.get_workflow_handle_for(
            CallForServiceWorkflow.run, workflow_id_for(agency, incident_id)
        )

    async def opt_out(self, agency: str, incident_id: str, signal: OptOutSignal) -> None:
        await self.handle(agency, incident_id).signal(CallForServiceWorkflow.opt_out, signal)

    async def opt_in(self, agency: str, incident_id: str, signal: OptInSignal) -> None:
        await self.handle(agency, incident_id).signal(CallForServiceWorkflow.opt_in, signal)

    async def suppress(self, agency: str, incident_id: str, signal: SuppressSignal) -> None:
        await self.handle(agency, incident_id).signal(CallForServiceWorkflow.suppress, signal)
