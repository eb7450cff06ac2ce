"""Safety facts held at the CAD edge.

A CAD event that makes its call unsafe for good (a sensitive or in-progress type, an
escalation, do-not-text, an officer's call) withdraws every send of the call in the
database before it is signalled: the send activity's hand-off refuses a withdrawn call,
so a text on its way cannot reach the provider even while the call's workflow has not
seen the event yet (its worker restarting, its task held on a stopped worker's sticky
queue). The workflow reaches the same decision from the event on its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from callerloop.agency_config import AgencyConfig
from callerloop.db import Database, SendRevocation, insert_or_skip, utcnow
from workflows.cad_limits import INT64_MAX
from workflows.call_for_service import workflow_id_for
from workflows.model import CadEvent
from workflows.policy import event_safety_stop

# A revocation of this generation covers every send the call will ever make.
ALL_GENERATIONS = INT64_MAX

SignalWithStart = Callable[[CadEvent], Awaitable[str]]


def withdraw_if_unsafe(
    db: Database, agencies: Mapping[str, AgencyConfig], event: CadEvent
) -> str | None:
    """Withdraw the call's sends when the event makes it unsafe; returns the reason."""
    agency = agencies.get(event.agency)
    if agency is None:
        return None
    stop = event_safety_stop(event, agency.to_policy())
    if stop is None:
        return None
    statement = insert_or_skip(db.engine.dialect.name, SendRevocation).on_conflict_do_nothing()
    with db.engine.begin() as connection:
        connection.execute(
            statement,
            {
                "workflow_id": workflow_id_for(event.agency, event.incident_id),
                "generation": ALL_GENERATIONS,
                "reason": f"CAD: {stop.reason}",
                "revoked_at": utcnow(),
            },
        )
    return stop.reason


def withdrawing_unsafe_sends(
    signal_with_start: SignalWithStart, db: Database, agencies: Mapping[str, AgencyConfig]
) -> SignalWithStart:
    """`signal_with_start` that first withdraws the sends of a call an event makes unsafe."""

    async def deliver(event: CadEvent) -> str:
        await asyncio.to_thread(withdraw_if_unsafe, db, agencies, event)
        return await signal_with_start(event)

    return deliver
