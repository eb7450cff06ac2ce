"""The facts of a call that survey results are reported by: the month it came in and the
language it was texted in. The survey page, the open-data export and the dashboard all
need them the same way."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from callerloop.core.agency_config import AgencyConfig
from callerloop.core.db import CallRecord


def call_month(agency: AgencyConfig, call: CallRecord) -> str:
    """The month the call came in, in the agency's time zone ("2025-09")."""
    received = call.received_at or call.updated_at
    return received.astimezone(ZoneInfo(agency.agency.time_zone)).strftime("%Y-%m")


def call_language(agency: AgencyConfig, call: CallRecord) -> str:
    """The language the call was texted in (the workflow's choice)."""
    if call.language in agency.agency.languages:
        return call.language
    return agency.agency.default_language
