"""What the Temporal UI shows for a call: a one-line summary set at start, and current
details kept up to date by the workflow. Plain words, and never personal data (no phone
number, no caller language, no call type: the UI is seen by more people than the call's
handlers)."""

from __future__ import annotations

from workflows.model import CallState, TextingState, ThreadSurvey

_STATE_WORDS = {
    TextingState.PENDING: "waiting for enough facts to decide",
    TextingState.ACTIVE: "texting the caller",
    TextingState.INELIGIBLE: "not texted",
    TextingState.BLOCKED: "never texted again (safety stop)",
    TextingState.OPTED_OUT: "caller replied STOP",
    TextingState.CAPPED: "text cap reached",
    TextingState.FINISHED: "finished, personal data purged",
}


def summary(agency: str, incident_id: str, priority: int | None) -> str:
    shown = "not set yet" if priority is None else str(priority)
    return f"{agency} · incident {incident_id} · priority {shown}"


def current_details(call: CallState) -> str:
    """Markdown for the UI's workflow page."""
    status = call.status.value.replace("_", " ") if call.status else "not known yet"
    reason = call.decision.reason if call.decision else "no decision yet"
    lines = [
        f"**Call status:** {status} · **priority:** {call.priority or 'not set'}",
        f"**Texting:** {_STATE_WORDS[call.texting_state]} (`{reason}`)",
    ]
    if call.blocked is not None and call.blocked.reason != reason:
        lines.append(f"**Safety stop:** `{call.blocked.reason}`")
    if call.texts:
        sent = ", ".join(
            f"{text.kind.value} ({text.status}, {text.at:%Y-%m-%d %H:%M} UTC)"
            for text in call.texts
        )
        lines.append(f"**Texts:** {sent}")
    else:
        lines.append("**Texts:** none")
    if call.skipped:
        lines.append("**Not sent (no longer news):** " + ", ".join(k.value for k in call.skipped))
    survey = call.thread_survey
    if survey is not None:
        lines.append(f"**Survey in the text thread:** {_thread_words(survey)}")
    lines.append(f"**CAD events:** {call.events_applied} applied, {call.events_ignored} ignored")
    for action in call.operator_actions:
        lines.append(
            f"**Operator:** {action.action} by {action.by} at {action.at:%Y-%m-%d %H:%M} UTC: "
            f"{action.reason}"
        )
    return "  \n".join(lines)


def _thread_words(survey: ThreadSurvey) -> str:
    answered = sum(1 for answer in survey.answers if answer.value)
    total = len(survey.questions)
    if survey.open:
        waiting = "waiting for the answer" if survey.awaiting else "asking"
        return f"question {survey.current + 1} of {total}, {waiting} ({answered} answered)"
    stored = "stored" if survey.stored else "to store"
    return f"ended ({survey.ended}), {answered} of {total} answered, {stored}"
