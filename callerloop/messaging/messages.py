"""Rendering an agency's SMS templates for one call."""

from __future__ import annotations

from dataclasses import dataclass

from callerloop.core.agency_config import AgencyConfig


@dataclass(frozen=True)
class MessageContext:
    case_number: str
    status_url: str = ""
    survey_url: str = ""


def render_message(agency: AgencyConfig, kind: str, language: str, context: MessageContext) -> str:
    """The text of `kind` in `language` (the agency's default when it does not offer it).

    Templates were checked at load to use only known placeholders, so formatting cannot
    fail on a missing key here."""
    templates = agency.templates.get(language) or agency.templates[agency.agency.default_language]
    template: str = getattr(templates, kind)
    return template.format(
        agency_name=agency.agency.name,
        case_number=context.case_number,
        status_url=context.status_url,
        survey_url=context.survey_url,
        non_emergency_phone=agency.agency.non_emergency_phone,
    )
