"""What the CAD edge holds for the hand-off of a text, before the call's workflow sees it.

The workflow decides every text, but it sees a CAD event only once its worker has taken
the event's workflow task: seconds later when that worker has just died (the task waits
out the dead worker's sticky queue), while a send in retry goes on elsewhere. So the
ingest API and the CLI write two facts at once, before they signal the event, and the send
activity's hand-off reads them in the compare-and-set that claims its outbox row:
- an event that makes its call unsafe for good (a sensitive or in-progress type, an
  escalation, do-not-text, an officer's call) withdraws every send of the call;
- a close (cleared, cancelled) and a reopen, by CAD's times: while the latest close is
  newer than the latest reopen, no text of an earlier stage goes (no confirmation, delay
  notice or "unit assigned" after the call is over).
The workflow reaches the same decisions from the events on its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from sqlalchemy import case, literal

from callerloop.core.agency_config import AgencyConfig
from callerloop.core.db import CadClosure, Database, SendRevocation, insert_or_skip, utcnow
from workflows.call_for_service import workflow_id_for
from workflows.model import CadEvent, CadEventType
from workflows.policy import event_safety_stop

# A revocation of this generation covers every send the call will ever make (a call
# withdraws its sends a handful of times at most; the column is a 32-bit integer).
ALL_GENERATIONS = 2**31 - 1
CLOSING = frozenset({CadEventType.CLEARED, CadEventType.CANCELLED})

SignalWithStart = Callable[[CadEvent], Awaitable[str]]


def hold_at_edge(db: Database, agencies: Mapping[str, AgencyConfig], event: CadEvent) -> None:
    """Write what the hand-off must know of this event before the workflow sees it."""
    workflow_id = workflow_id_for(event.agency, event.incident_id)
    with db.engine.begin() as connection:
        if (reason := _unsafe(agencies, event)) is not None:
            revoke = insert_or_skip(db.engine.dialect.name, SendRevocation)
            connection.execute(
                revoke.on_conflict_do_nothing(),
                {
                    "workflow_id": workflow_id,
                    "generation": ALL_GENERATIONS,
                    "reason": f"CAD: {reason}",
                    "revoked_at": utcnow(),
                },
            )
        if event.event_type in CLOSING:
            _latest(db, connection, workflow_id, "closed_at", event)
        elif event.event_type == CadEventType.REOPENED:
            _latest(db, connection, workflow_id, "reopened_at", event)


def _unsafe(agencies: Mapping[str, AgencyConfig], event: CadEvent) -> str | None:
    agency = agencies.get(event.agency)
    if agency is None:
        return None
    stop = event_safety_stop(event, agency.to_policy())
    return stop.reason if stop is not None else None


def _latest(db: Database, connection: Any, workflow_id: str, column: str, event: CadEvent) -> None:
    """Keep the later of the stored time and this event's (CAD's clock: events arrive
    out of order)."""
    table = CadClosure.__table__  # type: ignore[attr-defined]
    stored = table.c[column]
    at = literal(event.occurred_at, type_=stored.type)
    upsert = insert_or_skip(db.engine.dialect.name, CadClosure).values(
        workflow_id=workflow_id, **{column: event.occurred_at}
    )
    later = case((stored.is_(None), at), (at > stored, at), else_=stored)
    connection.execute(
        upsert.on_conflict_do_update(index_elements=["workflow_id"], set_={column: later})
    )


def holding_at_edge(
    signal_with_start: SignalWithStart, db: Database, agencies: Mapping[str, AgencyConfig]
) -> SignalWithStart:
    """`signal_with_start` that writes what the hand-off must know first (`hold_at_edge`)."""

    async def deliver(event: CadEvent) -> str:
        await asyncio.to_thread(hold_at_edge, db, agencies, event)
        return await signal_with_start(event)

    return deliver
