"""The call workflow's loop without Temporal, on a virtual clock: the same `apply_event`,
`refresh_decision` and `lifecycle.next_step` the workflow runs between its I/O, with every
text counted as sent the moment the plan asks for it and no opt-out or line-type lookup.

What the go-live dry run (`callerloop cad dryrun`) and the property tests run. What the
real worker does under timing and faults is another matter, judged by the outcome oracle."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import groupby

from workflows.call_state import apply_event
from workflows.lifecycle import next_step, refresh_decision
from workflows.model import CadEvent, CallState, SentText, TextKind
from workflows.policy import AgencyPolicy

# A call whose lifecycle has not ended this long after its last event is left there (the
# planner always ends one, at the latest `max_open` after it opened; this bounds a bug).
HORIZON = timedelta(days=400)


@dataclass
class OfflineCall:
    """One call's facts, decisions and texts on a virtual clock that only moves forward."""

    policy: AgencyPolicy
    call: CallState
    now: datetime
    finished: bool = False
    sent: list[tuple[datetime, TextKind]] = field(default_factory=list)

    def apply(self, event: CadEvent) -> None:
        apply_event(self.call, event, self.now)

    def run_until(self, until: datetime) -> None:
        """Let the call act until `until` (or its end), its texts noted in `sent`."""
        while not self.finished:
            refresh_decision(self.call, self.policy)  # as the workflow's loop does
            step = next_step(self.call, self.policy, self.now)
            if step.finished:
                self.finished = True
            elif step.send is not None:
                self.call.texts.append(SentText(kind=step.send, status="sent", at=self.now))
                self.sent.append((self.now, step.send))
            elif step.wake_at is not None and step.wake_at <= until:
                self.now = max(self.now, step.wake_at)
            else:
                self.now = max(self.now, until)
                return


def run_call(events: Sequence[CadEvent], policy: AgencyPolicy) -> OfflineCall:
    """A call's events in order, each at its CAD time, then the call left to its end.
    Events of the same instant (an export row's creation and its final type) are applied
    together before the call acts, as facts that arrive in one workflow task are."""
    if not events:
        raise ValueError("a call needs at least one event")
    first = events[0]
    call = CallState(agency=first.agency, incident_id=first.incident_id)
    offline = OfflineCall(policy, call, now=first.occurred_at)
    for at, same_instant in groupby(events, key=lambda event: event.occurred_at):
        offline.run_until(at)
        for event in same_instant:
            offline.apply(event)
        offline.run_until(offline.now)
    offline.run_until(offline.now + HORIZON)
    return offline
