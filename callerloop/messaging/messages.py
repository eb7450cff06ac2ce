"""Rendering an agency's SMS templates for one call: what each text of a call says."""

from __future__ import annotations

from dataclasses import dataclass

from callerloop.core.agency_config import AgencyConfig
from workflows.model import SendTextInput, TextKind


class UnknownQuestion(ValueError):
    """A survey question the agency's file no longer has (it changed since the survey began)."""


@dataclass(frozen=True)
class MessageContext:
    case_number: str
    status_url: str = ""
    survey_url: str = ""
    officer: str = ""


def render_message(agency: AgencyConfig, kind: str, language: str, context: MessageContext) -> str:
    """The text of `kind` in `language` (the agency's default when it does not offer it).

    Templates were checked at load to use only known placeholders, so formatting cannot
    fail on a missing key here."""
    templates = agency.templates.get(language) or agency.templates[agency.agency.default_language]
    template: str = getattr(templates, kind)
    return render_message_text(agency, template, context)


def render_message_text(agency: AgencyConfig, template: str, context: MessageContext) -> str:
    """One template's text for the call (placeholders were checked at load)."""
    return template.format(
        agency_name=agency.agency.name,
        case_number=context.case_number,
        status_url=context.status_url,
        survey_url=context.survey_url,
        non_emergency_phone=agency.agency.non_emergency_phone,
        officer=context.officer,
    )


def render_text(agency: AgencyConfig, input: SendTextInput, context: MessageContext) -> str:
    """The text of one send of a call, as the outbox stores it and the dry run counts it."""
    if input.kind in (TextKind.SURVEY_QUESTION, TextKind.SURVEY_THANKS) or (
        input.kind == TextKind.SURVEY and input.survey_question
    ):
        return thread_text(agency, input, context)
    return stage_text(agency, input, context)


def stage_text(agency: AgencyConfig, input: SendTextInput, context: MessageContext) -> str:
    """A stage's text, richer where the agency chooses: the officer named in the assigned
    text (when CAD names one), the call-type group's resources after the closing note."""
    kind = input.kind.value
    if input.kind == TextKind.ASSIGNED and input.officer and agency.texts.name_the_officer:
        kind = "assigned_officer"
    text = render_message(agency, kind, input.language, context)
    if input.kind == TextKind.CLEARED:
        note = agency.closing_note(input.call_type, input.language)
        if note:
            text = f"{text} {render_message_text(agency, note, context)}"
    return text


def thread_text(agency: AgencyConfig, input: SendTextInput, context: MessageContext) -> str:
    """A text of the survey in the thread: the survey text opening it (with the link when
    the agency offers both) and its first question, a question (asked again after a reply
    not understood), or the thanks."""
    language = input.language
    if input.kind == TextKind.SURVEY_THANKS:
        return render_message(agency, "survey_thanks", language, context)
    try:
        question = agency.thread_question_text(input.survey_question, language)
    except ValueError as error:
        raise UnknownQuestion(str(error)) from error
    if input.kind == TextKind.SURVEY:
        opening = "survey_thread_link" if input.survey_link else "survey_thread"
        return f"{render_message(agency, opening, language, context)} {question}"
    if input.survey_retry:
        return f"{render_message(agency, 'survey_retry', language, context)} {question}"
    return question
