"""Applying CAD events to a call's state: idempotent and safe against reordering.

A duplicate event (same event id) changes nothing. Each field remembers the CAD time it
was last set at, and an event older than that does not roll it back. Status changes that
share a timestamp (officer-initiated calls often have identical times for every step)
move only forward.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from workflows.model import (
    AppliedField,
    CadEvent,
    CadEventType,
    CallState,
    CallStatus,
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
)


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


def apply_event(state: CallState, event: CadEvent, now: datetime) -> ApplyResult:
    """Apply one CAD event to the call. `now` is the workflow clock, used for the times
    callerloop itself measures (receipt, unit assignment, closure)."""
    if event.event_id in state.applied_event_ids:
        state.events_ignored += 1
        return ApplyResult(applied=False, note="duplicate event")
    state.applied_event_ids.append(event.event_id)
    at = event.occurred_at
    changed: list[str] = []

    for name in _DATA_FIELDS:
        value = getattr(event, name)
        if value is None or getattr(state, name) == value:
            continue
        if name == "caller_line_type" and value == LineType.UNKNOWN:
            continue  # "unknown" is no news: it must not undo what a lookup found
        if _newer(state, name, at):
            setattr(state, name, value)
            _set_field_time(state, name, at)
            changed.append(name)

    if event.event_type == CadEventType.DELAYED and not state.delay_reported:
        state.delay_reported = True
        changed.append("delay_reported")

    new_status = STATUS_FOR_EVENT.get(event.event_type)
    if new_status is not None and _status_moves(state, new_status, at):
        _set_status(state, new_status, now)
        _set_field_time(state, "status", at)
        changed.append("status")

    if state.received_at is None:
        state.received_at = now
    if changed:
        state.events_applied += 1
        return ApplyResult(applied=True, note="changed " + ", ".join(changed))
    state.events_ignored += 1
    return ApplyResult(applied=False, note="older than the state or nothing new")


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
        state.closed_at = None
    if status.has_unit and state.unit_assigned_at is None:
        state.unit_assigned_at = now
    if status.is_closed:
        state.closed_at = now
    state.status = status
