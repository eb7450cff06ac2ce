"""The survey page's form: the agency's questions as fields, the answers checked.
Storing them is `callerloop.survey.responses`'s, shared with the text thread."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from callerloop.core.agency_config import AgencyConfig, SurveyQuestion
from callerloop.survey.responses import NOT_APPLICABLE, SCORES
from web.i18n import N_

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
