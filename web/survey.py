"""The survey: the agency's questions as a form, the answers checked, and stored once.

Answers are stored with the call's agency, month, priority, call-type group and language,
never with anything that identifies the caller or the call, so they outlive the purge of
the call's personal data and can be published in aggregate. A free-text comment goes to
supervisors instead (`survey_comments`, with the case number, purged on retention): it is
never stored with the answers, so they stay untraceable.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

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
from callerloop.opendata.survey_facts import call_language, call_month
from web.i18n import N_

SCORES = ("5", "4", "3", "2", "1")  # shown most positive first
NOT_APPLICABLE = "na"

QUESTION_TEXTS = {
    "call_taker": N_("How satisfied were you with the person who answered your call?"),
    "officer": N_("How satisfied were you with the officer who came?"),
    "overall": N_("Overall, how satisfied were you with how we handled your call?"),
    "respect": N_("I was treated with respect."),
    "comment": N_("Is there anything else you would like to tell us?"),
}
SCALE_LABELS = {
    "satisfaction": {
        "5": N_("Very satisfied"),
        "4": N_("Satisfied"),
        "3": N_("Neither satisfied nor dissatisfied"),
        "2": N_("Dissatisfied"),
        "1": N_("Very dissatisfied"),
    },
    "agreement": {
        "5": N_("Strongly agree"),
        "4": N_("Agree"),
        "3": N_("Neither agree nor disagree"),
        "2": N_("Disagree"),
        "1": N_("Strongly disagree"),
    },
}
NOT_APPLICABLE_LABELS = {"officer": N_("No officer came")}
NOT_APPLICABLE_LABEL = N_("Does not apply to me")
ERROR_REQUIRED = N_("Choose an answer.")
ERROR_UNKNOWN_CHOICE = N_("Choose one of the answers shown.")
ERROR_TOO_LONG = N_("Your comment is too long: at most %(max)s characters.")


def field_name(question: SurveyQuestion) -> str:
    return f"q_{question.id}"


@dataclass
class Answers:
    """A form's answers as typed (to show them again) and what is wrong with them."""

    values: dict[str, str] = field(default_factory=dict)  # question id -> raw value
    errors: dict[str, str] = field(default_factory=dict)  # question id -> message id
    error_arguments: dict[str, dict[str, int]] = field(default_factory=dict)


def read_answers(agency: AgencyConfig, form: Mapping[str, str]) -> Answers:
    """Check a submitted form against the agency's questions; unknown fields are ignored."""
    answers = Answers()
    for question in agency.survey.questions:
        raw = form.get(field_name(question), "").strip()
        answers.values[question.id] = raw
        if question.kind == "comment":
            limit = agency.survey.comment_max_length
            if len(raw) > limit:
                answers.errors[question.id] = ERROR_TOO_LONG
                answers.error_arguments[question.id] = {"max": limit}
            elif not raw and question.is_required:
                answers.errors[question.id] = ERROR_REQUIRED
            continue
        allowed = (*SCORES, NOT_APPLICABLE) if question.not_applicable else SCORES
        if not raw:
            if question.is_required:
                answers.errors[question.id] = ERROR_REQUIRED
        elif raw not in allowed:
            answers.errors[question.id] = ERROR_UNKNOWN_CHOICE
    return answers


class StoreOutcome(Enum):
    STORED = "stored"
    REPEATED = "repeated"  # the same form posted again (a double click): already stored
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
    answers: Answers,
    page_language: str,
) -> StoreOutcome:
    """Store a checked form once per survey link: the link is marked answered in the same
    transaction, and its primary key makes a concurrent second answer fail."""
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
        comment=None,
    )
    scores: list[tuple[SurveyQuestion, str]] = []
    comment = ""
    for question in agency.survey.questions:
        raw = answers.values.get(question.id, "")
        if question.kind == "comment":
            comment = "\n\n".join(part for part in (comment, raw) if part)
        elif raw:
            scores.append((question, raw))
    if comment:
        session.add(
            SurveyComment(
                agency=agency.id,
                case_number=call.case_number or call.incident_id,
                score=comment_score(scores),
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


def comment_score(scores: list[tuple[SurveyQuestion, str]]) -> float | None:
    """The score shown beside a comment: the "overall" answer if given, else the mean of
    the scale answers (none: every question skipped or "does not apply")."""
    numeric = {q.id: int(raw) for q, raw in scores if raw != NOT_APPLICABLE}
    if "overall" in numeric:
        return float(numeric["overall"])
    return round(sum(numeric.values()) / len(numeric), 1) if numeric else None
