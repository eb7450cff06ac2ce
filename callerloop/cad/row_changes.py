"""What changed in a CAD row since it was last read, as the CAD events to send.

A source that shows calls as rows (the CAD's reporting database, a scheduled export) tells
no events: each read shows the call as it stands. The events come from comparing the row
with what was already told of the incident (its `Told`, kept in `cad_snapshots`):

- a row never seen: `created` (with the call type and priority first recorded), an
  `updated` with the final ones where the row keeps them and they differ, and an event
  for every step whose time is filled in, as the CSV replay makes them;
- a step time that appeared: `assigned`, `enroute`, `on_scene`, `cleared`/`cancelled`;
- a call type or priority that changed: `updated`, at the time the row changed;
- a reopen flag that appeared: `reopened`, then the final close when its time appears.

Each event's id comes from the incident, the fact, its occurrence and its time, so a
row read again (an overlap, a retried poll, a poller run twice) sends nothing twice: the
told keys filter it here, and the call's workflow ignores a repeated id anyway.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from datetime import datetime

from callerloop.cad.export_rows import CallRow, RowReading
from callerloop.cad.replay import Caller, call_events
from workflows.model import CadEvent, CadEventType

__all__ = ["RowChanges", "Told", "changes", "digest"]


@dataclass(frozen=True)
class Told:
    """What was told of one incident: the keys of its sent events, and digests of the row
    and of the call type last told (the type itself is not kept: it can be sensitive)."""

    row_digest: str
    sent: frozenset[str]
    call_type_digest: str
    priority: int | None


@dataclass
class RowChanges:
    told: Told  # what is told once `events` are delivered
    events: list[CadEvent] = field(default_factory=list)


def digest(value: object) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def changes(
    call: CallRow,
    reading: RowReading,
    told: Told | None,
    *,
    changed_at: datetime,
    caller: Caller | None,
    row_digest: str,
) -> RowChanges:
    """The events this read of the row adds to what `told` says was sent.

    `changed_at` is when the CAD changed the row (its last-changed time where the source
    keeps one): the time of an `updated` or `reopened` the row gives no time of."""
    if told is not None and told.row_digest == row_digest:
        return RowChanges(told=told)
    described = [(_key(call, e), e) for e in call_events(call, reading, set(), caller)]
    call_type = call.final_call_type or call.call_type
    priority = call.final_priority if call.final_priority is not None else call.priority
    events: list[CadEvent] = []
    sent: set[str] = set()
    if told is None:
        # First read: the call's events exactly as a replay of the row makes them.
        events = [event for _, event in described]
        sent = {key for key, _ in described}
    else:
        sent = set(told.sent)
        update = _update(call, reading, told, call_type, priority, changed_at)
        events.extend([update] if update is not None else [])
        for key, event in described:
            if key not in sent and event.event_type is not CadEventType.UPDATED:
                events.append(event)
                sent.add(key)
    if call.reopened and _REOPEN_KEY not in sent and _closed(sent):
        # Reopened, not closed again yet: the row has no reopen time, so when it changed.
        latest = max(event.occurred_at for _, event in described)
        events.append(_event(call, reading, CadEventType.REOPENED, max(changed_at, latest)))
        sent.add(_REOPEN_KEY)
    told_now = Told(
        row_digest=row_digest,
        sent=frozenset(sent),
        call_type_digest=digest(call_type),
        priority=priority,
    )
    return RowChanges(told=told_now, events=[_with_poll_id(event) for event in events])


_REOPEN_KEY = f"{CadEventType.REOPENED}:1"
_CLOSES = (f"{CadEventType.CLEARED}:", f"{CadEventType.CANCELLED}:")


def _key(call: CallRow, event: CadEvent) -> str:
    """The replay's id without the incident: the fact and its occurrence ("cleared:2")."""
    return event.event_id.removeprefix(f"{call.incident_id}:")


def _closed(sent: set[str]) -> bool:
    return any(key.startswith(_CLOSES) for key in sent)


def _event(call: CallRow, reading: RowReading, kind: CadEventType, moment: datetime) -> CadEvent:
    return CadEvent(
        agency=reading.agency.id,
        incident_id=call.incident_id,
        event_type=kind,
        occurred_at=max(moment, call.created),
    )


def _update(
    call: CallRow,
    reading: RowReading,
    told: Told,
    call_type: str,
    priority: int | None,
    changed_at: datetime,
) -> CadEvent | None:
    type_changed = digest(call_type) != told.call_type_digest
    priority_changed = priority is not None and priority != told.priority
    if not type_changed and not priority_changed:
        return None
    update = _event(call, reading, CadEventType.UPDATED, changed_at)
    update.call_type = call_type if type_changed else None
    update.priority = priority if priority_changed else None
    return update


def _with_poll_id(event: CadEvent) -> CadEvent:
    """The id from the incident, the fact, what it says and when: the same read of the
    same row always gives the same ids."""
    fact = {
        "type": event.event_type.value,
        "at": event.occurred_at.isoformat(),
        "call_type": event.call_type,
        "priority": event.priority,
    }
    return replace(event, event_id=f"{event.incident_id}:{event.event_type}:{digest(fact)[:16]}")
