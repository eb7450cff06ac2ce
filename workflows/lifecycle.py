"""What a call should do next: a pure planner over the call's state and its agency policy.

The workflow asks `plan` after every change and every timer, and again while a text is on
its way (a text the plan no longer asks for is withdrawn); the planner answers with at
most one text to send now, the kinds that no longer make sense, and when to look again.
Keeping this pure lets property-based tests drive thousands of event sequences through
the same logic the workflow runs.

No stale text, by rule (calls started under `workflows.versions.SAFE_SENDS`):
- a text tells a stage of the call: confirmation < delay notice < unit assigned <
  closing note < survey. No text follows a text of a later stage; a reopen starts the
  stages again. A delay notice goes only while no unit is assigned.
- after the caller's START, a stage the call reached while they had opted out is no
  longer news: only stages reached after the START are texted (START never bursts).
- the survey goes only inside its window; the planner ends the call when it closes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from workflows import thread_survey
from workflows.model import (
    NOT_SENT,
    STAGE_KINDS,
    CallState,
    CallStatus,
    Decision,
    TextingState,
    TextKind,
)
from workflows.policy import AgencyPolicy, EligibilityReason, decide
from workflows.quiet_hours import wait_out_quiet_hours

# Denials that only mean "not known yet": the call may still become eligible.
_INCOMPLETE = frozenset(
    {
        EligibilityReason.SOURCE_UNKNOWN.value,
        EligibilityReason.CALL_TYPE_UNKNOWN.value,
        EligibilityReason.PRIORITY_UNKNOWN.value,
        EligibilityReason.NO_PHONE.value,
    }
)


@dataclass
class Plan:
    send: TextKind | None = None
    skip: list[TextKind] = field(default_factory=list)
    wake_at: datetime | None = None
    finished: bool = False


def cap_reached(call: CallState, policy: AgencyPolicy) -> bool:
    return call.texts_counted() >= policy.max_texts_per_call


# The stage each text tells, in the order a call goes through them.
STAGE_ORDER: dict[TextKind, int] = {
    TextKind.CONFIRMATION: 0,
    TextKind.DELAYED: 1,
    TextKind.ASSIGNED: 2,
    TextKind.CLEARED: 3,
    TextKind.SURVEY: 4,
    TextKind.SURVEY_QUESTION: 4,
    TextKind.SURVEY_THANKS: 4,
}


def texting_state(
    call: CallState, policy: AgencyPolicy, decision: Decision | None = None
) -> TextingState:
    """The call's texting state under `decision` (default: the call's last one)."""
    decision = decision or call.decision
    if call.purged:
        return TextingState.FINISHED
    if call.blocked is not None or (decision is not None and decision.permanent):
        return TextingState.BLOCKED
    if call.opted_out:
        return TextingState.OPTED_OUT
    if decision is None or decision.reason in _INCOMPLETE:
        return TextingState.PENDING
    if not decision.eligible:
        return TextingState.INELIGIBLE
    if cap_reached(call, policy):
        return TextingState.CAPPED
    return TextingState.ACTIVE


def current_texting_state(call: CallState, policy: AgencyPolicy) -> TextingState:
    """The texting state the facts give now, without changing the call: for a validator
    or handler that must not trust a state the main loop has not recomputed yet."""
    return texting_state(call, policy, decide(call, policy))


def refresh_decision(call: CallState, policy: AgencyPolicy) -> Decision:
    """Re-decide eligibility from the call's current facts and latch a safety stop."""
    decision = decide(call, policy)
    if decision.permanent and call.blocked is None:
        call.blocked = decision
    call.decision = decision
    call.texting_state = texting_state(call, policy)
    return decision


def survey_due_at(call: CallState, policy: AgencyPolicy) -> datetime | None:
    """When the survey goes out: the survey delay after closure, moved past quiet hours.

    Fixed at closure, so a deferral is computed once (under a time scale the wall clock
    may still be in the night when a scaled deferral ends)."""
    if call.closed_at is None:
        return None
    due = call.closed_at + timedelta(seconds=policy.survey_delay_seconds)
    wait = wait_out_quiet_hours(due, policy.quiet_hours, policy.time_zone)
    return due + wait / policy.time_scale


def finish_at(
    call: CallState, policy: AgencyPolicy, *, window_after_deferral: bool = True
) -> datetime | None:
    """When the lifecycle ends and personal data is purged.

    A closed call waits for its survey's window to pass, counted from when the survey
    falls due: after quiet hours when it falls due in them. (Calls started before
    `window_after_deferral` count from closure plus the delay, as they always have: a
    survey window shorter than the quiet hours then ended such a call before its survey.)"""
    window = timedelta(seconds=policy.survey_window_seconds)
    survey = next((t for t in call.texts if t.kind == TextKind.SURVEY), None)
    if survey is not None:
        return survey.at + window
    if call.status is not None and call.status.is_closed and call.closed_at is not None:
        if call.blocked is not None:
            return call.closed_at  # nothing can ever be texted: no reason to wait for a reopen
        if window_after_deferral:
            due = survey_due_at(call, policy)
            assert due is not None  # the call is closed
            return due + window
        return call.closed_at + timedelta(seconds=policy.survey_delay_seconds) + window
    if call.received_at is not None:
        return call.received_at + timedelta(seconds=policy.max_open_seconds)
    return None


