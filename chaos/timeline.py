"""What the chaos driver sent and when: every CAD event and every resident's reply, with
the moment it was first posted and the moment it was accepted. The oracle and the
invariants judge texts against these times, never against a workflow's state."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

Keyword = Literal["STOP", "START"]

# The time the stack needs to see a fact once its edge accepted it: the signal reaches the
# workflow, whose next task writes the revocation that every hand-off checks. A text that
# reaches Twilio within it may have been handed over before; one later breaks the rule.
# One second is ample for a healthy stack on two busy cores (the chaos report prints the
# latest text seen inside it).
FACT_GRACE = timedelta(seconds=1.0)


def wall_clock() -> datetime:
    """The clock the Twilio stand-in stamps its messages with (same process, same clock)."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class CadSent:
    incident_id: str
    event_type: str  # a CadEventType value
    posted_at: datetime  # the first post (a retried post keeps it)
    accepted_at: datetime  # the answer that accepted it
    unsafe: str | None = None  # the safety fact it tells (the schedule's reclassifications)


@dataclass(frozen=True)
class ReplySent:
    phone: str
    keyword: Keyword
    posted_at: datetime
    accepted_at: datetime


@dataclass(frozen=True)
class OptOutWindow:
    """From the STOP's acceptance to the START (None: never opted back in)."""

    phone: str
    stop_accepted: datetime
    start_posted: datetime | None
    start_accepted: datetime | None


@dataclass
class Journal:
    cad: list[CadSent] = field(default_factory=list)
    replies: list[ReplySent] = field(default_factory=list)
    phones: dict[str, str] = field(default_factory=dict)  # incident -> its created event's phone

    def events_of(self) -> dict[str, list[CadSent]]:
        """Each call's accepted CAD events, in the order they were accepted."""
        calls: dict[str, list[CadSent]] = defaultdict(list)
        for sent in sorted(self.cad, key=lambda sent: sent.accepted_at):
            calls[sent.incident_id].append(sent)
        return calls

    def safety_facts(self) -> list[CadSent]:
        return [sent for sent in self.cad if sent.unsafe is not None]

    def incidents_of(self, phone: str) -> list[str]:
        return sorted(incident for incident, number in self.phones.items() if number == phone)


def opt_out_windows(replies: Iterable[ReplySent]) -> list[OptOutWindow]:
    """Each STOP with the START that followed it from the same number, if any."""
    by_phone: dict[str, list[ReplySent]] = defaultdict(list)
    for reply in sorted(replies, key=lambda reply: reply.accepted_at):
        by_phone[reply.phone].append(reply)
    windows: list[OptOutWindow] = []
    for phone, sent in by_phone.items():
        for n, reply in enumerate(sent):
            if reply.keyword != "STOP":
                continue
            start = next((r for r in sent[n + 1 :] if r.keyword == "START"), None)
            windows.append(
                OptOutWindow(
                    phone,
                    reply.accepted_at,
                    start.posted_at if start else None,
                    start.accepted_at if start else None,
                )
            )
    return windows


def reopened_between(events: Sequence[CadSent], start: datetime, end: datetime) -> bool:
    """Whether CAD may have reopened the call between `start` and `end`: a reopen still
    unanswered at `start` and already posted by `end` (lenient both ways)."""
    return any(
        sent.event_type == "reopened" and sent.accepted_at >= start and sent.posted_at <= end
        for sent in events
    )
