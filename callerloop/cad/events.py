"""CAD events at the edge: JSON in, a validated `CadEvent` out, or an error that says
what is wrong and where.

Every value accepted here can be applied by the call's workflow: strings within the
lengths of `workflows.cad_limits` and without control characters, a priority on the
agency's scale (and so within the int64 of the CallPriority search attribute), a time
from 2000 up to two days ahead of the wall clock. An event without an id gets the one
`workflows.event_identity` derives from its content, as on every other entry path.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError

from callerloop.core.agency_config import AgencyConfig
from callerloop.messaging.phones import InvalidPhoneNumber, line_type, to_e164
from workflows.cad_limits import (
    MAX_LENGTHS,
    occurred_at_problem,
    priority_problem,
    text_problem,
)
from workflows.event_identity import with_event_id
from workflows.model import CadEvent
from workflows.policy import call_type_problem

_EVENT = TypeAdapter(CadEvent)
_LANGUAGE_CODE = re.compile(r"[A-Za-z]{2}")


class InvalidCadEvent(ValueError):
    """A CAD event that cannot be accepted; the message names the field and the problem."""


class UnknownAgency(InvalidCadEvent):
    """The event names an agency that is not among those it may be sent for. The message
    names only that agency: the others are no business of whoever sent it."""

    def __init__(self, where: str, agency: str) -> None:
        super().__init__(f"{where}.agency: unknown agency {agency!r}")
        self.where = where
        self.agency = agency


def parse_cad_event(
    data: Mapping[str, Any], agencies: Mapping[str, AgencyConfig], where: str = "event"
) -> CadEvent:
    """Validate one event (already decoded from JSON) against its agency, one of
    `agencies` (the ones its sender may send for)."""
    try:
        # Strict JSON types, as the schema promises: `"priority": false` or `"4"`, or
        # `"in_progress": 1`, is a mistake to refuse, not to coerce.
        event = _EVENT.validate_json(json.dumps(dict(data)), strict=True)
    except ValidationError as error:
        raise InvalidCadEvent(_describe(error, where)) from None
    # Bounded before it is looked up, so an error never echoes a megabyte back.
    agency_problem = text_problem(event.agency, MAX_LENGTHS["agency"])
    if agency_problem is not None:
        raise InvalidCadEvent(f"{where}.agency: {agency_problem}")
    agency = agencies.get(event.agency)
    if agency is None:
        raise UnknownAgency(where, event.agency)
    return normalise_event(event, agency, where)


def normalise_event(event: CadEvent, agency: AgencyConfig, where: str = "event") -> CadEvent:
    """Checks beyond types (ids present, bounded strings, priority on the agency's scale,
    aware and plausible time, E.164 phone, known line type), then the derived id."""
    problems = event_problems(event, agency, datetime.now(UTC))
    phone, line = event.caller_phone, event.caller_line_type
    if phone is not None and "caller_phone" not in problems:
        try:
            phone = to_e164(phone, agency.agency.phone_region)
            line = line_type(phone, event.caller_line_type)
        except InvalidPhoneNumber as error:
            problems["caller_phone"] = str(error)
    if problems:
        raise InvalidCadEvent("; ".join(f"{where}.{f}: {p}" for f, p in problems.items()))
    return with_event_id(replace(event, caller_phone=phone, caller_line_type=line))


def event_problems(event: CadEvent, agency: AgencyConfig, now: datetime) -> dict[str, str]:
    """What is wrong with each field of the event that cannot be applied, field by field
    (one problem each); empty when every value can be."""
    problems: dict[str, str] = {}
    if not event.incident_id.strip():
        problems["incident_id"] = "must not be empty"
    if event.occurred_at.tzinfo is None or event.occurred_at.utcoffset() is None:
        problems["occurred_at"] = "needs a UTC offset, e.g. 2025-08-24T00:07:06-04:00"
    elif (when := occurred_at_problem(event.occurred_at, now)) is not None:
        problems["occurred_at"] = when
    if event.call_type is not None and (problem := call_type_problem(event.call_type)):
        problems["call_type"] = problem
    language = event.caller_language
    if language is not None and not _LANGUAGE_CODE.fullmatch(language):
        problems["caller_language"] = "expected a two-letter ISO 639-1 code like 'es'"
    if event.priority is not None:
        priority = priority_problem(event.priority, agency.cad.priority_scale.bounds)
        if priority is not None:
            problems["priority"] = priority
    for name, max_length in MAX_LENGTHS.items():
        value = getattr(event, name)
        if name not in problems and isinstance(value, str):
            problem = text_problem(value, max_length)
            if problem is not None:
                problems[name] = problem
    return problems


def decode_json(text: str, where: str) -> Any:
    """JSON from outside, or an InvalidCadEvent saying where the syntax breaks."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidCadEvent(
            f"{where}: not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
    except ValueError:  # Python refuses to read an integer of thousands of digits
        raise InvalidCadEvent(
            f"{where}: a number too long to read (over {sys.get_int_max_str_digits()} digits)"
        ) from None


def parse_cad_json(text: str, agencies: Mapping[str, AgencyConfig], where: str) -> list[CadEvent]:
    """One event object or a list of them."""
    data = decode_json(text, where)
    items = data if isinstance(data, list) else [data]
    events = []
    for index, item in enumerate(items):
        item_where = f"{where}[{index}]" if isinstance(data, list) else where
        if not isinstance(item, dict):
            raise InvalidCadEvent(
                f"{item_where}: expected a JSON object, got {type(item).__name__}"
            )
        events.append(parse_cad_event(item, agencies, item_where))
    return events


def _describe(error: ValidationError, where: str) -> str:
    parts = []
    for detail in error.errors():
        path = ".".join([where, *(str(p) for p in detail["loc"])])
        message = detail["msg"]
        if detail["type"] == "unexpected_keyword_argument":
            message = "unknown field (not part of the CAD event schema)"
        parts.append(f"{path}: {message}")
    return "; ".join(parts)
