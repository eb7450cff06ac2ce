"""Recording each call's events and eligibility decisions, and purging personal data."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, delete, update
from temporalio import activity

from activities.opt_outs import is_opted_out
from callerloop import metrics
from callerloop.db import (
    AuditEntry,
    AutoReply,
    CallEventRecord,
    CallRecord,
    Database,
    EligibilityDecisionRecord,
    OutboxMessage,
    utcnow,
)
from callerloop.links import SURVEY, expire_links
from workflows.model import (
    CallState,
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
        with self._db.session() as session:
            _upsert_call(session, input.workflow_id, input.snapshot)
            agency = input.snapshot.agency
            for event in input.events:
                if _insert_once(
                    session,
                    CallEventRecord(
                        workflow_id=input.workflow_id,
                        event_id=event.event_id,
                        event_type=event.event_type.value,
                        occurred_at=event.occurred_at,
                        applied=event.applied,
                        note=event.note,
                        recorded_at=utcnow(),
                    ),
                ):
                    applied = "true" if event.applied else "false"
                    metrics.CAD_EVENTS.labels(agency, event.event_type.value, applied).inc()
            for index, action in enumerate(input.snapshot.operator_actions):
                # Updates made in the Temporal UI reach the audit log this way too.
                _insert_once(
                    session,
                    AuditEntry(
                        at=action.at,
                        actor=action.by,
                        action=action.action,
                        target=input.workflow_id,
                        detail=f"{action.reason}"
                        + (f" ({action.detail})" if action.detail else ""),
                        source="temporal-update",
                        dedup_key=f"{input.workflow_id}#{index}",
                    ),
                )
            if input.decision is not None and input.decided_at is not None:
                decided = _insert_once(
                    session,
                    EligibilityDecisionRecord(
                        workflow_id=input.workflow_id,
                        agency=input.snapshot.agency,
                        decided_at=input.decided_at,
                        eligible=input.decision.eligible,
                        reason=input.decision.reason,
                        detail=input.decision.detail,
                        permanent=input.decision.permanent,
                    ),
                )
                if decided:
                    eligible = "true" if input.decision.eligible else "false"
                    metrics.ELIGIBILITY_DECISIONS.labels(
                        agency, eligible, input.decision.reason
                    ).inc()
            session.commit()

    @activity.defn(name="purge_personal_data")
    def purge_personal_data(self, input: PurgeInput) -> None:
        """The end of a call's lifecycle: numbers and message bodies are deleted and the
        survey link closes. Survey responses hold no personal data and are kept."""
        now = utcnow()
        with self._db.session() as session:
            session.exec(
                update(OutboxMessage)
                .where(col(OutboxMessage.workflow_id) == input.workflow_id)
                .values(to=None, body=None, updated_at=now)
            )
            session.exec(delete(AutoReply).where(col(AutoReply.workflow_id) == input.workflow_id))
            # The survey window is over when the lifecycle ends. The status link stays until
            # it expires: it shows no personal data and the record it reads is kept.
            expire_links(session, input.workflow_id, SURVEY, now)
            session.exec(
                update(CallRecord)
                .where(col(CallRecord.workflow_id) == input.workflow_id)
                .values(
                    caller_phone=None,
                    texting_state=TextingState.FINISHED.value,
                    purged_at=now,
                    updated_at=now,
                )
            )
            session.commit()


def _upsert_call(session: Session, workflow_id: str, call: CallState) -> None:
    row = session.get(CallRecord, workflow_id) or CallRecord(
        workflow_id=workflow_id,
        agency=call.agency,
        incident_id=call.incident_id,
        texting_state=call.texting_state.value,
    )
    row.case_number = call.case_number
    row.status = call.status.value if call.status else None
    row.priority = call.priority
    row.call_type = call.call_type
    row.source = call.source.value if call.source else None
    row.language = call.caller_language
    row.caller_phone = call.caller_phone
    row.texting_state = call.texting_state.value
    row.reason = call.decision.reason if call.decision else None
    row.texts_sent = call.texts_counted()
    row.received_at = call.received_at
    row.closed_at = call.closed_at
    row.updated_at = utcnow()
    session.add(row)


def _insert_once(
    session: Session, row: CallEventRecord | EligibilityDecisionRecord | AuditEntry
) -> bool:
    """Insert unless the unique key already exists (a retried activity); True if inserted."""
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return False
    return True
