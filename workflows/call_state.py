"""Applying CAD events to a call's state: idempotent and safe against reordering.

A duplicate event (same event id) changes nothing. Each field remembers the CAD time it
was last set at, and an event older than that does not roll it back. Status changes that
share a timestamp (officer-initiated calls often have identical times for every step)
move only forward, and a closed call stays closed until CAD reopens it.

A fact outside `workflows.cad_limits` (a priority beyond int64, a call type with a NUL)
is ignored with its reason instead of failing the workflow task: the edge refuses such
values, and one that slipped past it must still never jam a call.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from workflows.cad_limits import (
    MAX_ID_LENGTH,
    MAX_OFFICER_LENGTH,
    MAX_TEXT_LENGTH,
    priority_problem,
    text_problem,
)
from workflows.event_identity import with_event_id
from workflows.model import (
    AppliedField,
    CadEvent,
    CadEventType,
    CallState,
    CallStatus,
    LateFacts,
    LineType,
)

STATUS_FOR_EVENT: dict[CadEventType, CallStatus] = {
    CadEventType.CREATED: CallStatus.RECEIVED,
    CadEventType.ASSIGNED: CallStatus.DISPATCHED,
    CadEventType.ENROUTE: CallStatus.ENROUTE,
    CadEventType.ON_SCENE: CallStatus.ON_SCENE,
    CadEventType.CLEARED: CallStatus.CLEARED,
    CadEventType.CANCELLED: CallStatus.CANCELLED,
    CadEventType.REOPENED: CallStatus.REOPENED,
}

# Used only to break ties between status changes that carry the same CAD time.
_STATUS_RANK: dict[CallStatus, int] = {
    CallStatus.RECEIVED: 0,
    CallStatus.DISPATCHED: 1,
    CallStatus.ENROUTE: 2,
    CallStatus.ON_SCENE: 3,
    CallStatus.CLEARED: 4,
    CallStatus.CANCELLED: 4,
    CallStatus.REOPENED: 5,
}

# Event fields copied onto the call when present, each versioned by CAD time.
_DATA_FIELDS = (
    "case_number",
    "priority",
    "call_type",
    "source",
    "caller_phone",
    "caller_line_type",
    "caller_language",
    "in_progress",
    "do_not_text",
    "disposition",
    "officer",
)


# Facts the safety rules read: an older event's value is kept for them (`late_facts`).
LATE_FACT_FIELDS = frozenset({"call_type", "priority", "source", "in_progress", "do_not_text"})
REMEMBERED_LATE_FACTS = 50

# Event ids a call remembers to recognise a duplicate: the latest ones. An older event
# delivered again is still harmless: it is older than the fields it would set.
REMEMBERED_EVENT_IDS = 200

_TEXT_LIMITS = {
    "case_number": MAX_ID_LENGTH,
    "call_type": MAX_TEXT_LENGTH,
    "disposition": MAX_TEXT_LENGTH,
    "caller_phone": MAX_ID_LENGTH,
    "caller_language": MAX_ID_LENGTH,
    "officer": MAX_OFFICER_LENGTH,
}


def fact_problem(name: str, value: object) -> str | None:
    """Why the workflow cannot keep this fact (None: it can)."""
    if name == "priority" and isinstance(value, int):
        return priority_problem(value)
    if name in _TEXT_LIMITS and isinstance(value, str):
        return text_problem(value, _TEXT_LIMITS[name])
    return None


@dataclass
class ApplyResult:
    applied: bool  # anything at all changed
    note: str = ""


def _field_time(state: CallState, name: str) -> datetime | None:
    for applied in state.field_times:
        if applied.name == name:
            return applied.occurred_at
    return None


def _set_field_time(state: CallState, name: str, at: datetime) -> None:
    for applied in state.field_times:
        if applied.name == name:
            applied.occurred_at = at
            return
    state.field_times.append(AppliedField(name=name, occurred_at=at))


def _newer(state: CallState, name: str, at: datetime) -> bool:
    last = _field_time(state, name)
    return last is None or at >= last


def apply_event(
    state: CallState,
    event: CadEvent,
    now: datetime,
    *,
    safe_rules: bool = True,
    keep_superseded: bool = True,
) -> ApplyResult:
    """Apply one CAD event to the call. `now` is the workflow clock, used for the times
    callerloop itself measures (receipt, unit assignment, closure). `safe_rules` (calls
    started under `versions.SAFE_SENDS`): an event without an id gets its content's, the ids kept
    are bounded, and a closed call's status moves only by a reopen. `keep_superseded` (calls
    started under `versions.EVERY_FACT_KEPT`): a safety fact this event changes is kept in
    `superseded_facts`, since the call may not have decided on it yet."""
    if safe_rules:
        event = with_event_id(event)
    if event.event_id in state.applied_event_ids:
        state.events_ignored += 1
        return ApplyResult(applied=False, note="duplicate event")
    state.applied_event_ids.append(event.event_id)
    if safe_rules and len(state.applied_event_ids) > REMEMBERED_EVENT_IDS:
        del state.applied_event_ids[:-REMEMBERED_EVENT_IDS]
    at = event.occurred_at
    changed: list[str] = []
    refused: list[str] = []
    late: dict[str, Any] = {}
    superseded: dict[str, Any] = {}

    for name in _DATA_FIELDS:
        value = getattr(event, name)
        if value is None or getattr(state, name) == value:
            continue
        if (problem := fact_problem(name, value)) is not None:
            refused.append(f"{name} ignored: {problem}")
            continue
        if name == "caller_line_type" and value == LineType.UNKNOWN:
            continue  # "unknown" is no news: it must not undo what a lookup found
        if name == "caller_language" and state.language_chosen:
            continue  # the caller (or an operator for them) chose: CAD's guess gives way
        if _newer(state, name, at):
            previous = getattr(state, name)
            if keep_superseded and name in LATE_FACT_FIELDS and previous is not None:
                superseded[name] = previous
            setattr(state, name, value)
            _set_field_time(state, name, at)
            changed.append(name)
        elif safe_rules and name in LATE_FACT_FIELDS:
            late[name] = value

    if late and len(state.late_facts) < REMEMBERED_LATE_FACTS:
        # Older than what the call holds, so not its current facts; but CAD said so once,
        # and a call that was sensitive (escalated, flagged) at any time is never texted.
        state.late_facts.append(LateFacts(**late))
        changed.append("late facts")
    kept = LateFacts(**superseded)
    # Bounded like the late facts: past the bound a call has changed its facts fifty times,
    # and each change still counts while it is current.
    room = len(state.superseded_facts) < REMEMBERED_LATE_FACTS
    if superseded and room and kept not in state.superseded_facts:
        state.superseded_facts.append(kept)

    if event.event_type == CadEventType.DELAYED and not state.delay_reported:
        state.delay_reported = True
        state.delay_reported_at = now
        changed.append("delay_reported")

    new_status = STATUS_FOR_EVENT.get(event.event_type)
    if new_status is not None and _status_moves(state, new_status, at):
        if safe_rules and _closed_until_reopened(state, new_status):
            refused.append(f"{new_status.value} ignored: the call is closed until CAD reopens it")
        else:
            _set_status(state, new_status, now)
            _set_field_time(state, "status", at)
            changed.append("status")

    if state.received_at is None:
        state.received_at = now
    notes = "; ".join(refused)
    if changed:
        state.events_applied += 1
        note = "changed " + ", ".join(changed)
        return ApplyResult(applied=True, note=f"{note}; {notes}" if notes else note)
    state.events_ignored += 1
    return ApplyResult(applied=False, note=notes or "older than the state or nothing new")


def opt_out(state: CallState) -> None:
    """The caller (or the carrier) said STOP."""
    state.opted_out = True


def opt_in(state: CallState, now: datetime) -> None:
    """The caller said START: texting resumes for what happens from `now` on."""
    if state.opted_out:
        state.texting_resumed_at = now
    state.opted_out = False


def suppress(state: CallState, reason: str) -> bool:
    """An operator's stop, kept with who and why; False when one was already in force."""
    if state.suppressed_reason is not None:
        return False
    state.suppressed_reason = reason
    return True


def _closed_until_reopened(state: CallState, new_status: CallStatus) -> bool:
    """A unit status after the call was closed, without a reopen in between: a closing
    note has told the caller the call is over, so nothing but a reopen resumes it."""
    return (
        state.status is not None
        and state.status.is_closed
        and not new_status.is_closed
        and new_status != CallStatus.REOPENED
    )


def _status_moves(state: CallState, new_status: CallStatus, at: datetime) -> bool:
    if state.status is None:
        return True
    if new_status == state.status:
        return False
    last = _field_time(state, "status")
    if last is None or at > last:
        return True
    if at < last:
        return False
    return _STATUS_RANK[new_status] > _STATUS_RANK[state.status]


def _set_status(state: CallState, status: CallStatus, now: datetime) -> None:
    if status == CallStatus.REOPENED and state.status is not None and state.status.is_closed:
        state.reopened_count += 1
        state.reopened_at = now
        state.closed_at = None
    if status.has_unit and state.unit_assigned_at is None:
        state.unit_assigned_at = now
    if status.is_closed:
        state.closed_at = now
    state.status = status
