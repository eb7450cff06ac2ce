"""The survey in the text thread: its questions one at a time, pure, for the call workflow.

An agency that surveys by text (`[survey] delivery = "thread"` or "both") has its survey
text open the thread with the first question. Each answer the caller texts back (a
`SurveyReplySignal`, already read by the inbound handler for a score, SKIP, or "does not
apply") moves it to the next question; a reply it cannot read asks the question once
more, then moves on. It ends:

- completed: the last question answered or skipped (a thanks text follows);
- silence: no answer to a question for the agency's `thread_silence`;
- stopped: the caller opted out, the call stopped texting (a safety stop, an operator),
  reopened, or its lifecycle ended;
- not_sent: a question's text did not go out.

Whatever was answered by then is stored once (`StoreThreadSurveyInput`), in the same tables
and figures as the survey page's. Every text here is still a text of the call: the planner
sends it only while the call may be texted, so a STOP or a call that turns sensitive ends
the questions at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from workflows.model import (
    NOT_SENT,
    AgencyPolicy,
    CallState,
    CallStatus,
    SurveyReplySignal,
    TextKind,
    ThreadAnswer,
    ThreadSurvey,
)

COMPLETED, SILENCE, STOPPED, NOT_SENT_END = "completed", "silence", "stopped", "not_sent"
NOT_APPLICABLE = "na"
SKIPPED = ""
SEEN_MESSAGES_KEPT = 20


def opens_thread(policy: AgencyPolicy, language: str) -> bool:
    """Whether this language's survey asks in the thread (policies recorded before the
    thread have no delivery: the link, as their calls always had)."""
    delivery = policy.survey_delivery.get(language, "link")
    return delivery in ("thread", "both") and bool(policy.thread_questions)


def offers_link(policy: AgencyPolicy, language: str) -> bool:
    return policy.survey_delivery.get(language, "link") in ("link", "both")


def start(call: CallState, policy: AgencyPolicy, language: str, now: datetime) -> None:
    """The survey text went out asking the first question."""
    call.thread_survey = ThreadSurvey(
        language=language,
        questions=list(policy.thread_questions),
        awaiting=True,
        asked_at=now,
    )


def apply_reply(survey: ThreadSurvey, reply: SurveyReplySignal, comment_max: int = 1000) -> bool:
    """The caller's answer to the question asked; False when it changes nothing (no
    question awaits one, or the same message came twice)."""
    if not survey.open or not survey.awaiting:
        return False
    if reply.message_id:
        if reply.message_id in survey.seen_messages:
            return False
        survey.seen_messages = [*survey.seen_messages, reply.message_id][-SEEN_MESSAGES_KEPT:]
    question = survey.questions[survey.current]
    value: str | None
    if reply.skip:
        value = SKIPPED
    elif question.kind == "comment":
        value = reply.body.strip()[:comment_max]
    elif reply.score is not None and 1 <= reply.score <= 5:
        value = str(reply.score)
    elif reply.not_applicable and question.not_applicable:
        value = NOT_APPLICABLE
    else:
        value = None
    survey.awaiting = False
    if value is None and not survey.retry:
        survey.retry = True  # asked once more, with "we did not understand"
        return True
    survey.answers.append(ThreadAnswer(question.id, value or SKIPPED))
    survey.current += 1
    survey.retry = False
    if survey.current >= len(survey.questions):
        survey.ended = COMPLETED
    return True


def settle(call: CallState, policy: AgencyPolicy, now: datetime, *, may_text: bool) -> None:
    """End an open survey whose time is over: a question unanswered for the silence, or
    a call that may no longer text (`may_text`: its texting state is active)."""
    survey = call.thread_survey
    if survey is None or not survey.open:
        return
    if not may_text or call.status != CallStatus.CLEARED:
        survey.ended = STOPPED
    elif survey.awaiting and survey.asked_at is not None and now >= silence_ends(survey, policy):
        survey.ended = SILENCE


def silence_ends(survey: ThreadSurvey, policy: AgencyPolicy) -> datetime:
    assert survey.asked_at is not None
    return survey.asked_at + timedelta(seconds=policy.thread_silence_seconds)


def end(call: CallState) -> None:
    """The lifecycle is over: the survey stops where it is."""
    if call.thread_survey is not None and call.thread_survey.open:
        call.thread_survey.ended = STOPPED


@dataclass(frozen=True)
class ThreadStep:
    send: TextKind | None = None
    wake_at: datetime | None = None


def next_step(call: CallState, policy: AgencyPolicy) -> ThreadStep:
    """The thread's next text (the next question, or the thanks), or when to look again
    (the end of the silence). The planner sends it only while the call may text."""
    survey = call.thread_survey
    if survey is None:
        return ThreadStep()
    if survey.open:
        if not survey.awaiting:
            return ThreadStep(send=TextKind.SURVEY_QUESTION)
        if survey.asked_at is not None:
            return ThreadStep(wake_at=silence_ends(survey, policy))
        return ThreadStep()
    if survey.ended == COMPLETED and not survey.thanked:
        return ThreadStep(send=TextKind.SURVEY_THANKS)
    return ThreadStep()


def after_send(call: CallState, kind: TextKind, status: str, now: datetime) -> None:
    """A thread text's outcome: a question that went out awaits its answer."""
    survey = call.thread_survey
    if survey is None:
        return
    if kind == TextKind.SURVEY_THANKS:
        survey.thanked = True
    elif kind == TextKind.SURVEY_QUESTION and survey.open:
        if status in NOT_SENT:
            survey.ended = NOT_SENT_END
        else:
            survey.awaiting = True
            survey.asked_at = now


def to_store(call: CallState) -> list[ThreadAnswer] | None:
    """The answers of an ended survey not stored yet (None: nothing to store)."""
    survey = call.thread_survey
    if survey is None or survey.open or survey.stored:
        return None
    return survey.answers


def has_answers(answers: list[ThreadAnswer]) -> bool:
    """A survey with every question skipped is no response."""
    return any(answer.value for answer in answers)
