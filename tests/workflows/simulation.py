"""Scenarios played through `workflows.offline` (the workflow's loop without Temporal, on
a virtual clock), for property tests and whole-export checks: each text is noted with the
step of the scenario that led to it. (What the real worker does under timing and faults is
judged by tests/workflows/test_outcome_oracle.py.)"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from tests.workflows.scenarios import Action, Event, Signal, Wait
from workflows import call_state
from workflows.model import CallState, TextKind
from workflows.offline import OfflineCall

START = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


@dataclass
class Simulation(OfflineCall):
    call: CallState = field(
        default_factory=lambda: CallState(agency="testville", incident_id="P-1")
    )
    now: datetime = START
    sends: list[tuple[int, TextKind]] = field(default_factory=list)
    survey_waits: list[timedelta] = field(default_factory=list)  # closure to survey

    def play_until(self, until: datetime, step_number: int) -> None:
        already = len(self.sent)
        self.run_until(until)
        for at, kind in self.sent[already:]:
            self.sends.append((step_number, kind))
            if kind == TextKind.SURVEY and self.call.closed_at is not None:
                self.survey_waits.append(at - self.call.closed_at)

    def act(self, action: Action, step: int) -> None:
        if isinstance(action, Event):
            self.apply(action.event)
        elif isinstance(action, Signal):
            if action.kind == "opt_out":
                call_state.opt_out(self.call)
            elif action.kind == "opt_in":
                call_state.opt_in(self.call, self.now)
            else:
                call_state.suppress(self.call, "operator")
        until = self.now + timedelta(minutes=action.minutes if isinstance(action, Wait) else 0)
        self.play_until(until, step)
