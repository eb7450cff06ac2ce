"""Bounds on the facts a CAD event may carry: one table for the edge and the workflow.

The edge (`starter.cad_events`) refuses an event outside them with an error naming the
field; the workflow (`workflows.call_state`) ignores such a fact with a recorded reason
instead of failing its task, so a value that slipped past an entry path can never jam a
call (a priority beyond int64, for one, made every workflow task fail on the
`CallPriority` search attribute).

Pure and stdlib only: the workflow sandbox imports it. Functions that need the time take
it (`now`): the edge passes the wall clock, the workflow `workflow.now()`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

# Temporal's Int search attributes are signed 64-bit.
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

# Identifiers: the agency, the incident and case numbers. The incident id is part of the
# workflow id and a Keyword search attribute; an EIDO's i3 incident tracking id
# (`urn:emergency:uid:incidentid:<id>:<domain>`) can stand for it and runs past 64.
MAX_ID_LENGTH = 128
# Room for an id built on an incident id, as a replay's `<incident>:<type>:<n>`.
MAX_EVENT_ID_LENGTH = 200
# Free-form CAD words: call type, disposition.
MAX_TEXT_LENGTH = 200
# A phone number as CAD writes it, before it becomes E.164: "+1 (703) 555-0142 ext. 12".
MAX_PHONE_LENGTH = 40
# The officer as the assigned text names them ("Ofc. J. Rivera #4411"): a text, not a record.
MAX_OFFICER_LENGTH = 40

# The longest value of each string field of a `CadEvent`, by field name.
MAX_LENGTHS: dict[str, int] = {
    "agency": MAX_ID_LENGTH,
    "incident_id": MAX_ID_LENGTH,
    "event_id": MAX_EVENT_ID_LENGTH,
    "case_number": MAX_ID_LENGTH,
    "call_type": MAX_TEXT_LENGTH,
    "caller_phone": MAX_PHONE_LENGTH,
    "caller_language": 2,  # ISO 639-1
    "disposition": MAX_TEXT_LENGTH,
    "officer": MAX_OFFICER_LENGTH,
}

# When a CAD event may have happened. No CAD in service holds calls from before 2000; a
# clock a little fast, or a synthetic day replayed today (its calls close after midnight),
# stays within two days of the wall clock; a wrong year does not.
EARLIEST_OCCURRED_AT = datetime(2000, 1, 1, tzinfo=UTC)
MAX_AHEAD_OF_CLOCK = timedelta(days=2)


def text_problem(value: str, max_length: int) -> str | None:
    """Why a string from CAD cannot be kept as it is, or None when it can."""
    if len(value) > max_length:
        return f"longer than {max_length} characters ({len(value)})"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return "contains a control character (NUL, newline, …)"
    return None


def priority_problem(value: int, scale: tuple[int, int] | None = None) -> str | None:
    """Why a priority cannot be applied, or None when it can; `scale` is the agency's
    (lowest number, highest number), both included."""
    if not INT64_MIN <= value <= INT64_MAX:
        return "outside the signed 64-bit range of the CallPriority search attribute"
    if scale is not None and not scale[0] <= value <= scale[1]:
        return f"not on this agency's priority scale ({scale[0]} to {scale[1]})"
    return None


def occurred_at_problem(value: datetime, now: datetime) -> str | None:
    """Why a (timezone-aware) event time cannot be a CAD event's, or None when it can."""
    if value < EARLIEST_OCCURRED_AT:
        return f"before {EARLIEST_OCCURRED_AT:%Y-%m-%d}: not a time a CAD event can have"
    if value > now + MAX_AHEAD_OF_CLOCK:
        latest = (now + MAX_AHEAD_OF_CLOCK).astimezone(UTC)
        return (
            f"more than {MAX_AHEAD_OF_CLOCK.days} days ahead of the clock "
            f"(latest accepted now: {latest:%Y-%m-%dT%H:%M}Z)"
        )
    return None
