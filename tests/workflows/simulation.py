"""The workflow's loop without Temporal, for property tests and whole-export checks: the
same `apply_event`, signal facts (`call_state.opt_in`, …), `refresh_decision` and
`lifecycle.next_step` the workflow runs, on a virtual clock. (What the real worker does
under timing and faults is judged by tests/workflows/test_outcome_oracle.py.)"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from tests.workflows.scenarios import Action, Event, Signal, Wait
from workflows import call_state
from workflows.call_state import apply_event
from workflows.lifecycle import next_step, refresh_decision
from workflows.model import CallState, SentText, TextKind
from workflows.policy import AgencyPolicy

START = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


@dataclass
class Simulation:
    """The workflow's loop without Temporal: facts in, decide, plan, 'send'."""

    policy: AgencyPolicy
    call: CallState = field(
        default_factory=lambda: CallState(agency="testville", incident_id="P-1")
    )
    now: datetime = START
    finished: bool = False
    sends: list[tuple[int, TextKind]] = field(default_factory=list)
    survey_waits: list[timedelta] = field(default_factory=list)  # closure to survey

    def run_until(self, until: datetime, step_number: int) -> None:
        while not self.finished:
            refresh_decision(self.call, self.policy)  # as the workflow's loop does
            step = next_step(self.call, self.policy, self.now)
            if step.finished:
                self.finished = True
            elif step.send is not None:
                self.call.texts.append(SentText(kind=step.send, status="sent", at=self.now))
                self.sends.append((step_number, step.send))
                if step.send == TextKind.SURVEY and self.call.closed_at is not None:
                    self.survey_waits.append(self.now - self.call.closed_at)
            elif step.wake_at is not None and step.wake_at <= until:
                self.now = max(self.now, step.wake_at)
            else:
                self.now = max(self.now, until)
                return

    def act(self, action: Action, step: int) -> None:
        if isinstance(action, Event):
            apply_event(self.call, action.event, self.now)
        elif isinstance(action, Signal):
            if action.kind == "opt_out":
                call_state.opt_out(self.call)
            elif action.kind == "opt_in":
                call_state.opt_in(self.call, self.now)
            else:
                call_state.suppress(self.call, "operator")
        until = self.now + timedelta(minutes=action.minutes if isinstance(action, Wait) else 0)
        self.run_until(until, step)
