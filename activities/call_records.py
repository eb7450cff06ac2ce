"""Recording each call's events and eligibility decisions, and purging personal data."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String, bindparam
from sqlmodel import col, delete, update
from temporalio import activity

from callerloop.core import metrics
from callerloop.core.column_types import UTCDateTime
from callerloop.core.db import (
    AuditEntry,
    AutoReply,
    CallEventRecord,
    CallRecord,
    Database,
    EligibilityDecisionRecord,
    OutboxMessage,
    insert_or_skip,
    utcnow,
)
from callerloop.messaging.links import SURVEY, expire_links
from callerloop.messaging.opt_outs import is_opted_out
from workflows.model import (
    CallSnapshot,
    CheckOptOutResult,
    PurgeInput,
    RecordCallInput,
    TextingState,
)


class CallRecordActivities:
    def __init__(self, db: Database) -> None:
        self._db = db

    @activity.defn(name="record_call_then_check_opt_out")
    def record_call_then_check_opt_out(self, input: RecordCallInput) -> CheckOptOutResult:
        """Record the call, then look its number up in the opt-out registry.

        In this order, and in two transactions, no STOP can slip between them: an inbound
        STOP is written to the registry before the handler looks for the number's calls
        to signal (`callerloop.inbound`). Either that lookup finds this record, or the
        STOP was committed before this read and the read sees it. So once a call is on
        record with its number it needs no look at the registry before each text."""
        self.record_call(input)
        phone = input.snapshot.caller_phone
        if phone is None:
            return CheckOptOutResult(opted_out=False)
        return CheckOptOutResult(opted_out=is_opted_out(self._db, input.snapshot.agency, phone))

    @activity.defn(name="record_call")
    def record_call(self, input: RecordCallInput) -> None:
        """Idempotent: a retried or replayed record writes nothing twice. (Calls recorded
        before `record-then-check-opt-out` replay through it.)"""
        agency = input.snapshot.agency
        now = utcnow()
        with self._db.session() as session:
            # Core statements on the session's connection: no ORM unit of work to run.
            connection = session.connection()
            statements = _record_statements(connection.dialect.name)
            connection.execute(
                statements.upsert_call, _call_row(input.workflow_id, input.snapshot, now)
            )
            if input.events:
                new_events = set(
                    connection.execute(
                        statements.insert_events,
                        [
                            {
                                "workflow_id": input.workflow_id,
                                "event_id": event.event_id,
                                "event_type": event.event_type.value,
                                "occurred_at": event.occurred_at,
                                "applied": event.applied,
                                "note": event.note,
                                "recorded_at": now,
                            }
                            for event in input.events
                        ],
                    ).scalars()
                )
                for event in input.events:
                    if event.event_id in new_events:
                        applied = "true" if event.applied else "false"
                        metrics.CAD_EVENTS.labels(agency, event.event_type.value, applied).inc()
            if input.snapshot.operator_actions:
                # Updates made in the Temporal UI reach the audit log this way too.
                connection.execute(
                    statements.insert_audit,
                    [
                        {
                            "at": action.at,
                            "actor": action.by,
                            "action": action.action,
                            "target": input.workflow_id,
                            "detail": f"{action.reason}"
                            + (f" ({action.detail})" if action.detail else ""),
                            "source": "temporal-update",
                            "dedup_key": f"{input.workflow_id}#{index}",
                        }
                        for index, action in enumerate(input.snapshot.operator_actions)
                    ],
                )
            if input.decision is not None and input.decided_at is not None:
                decided = connection.execute(
                    statements.insert_decision,
                    {
                        "workflow_id": input.workflow_id,
                        "agency": agency,
                        "decided_at": input.decided_at,
                        "eligible": input.decision.eligible,
                        "reason": input.decision.reason,
                        "detail": input.decision.detail,
                        "permanent": input.decision.permanent,
                    },
                ).first()
                if decided is not None:
                    eligible = "true" if input.decision.eligible else "false"
                    metrics.ELIGIBILITY_DECISIONS.labels(
                        agency, eligible, input.decision.reason
                    ).inc()
            session.commit()

    @activity.defn(name="purge_personal_data")
    def purge_personal_data(self, input: PurgeInput) -> None:
        """The end of a call's lifecycle: numbers, message bodies and the provider's error
        messages are deleted and the survey link closes. Survey responses hold no personal
        data and are kept."""
        now = utcnow()
        with self._db.engine.begin() as connection:
            for statement in _PURGE:
                connection.execute(statement, {"call": input.workflow_id, "now": now})
            # The survey window is over when the lifecycle ends. The status link stays until
            # it expires: it shows no personal data and the record it reads is kept.
            expire_links(connection, input.workflow_id, SURVEY, now)


# The call's row as the latest record leaves it (an upsert sets every one of these).
_CALL_LATEST = (
    "case_number",
    "status",
    "priority",
    "call_type",
    "source",
    "language",
    "caller_phone",
    "texting_state",
    "reason",
    "texts_sent",
    "received_at",
    "closed_at",
    "updated_at",
    "survey_thread_open",
)


def _call_row(workflow_id: str, call: CallSnapshot, now: datetime) -> dict[str, object]:
    return {
        "workflow_id": workflow_id,
        "agency": call.agency,
        "incident_id": call.incident_id,
        "case_number": call.case_number,
        "status": call.status.value if call.status else None,
        "priority": call.priority,
        "call_type": call.call_type,
        "source": call.source.value if call.source else None,
        "language": call.language,
        "caller_phone": call.caller_phone,
        "texting_state": call.texting_state.value,
        "reason": call.reason,
        "texts_sent": call.texts_sent,
        "received_at": call.received_at,
        "closed_at": call.closed_at,
        "updated_at": now,
        "survey_thread_open": call.survey_thread_open,
    }


@dataclass(frozen=True)
class _RecordStatements:
    upsert_call: Any
    insert_events: Any  # returns the event ids it inserted
    insert_audit: Any
    insert_decision: Any  # returns the id when it inserted


@functools.cache
def _record_statements(dialect: str) -> _RecordStatements:
    """Built once per dialect, executed with each record's values: building and compiling
    fresh statements for every record cost more CPU than running them."""
    call = insert_or_skip(dialect, CallRecord)
    events = insert_or_skip(dialect, CallEventRecord)
    decision = insert_or_skip(dialect, EligibilityDecisionRecord)
    return _RecordStatements(
        upsert_call=call.on_conflict_do_update(
            index_elements=[col(CallRecord.workflow_id)],
            set_={name: call.excluded[name] for name in _CALL_LATEST},
        ),
        insert_events=events.on_conflict_do_nothing().returning(events.table.c.event_id),
        insert_audit=insert_or_skip(dialect, AuditEntry).on_conflict_do_nothing(),
        insert_decision=decision.on_conflict_do_nothing().returning(decision.table.c.id),
    )


def _purge_statements() -> tuple[Any, ...]:
    call = bindparam("call", type_=String())
    now = bindparam("now", type_=UTCDateTime())
    return (
        update(OutboxMessage)
        .where(col(OutboxMessage.workflow_id) == call)
        # A provider's error message can quote the number it refused.
        .values(to=None, body=None, error_message=None, updated_at=now),
        delete(AutoReply).where(col(AutoReply.workflow_id) == call),
        update(CallRecord)
        .where(col(CallRecord.workflow_id) == call)
        .values(
            caller_phone=None,
            texting_state=TextingState.FINISHED.value,
            purged_at=now,
            updated_at=now,
        ),
    )


# Built once, like the record's statements.
_PURGE = _purge_statements()
