"""Storing a survey's answers once, from the survey page or the text thread alike.

Answers are stored with the call's agency, month, priority, call-type group, language
and channel, never with anything that identifies the caller or the call, so they outlive
the purge of the call's personal data and can be published in aggregate. What a
supervisor may follow up goes to the inbox instead (`survey_comments`, with the case
number, purged on retention): a free-text comment, or a low score. It is never stored
with the answers, so they stay untraceable.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from enum import Enum, StrEnum

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from callerloop.core.agency_config import AgencyConfig, SurveyQuestion
from callerloop.core.db import (
    AnsweredSurvey,
    CallRecord,
    SurveyAnswer,
    SurveyComment,
    SurveyResponse,
    utcnow,
)
from callerloop.survey.facts import call_language, call_month

SCORES = ("5", "4", "3", "2", "1")  # shown most positive first
NOT_APPLICABLE = "na"
# An answer this low (on the scale of five) puts the survey in the supervisors' inbox.
LOW_SCORE = 2


class Channel(StrEnum):
    """How the survey was answered: its page (the link in the text) or the text thread."""

    LINK = "link"
    THREAD = "thread"


class StoreOutcome(Enum):
    STORED = "stored"
    REPEATED = "repeated"  # the same answers sent again (a double click): already stored
    ALREADY_ANSWERED = "already_answered"


def already_answered(session: Session, token_hash: str) -> bool:
    return session.get(AnsweredSurvey, token_hash) is not None


def store_answers(
    session: Session,
    *,
    agency: AgencyConfig,
    call: CallRecord,
    token_hash: str,
    submission: str,
    values: Mapping[str, str],
    page_language: str,
    channel: Channel = Channel.LINK,
) -> StoreOutcome:
    """Store checked answers (question id -> "1".."5", "na", free text, or "" for none)
    once per survey: `token_hash` (the link's, or the thread's) is marked answered in the
    same transaction, and its primary key makes a concurrent second answer fail."""
    submission_hash = hashlib.sha256(submission.encode()).hexdigest()
    earlier = session.get(AnsweredSurvey, token_hash)
    if earlier is not None:
        return _repeat_or_refuse(earlier, submission_hash)
    response = SurveyResponse(
        agency=agency.id,
        month=call_month(agency, call),
        priority=call.priority,
        call_type_group=agency.survey.call_type_group(call.call_type),
        language=call_language(agency, call),
        page_language=page_language,
        channel=channel.value,
        comment=None,
    )
    scores: list[tuple[SurveyQuestion, str]] = []
    comment = ""
    for question in agency.survey.questions:
        raw = values.get(question.id, "")
        if question.kind == "comment":
            comment = "\n\n".join(part for part in (comment, raw) if part)
        elif raw:
            scores.append((question, raw))
    if comment or is_low(scores):
        session.add(
            SurveyComment(
                agency=agency.id,
                case_number=call.case_number or call.incident_id,
                score=comment_score(scores),
                low_score=is_low(scores),
                call_type_group=response.call_type_group,
                language=response.language,
                comment=comment,
                created_at=utcnow(),
            )
        )
    session.add(response)
    session.flush()  # gives the response its id
    assert response.id is not None
    for question, raw in scores:
        session.add(
            SurveyAnswer(
                response_id=response.id,
                question=question.id,
                kind=question.kind,
                score=None if raw == NOT_APPLICABLE else int(raw),
                not_applicable=raw == NOT_APPLICABLE,
            )
        )
    session.add(
        AnsweredSurvey(token_hash=token_hash, submission_hash=submission_hash, answered_at=utcnow())
    )
    try:
        session.commit()
    except IntegrityError:  # answered meanwhile, by a concurrent post
        session.rollback()
        earlier = session.get(AnsweredSurvey, token_hash)
        assert earlier is not None
        return _repeat_or_refuse(earlier, submission_hash)
    return StoreOutcome.STORED


def _repeat_or_refuse(earlier: AnsweredSurvey, submission_hash: str) -> StoreOutcome:
    if earlier.submission_hash == submission_hash:
        return StoreOutcome.REPEATED
    return StoreOutcome.ALREADY_ANSWERED


def is_low(scores: list[tuple[SurveyQuestion, str]]) -> bool:
    """Any scale answer of LOW_SCORE or less."""
    return any(raw != NOT_APPLICABLE and int(raw) <= LOW_SCORE for _, raw in scores)


def comment_score(scores: list[tuple[SurveyQuestion, str]]) -> float | None:
    """The score shown beside an inbox item: the "overall" answer if given, else the mean
    of the scale answers (none: every question skipped or "does not apply")."""
    numeric = {q.id: int(raw) for q, raw in scores if raw != NOT_APPLICABLE}
    if "overall" in numeric:
        return float(numeric["overall"])
    return round(sum(numeric.values()) / len(numeric), 1) if numeric else None