def latest_stage_told(call: CallState) -> int:
    """The latest stage a text of this cycle told the caller (-1: none yet); a reopen
    starts a new cycle."""
    since = call.reopened_at
    told = [
        STAGE_ORDER[text.kind]
        for text in call.texts
        if text.status not in NOT_SENT and (since is None or text.at >= since)
    ]
    return max(told, default=-1)


def overtaken(call: CallState, kind: TextKind) -> bool:
    """A text of a later stage already went: this one would tell the caller old news."""
    return latest_stage_told(call) > STAGE_ORDER[kind]


def stage_reached_at(call: CallState, kind: TextKind, policy: AgencyPolicy) -> datetime | None:
    """When the call reached the stage this kind of text tells (workflow clock)."""
    if kind == TextKind.CONFIRMATION:
        return call.received_at
    if kind == TextKind.ASSIGNED:
        return call.unit_assigned_at
    if kind == TextKind.DELAYED:
        threshold = policy.delay_threshold_seconds(call.priority)
        times = [call.delay_reported_at] if call.delay_reported_at else []
        if threshold is not None and call.received_at is not None:
            times.append(call.received_at + timedelta(seconds=threshold))
        return min(times, default=None)
    if kind == TextKind.CLEARED:
        return call.closed_at
    return survey_due_at(call, policy)


def held_back(call: CallState, kind: TextKind, policy: AgencyPolicy) -> bool:
    """The call reached this stage while the caller had opted out: after their START it
    is no longer news (so START never lets a backlog of texts through). A stage reached
    in the same workflow task as the START (one clock reading for both, their order
    unknown) counts as before it: the safe side."""
    resumed = call.texting_resumed_at
    if resumed is None:
        return False
    reached = stage_reached_at(call, kind, policy)
    return reached is not None and reached <= resumed


def next_step(
    call: CallState,
    policy: AgencyPolicy,
    now: datetime,
    *,
    window_after_deferral: bool = True,
    stages_in_order: bool = True,
) -> Plan:
    """The workflow's main loop step, pure, once the call's decision is current
    (`refresh_decision`): plan, and note the texts the plan skips. The workflow runs it
    between its I/O (records, lookups, sends); `workflows.offline` runs it on a
    virtual clock."""
    step = plan(
        call,
        policy,
        now,
        window_after_deferral=window_after_deferral,
        stages_in_order=stages_in_order,
    )
    call.skipped.extend(step.skip)
    return step


def plan(
    call: CallState,
    policy: AgencyPolicy,
    now: datetime,
    *,
    window_after_deferral: bool = True,
    stages_in_order: bool = True,
    resend: bool = True,
) -> Plan:
    """The next step for this call at `now` (`window_after_deferral`: see `finish_at`;
    `stages_in_order`: the rules on stale texts in this module's docstring, which calls
    started before them do without; `resend`: whether an operator's pending resend of
    the confirmation counts, as it does but while another text is on its way)."""
    end = finish_at(call, policy, window_after_deferral=window_after_deferral)
    if end is not None and now >= end:
        return Plan(finished=True)
    wakes: list[datetime] = [end] if end is not None else []
    decision: Decision | None = call.decision
    if decision is None or not decision.eligible:
        return Plan(wake_at=min(wakes, default=None))
    # The survey in the thread answers the caller: its texts are not held to the cap.
    thread = thread_survey.next_step(call, policy)
    if thread.send is not None and call.status == CallStatus.CLEARED:
        return Plan(send=thread.send, wake_at=min(wakes, default=None))
    if thread.wake_at is not None:
        wakes.append(thread.wake_at)
    if cap_reached(call, policy):
        return Plan(wake_at=min(wakes, default=None))

    status = call.status
    closed = status is not None and status.is_closed
    if (
        resend
        and call.confirmation_resend_requested
        and not (stages_in_order and (closed or overtaken(call, TextKind.CONFIRMATION)))
    ):
        return Plan(send=TextKind.CONFIRMATION, wake_at=min(wakes, default=None))
    pending = [kind for kind in STAGE_KINDS if not call.sent(kind) and kind not in call.skipped]
    skip: list[TextKind] = []

    def next_step(send: TextKind | None) -> Plan:
        return Plan(send=send, skip=skip, wake_at=min(wakes, default=None))

    # While the call is closed nothing but the closing note and the survey can go; a
    # reopened call picks up where it was (a new unit, a delay).
    for kind in pending:
        if stages_in_order and (overtaken(call, kind) or held_back(call, kind, policy)):
            continue
        if kind == TextKind.CONFIRMATION:
            if closed:
                skip.append(kind)  # closed before we could confirm: the closing note says it all
                continue
            return next_step(kind)
        if kind == TextKind.ASSIGNED:
            if not closed and status is not None and status.has_unit:
                return next_step(kind)
        elif kind == TextKind.DELAYED:
            if closed or (stages_in_order and status is not None and status.has_unit):
                continue
            if call.delay_reported:
                return next_step(kind)
            threshold = policy.delay_threshold_seconds(call.priority)
            if threshold is not None and call.unit_assigned_at is None and call.received_at:
                due = call.received_at + timedelta(seconds=threshold)
                if now >= due:
                    return next_step(kind)
                wakes.append(due)
        elif kind == TextKind.CLEARED:
            if status == CallStatus.CLEARED:
                return next_step(kind)
        elif kind == TextKind.SURVEY:
            survey_due = survey_due_at(call, policy) if status == CallStatus.CLEARED else None
            if survey_due is not None:
                if now >= survey_due:
                    return next_step(kind)
                wakes.append(survey_due)
    return next_step(None)
