"""CAD events at the edge: JSON in, a validated `CadEvent` out, or an error that says
what is wrong and where."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, replace
from typing import Any

from pydantic import TypeAdapter, ValidationError

from callerloop.agency_config import AgencyConfig
from callerloop.phones import InvalidPhoneNumber, line_type, to_e164
from workflows.model import CadEvent

_EVENT = TypeAdapter(CadEvent)


class InvalidCadEvent(ValueError):
    """A CAD event that cannot be accepted; the message names the field and the problem."""


def event_fingerprint(event: CadEvent) -> str:
    """A stable id for an event the CAD sent without one: the same content, the same id,
    so a resent event is recognised as a duplicate."""
    content = {k: v for k, v in asdict(event).items() if k != "event_id"}
    digest = hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode())
    return f"sha256:{digest.hexdigest()[:32]}"


def parse_cad_event(
    data: Mapping[str, Any], agencies: Mapping[str, AgencyConfig], where: str = "event"
) -> CadEvent:
    """Validate one event (already decoded from JSON) against its agency."""
    try:
        # Strict JSON types, as the schema promises: `"priority": false` or `"4"`, or
        # `"in_progress": 1`, is a mistake to refuse, not to coerce.
        event = _EVENT.validate_json(json.dumps(dict(data)), strict=True)
    except ValidationError as error:
        raise InvalidCadEvent(_describe(error, where)) from None
    agency = agencies.get(event.agency)
    if agency is None:
        raise InvalidCadEvent(
            f"{where}.agency: unknown agency {event.agency!r}; configured: {sorted(agencies)}"
        )
    return normalise_event(event, agency, where)


def normalise_event(event: CadEvent, agency: AgencyConfig, where: str = "event") -> CadEvent:
    """Checks beyond types: ids present, aware time, E.164 phone, known line type."""
    problems = []
    if not event.incident_id.strip():
        problems.append("incident_id: must not be empty")
    if event.occurred_at.tzinfo is None:
        problems.append("occurred_at: needs a UTC offset, e.g. 2025-08-24T00:07:06-04:00")
    if event.caller_language is not None and len(event.caller_language) != 2:
        problems.append("caller_language: expected a two-letter ISO 639-1 code like 'es'")
    phone, line = event.caller_phone, event.caller_line_type
    if phone is not None:
        try:
            phone = to_e164(phone, agency.agency.phone_region)
            line = line_type(phone, event.caller_line_type)
        except InvalidPhoneNumber as error:
            problems.append(f"caller_phone: {error}")
    if problems:
        raise InvalidCadEvent("; ".join(f"{where}.{p}" for p in problems))
    event = replace(event, caller_phone=phone, caller_line_type=line)
    if not event.event_id:
        event = replace(event, event_id=event_fingerprint(event))
    return event


def decode_json(text: str, where: str) -> Any:
    """JSON from outside, or an InvalidCadEvent saying where the syntax breaks."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidCadEvent(
            f"{where}: not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
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
