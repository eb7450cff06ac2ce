"""What the status page may say about a call: its case number, where it stands in plain
words, and when that last changed. Nothing else of the call is read for the page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlmodel import Session, col, func, select

from callerloop.core.db import CallEventRecord, CallRecord, EligibilityDecisionRecord, OutboxMessage
from workflows.model import NOT_SENT, CallStatus, TextKind


class PlainStatus(StrEnum):
    RECEIVED = "received"
    ASSIGNED = "assigned"  # an officer is assigned (en route, on scene)
    DELAYED = "delayed"
    CLOSED = "closed"


@dataclass(frozen=True)
class StatusView:
    agency: str
    case_number: str
    status: PlainStatus
    last_update: datetime | None
    call_language: str | None


def status_view(session: Session, workflow_id: str) -> StatusView | None:
    record = session.get(CallRecord, workflow_id)
    if record is None:
        return None
    delayed_at = _delay_reported_at(session, workflow_id)
    status = plain_status(record.status, delayed=delayed_at is not None)
    # The delay is news only while it is the status; after it, a CAD event moved the call.
    changes = [_last_event_at(session, workflow_id)]
    if status == PlainStatus.DELAYED:
        changes.append(delayed_at)
    return StatusView(
        agency=record.agency,
        case_number=record.case_number or record.incident_id,
        status=status,
        last_update=max((t for t in changes if t is not None), default=record.received_at),
        call_language=record.language,
    )


def plain_status(status: str | None, *, delayed: bool) -> PlainStatus:
    """A delay only matters while no officer is on the way."""
    call_status = CallStatus(status) if status else CallStatus.RECEIVED
    if call_status.is_closed:
        return PlainStatus.CLOSED
    if call_status.has_unit:
        return PlainStatus.ASSIGNED
    return PlainStatus.DELAYED if delayed else PlainStatus.RECEIVED


def _last_event_at(session: Session, workflow_id: str) -> datetime | None:
    statement = select(func.max(CallEventRecord.occurred_at)).where(
        col(CallEventRecord.workflow_id) == workflow_id, col(CallEventRecord.applied)
    )
    latest: datetime | None = session.exec(statement).one()
    return latest


def _delay_reported_at(session: Session, workflow_id: str) -> datetime | None:
    """When the call was reported delayed: by CAD, or by the delay notice callerloop sent
    because no unit was assigned in time."""
    cad = select(func.max(CallEventRecord.occurred_at)).where(
        col(CallEventRecord.workflow_id) == workflow_id,
        col(CallEventRecord.applied),
        col(CallEventRecord.event_type) == "delayed",
    )
    notice = select(func.max(OutboxMessage.created_at)).where(
        col(OutboxMessage.workflow_id) == workflow_id,
        col(OutboxMessage.kind) == TextKind.DELAYED.value,
        col(OutboxMessage.status).not_in(NOT_SENT),
    )
    times = [session.exec(cad).one(), session.exec(notice).one()]
    return max((t for t in times if t is not None), default=None)


def blocked_for_safety(session: Session, workflow_id: str) -> bool:
    """A call that hit a safety stop (reclassified as sensitive, flagged do-not-text,
    suppressed by an operator) stops texting for good; its pages go dark too, since
    whoever holds the phone may not be the caller."""
    statement = select(EligibilityDecisionRecord.id).where(
        col(EligibilityDecisionRecord.workflow_id) == workflow_id,
        col(EligibilityDecisionRecord.permanent),
    )
    return session.exec(statement).first() is not None
