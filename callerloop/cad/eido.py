"""NENA-STA-021 EIDO (Emergency Incident Data Object) JSON in, `CadEvent`s out.

An EIDO is a full snapshot of an incident, so every document becomes one status event
carrying the whole picture (priority, call type, caller callback), plus a DELAYED event
when a unit reports the `Delayed` secondary status. Event ids are derived from the events'
content (`workflows.event_identity`, as for any CAD event without an id): a re-sent EIDO
is a duplicate. Values are bounded as for any CAD event (`workflows.cad_limits`), each
error naming the document's path.

Choices the standard leaves open:
- incident id: `incidentComponent.internalIncidentId` (the CAD's own incident number, also
  the case number callers are texted) or, failing that, the document's `$id` (the i3
  incident tracking id `urn:emergency:uid:incidentid:…`).
- no `incidentComponent` (a call-transfer EIDO from a PSAP, like NENA's sample): the
  incident is new to us, so CREATED without priority or call type.
- `Active` is CREATED while no emergency resource is listed, UPDATED once one is (a
  CREATED after dispatch would move the call back to "received").
- source: EIDO has no officer-initiated flag. A call from a PSAP is caller-originated:
  911 when the call is `emergency` (or no call component says otherwise), `phone` for any
  other primary call type; officer-initiated when the incident type is one of the
  mapping's `officer_initiated_types` (e.g. TRAFFIC STOP, ON VIEW).
- caller language: the caller person's NIEM `PersonPrimaryLanguage.LanguageCode`; a code
  whose primary subtag is not two letters is ignored (the agency's default applies).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from callerloop.cad.events import InvalidCadEvent, normalise_event
from callerloop.cad.replay import ReplayCall
from callerloop.core.agency_config import AgencyConfig, EidoMapping, PriorityBand
from callerloop.messaging.phones import InvalidPhoneNumber, to_e164
from workflows.cad_limits import MAX_LENGTHS, MAX_TEXT_LENGTH, occurred_at_problem, text_problem
from workflows.model import CadEvent, CadEventType, CallSource, LineType
from workflows.policy import CALLER_SOURCES

__all__ = [
    "EidoMapping",
    "InvalidEido",
    "PriorityBand",
    "eido_mapping_for",
    "eido_to_events",
    "events_to_eido",
]


class InvalidEido(ValueError):
    """An EIDO document that cannot be accepted; the message names the JSON path."""


# --- mapping configuration ---------------------------------------------------------------


def eido_mapping_for(agency: AgencyConfig) -> EidoMapping:
    """The agency's `[eido]` section; without `priority_bands`, EIDO's 0-10 spread evenly
    over the agency's priority scale."""
    mapping = agency.eido
    if mapping.priority_bands:
        return mapping
    levels = max([*agency.eligibility.priorities, *agency.cad.priorities.values(), 1])
    bands = _even_bands(min(levels, 11), agency.eligibility.lower_priority_is_more_urgent)
    return mapping.model_copy(update={"priority_bands": bands})


def _even_bands(levels: int, lower_is_more_urgent: bool) -> list[PriorityBand]:
    bands = []
    for rank in range(levels):  # rank 0 is the most urgent
        min_eido = math.ceil(11 * (levels - rank - 1) / levels)
        priority = rank + 1 if lower_is_more_urgent else levels - rank
        bands.append(PriorityBand(min_eido=min_eido, priority=priority))
    return sorted(bands, key=lambda band: band.min_eido, reverse=True)


# --- EIDO -> events ----------------------------------------------------------------------

_STATUS_EVENTS: dict[str, CadEventType] = {
    "Active": CadEventType.CREATED,
    "ResourcesAssigned": CadEventType.ASSIGNED,
    "ResourcesEnroute": CadEventType.ENROUTE,
    "ResourcesOnscene": CadEventType.ON_SCENE,
    "Closed": CadEventType.CLEARED,
    "Cancelled": CadEventType.CANCELLED,
    "ReOpened": CadEventType.REOPENED,
}
# When a document lists several statuses, the most advanced one wins.
_STATUS_PRECEDENCE = (
    "Cancelled",
    "Closed",
    "ReOpened",
    "ResourcesOnscene",
    "ResourcesEnroute",
    "ResourcesAssigned",
    "Active",
)
_DELAYED = "Delayed"
_EMERGENCY_CALL = "emergency"
_CALLER_ROLE = "Caller"


def eido_to_events(
    document: Mapping[str, Any], agency: AgencyConfig, mapping: EidoMapping, where: str = "eido"
) -> list[CadEvent]:
    """The events one EIDO document stands for, or InvalidEido naming the bad path."""
    doc = _object(document, where)
    occurred_at = _timestamp(doc.get("lastUpdateTimeStamp"), f"{where}.lastUpdateTimeStamp")
    incident = _optional_object(doc, "incidentComponent", where)
    incident_where = f"{where}.incidentComponent"
    incident_id, case_number = _incident_id(doc, incident, where)
    resources = _objects(doc, "emergencyResourceComponent", where)
    call_type = _call_type(incident, mapping, incident_where)
    event = CadEvent(
        agency=agency.id,
        incident_id=incident_id,
        event_type=_event_type(incident, bool(resources), incident_where),
        occurred_at=occurred_at,
        case_number=case_number,
        priority=_priority(incident, mapping, incident_where),
        call_type=call_type,
        source=_source(doc, call_type, mapping, where),
        caller_phone=_caller_phone(doc, agency, where),
        caller_language=_caller_language(doc, where),
    )
    events = [event]
    if _any_delayed(resources, f"{where}.emergencyResourceComponent"):
        events.append(replace(event, event_type=CadEventType.DELAYED))
    return [_finish(e, agency, where) for e in events]


def _finish(event: CadEvent, agency: AgencyConfig, where: str) -> CadEvent:
    """The same checks as any CAD event (E.164, line type, bounds, …) and the same id
    derived from the content."""
    if event.caller_phone is not None:
        event.caller_line_type = LineType.UNKNOWN  # EIDO carries no class of service
    try:
        return normalise_event(event, agency, where)
    except InvalidCadEvent as error:
        raise InvalidEido(str(error)) from None


def _incident_id(
    doc: Mapping[str, Any], incident: Mapping[str, Any] | None, where: str
) -> tuple[str, str]:
    if incident is not None and "internalIncidentId" in incident:
        internal = _text(
            incident["internalIncidentId"],
            f"{where}.incidentComponent.internalIncidentId",
            MAX_LENGTHS["incident_id"],
        )
        return internal, internal
    if "$id" not in doc:
        raise InvalidEido(
            f"{where}: needs incidentComponent.internalIncidentId or the document $id"
        )
    tracking = _text(doc["$id"], f"{where}.$id", MAX_LENGTHS["incident_id"])
    return tracking, tracking


def _event_type(
    incident: Mapping[str, Any] | None, has_resources: bool, where: str
) -> CadEventType:
    if incident is None:
        return CadEventType.CREATED  # a call transfer: the incident is new to us
    key = "incidentStatusCommonRegistryText"
    statuses = _strings(incident.get(key, []), f"{where}.{key}")
    for index, status in enumerate(statuses):
        if status not in _STATUS_EVENTS:
            raise InvalidEido(
                f"{where}.{key}[{index}]: expected one of {', '.join(_STATUS_EVENTS)}; "
                f"got {status!r}"
            )
    chosen = next((s for s in _STATUS_PRECEDENCE if s in statuses), "Active")
    if chosen == "Active" and has_resources:
        return CadEventType.UPDATED
    return _STATUS_EVENTS[chosen]


def _priority(incident: Mapping[str, Any] | None, mapping: EidoMapping, where: str) -> int | None:
    if incident is None or "incidentCommonPriorityNumber" not in incident:
        return mapping.default_priority
    value = incident["incidentCommonPriorityNumber"]
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10:
        raise InvalidEido(
            f"{where}.incidentCommonPriorityNumber: expected an integer 0-10; got {value!r}"
        )
    return mapping.priority_for(value)


def _call_type(incident: Mapping[str, Any] | None, mapping: EidoMapping, where: str) -> str | None:
    if incident is None:
        return None
    key = "incidentTypeCommonRegistryText"
    if key not in incident:
        raise InvalidEido(f"{where}.{key}: required (an APCO ANS 2.103.2 incident type)")
    code = _text(incident[key], f"{where}.{key}")
    return mapping.call_type_for(code)


def _source(
    doc: Mapping[str, Any], call_type: str | None, mapping: EidoMapping, where: str
) -> CallSource:
    officer = {t.upper() for t in mapping.officer_initiated_types}
    if call_type is not None and call_type.upper() in officer:
        return CallSource.OFFICER
    for index, call in enumerate(_objects(doc, "callComponent", where)):
        call_where = f"{where}.callComponent[{index}].standardPrimaryCallType"
        kind = call.get("standardPrimaryCallType", _EMERGENCY_CALL)
        if _text(kind, call_where).lower() != _EMERGENCY_CALL:
            return CallSource.PHONE
    return CallSource.E911


def _caller_phone(doc: Mapping[str, Any], agency: AgencyConfig, where: str) -> str | None:
    """The first callback URI that is a valid number; none usable leaves the phone unknown
    (a SIP URI with a host name is not a number to text, not an error)."""
    for index, callback in enumerate(_objects(doc, "callbackComponent", where)):
        callback_where = f"{where}.callbackComponent[{index}]"
        uris = _strings(callback.get("callBackInformationUri", []), f"{callback_where}.uri")
        updated = callback.get("updatedCbn")
        if isinstance(updated, Mapping) and isinstance(updated.get("updatedCbnIdentifierUri"), str):
            uris.append(updated["updatedCbnIdentifierUri"])
        for uri in uris:
            phone = _phone_from_uri(uri, agency.agency.phone_region)
            if phone is not None:
                return phone
    return None


def _phone_from_uri(uri: str, region: str) -> str | None:
    """`tel:+1-703-555-0123;ext=1`, `sip:7035550123@host;user=phone` → E.164, else None."""
    scheme, _, rest = uri.strip().partition(":")
    if scheme.lower() not in ("tel", "sip", "sips") or not rest:
        return None
    number = rest.split(";", 1)[0].split("@", 1)[0]
    try:
        return to_e164(number, region)
    except InvalidPhoneNumber:
        return None


def _caller_language(doc: Mapping[str, Any], where: str) -> str | None:
    for index, person in enumerate(_objects(doc, "personComponent", where)):
        person_where = f"{where}.personComponent[{index}]"
        roles = _strings(person.get("personIncidentRoleRegistryText", []), f"{person_where}.roles")
        niem = person.get("ncPersonComponent")
        if _CALLER_ROLE not in roles or not isinstance(niem, Mapping):
            continue
        language = niem.get("PersonPrimaryLanguage")
        code = language.get("LanguageCode") if isinstance(language, Mapping) else None
        primary = code.split("-", 1)[0].lower() if isinstance(code, str) else ""
        if len(primary) == 2 and primary.isalpha():
            return primary
    return None


def _any_delayed(resources: Sequence[Mapping[str, Any]], where: str) -> bool:
    key = "secondaryUnitStatusRegistryText"
    return any(
        _DELAYED in _strings(unit.get(key, []), f"{where}[{index}].{key}")
        for index, unit in enumerate(resources)
    )


# --- JSON shape checks, each naming the path ---------------------------------------------


def _object(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidEido(f"{where}: expected a JSON object; got {type(value).__name__}")
    return value


def _optional_object(doc: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any] | None:
    return None if doc.get(key) is None else _object(doc[key], f"{where}.{key}")


def _objects(doc: Mapping[str, Any], key: str, where: str) -> list[Mapping[str, Any]]:
    value = doc.get(key, [])
    if not isinstance(value, list):
        raise InvalidEido(f"{where}.{key}: expected a list; got {type(value).__name__}")
    return [_object(item, f"{where}.{key}[{index}]") for index, item in enumerate(value)]


def _strings(value: object, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidEido(f"{where}: expected a list of strings; got {value!r:.80}")
    return list(value)


def _text(value: object, where: str, max_length: int = MAX_TEXT_LENGTH) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidEido(f"{where}: expected a non-empty string; got {value!r:.80}")
    problem = text_problem(value.strip(), max_length)
    if problem is not None:
        raise InvalidEido(f"{where}: {problem}")
    return value.strip()


def _timestamp(value: object, where: str) -> datetime:
    if value is None:
        raise InvalidEido(f"{where}: required (e.g. 2021-04-30T14:43:49.439-04:00)")
    text = _text(value, where)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidEido(f"{where}: not an ISO 8601 date-time: {text!r:.80}") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidEido(f"{where}: needs a UTC offset, e.g. 2021-04-30T14:43:49-04:00")
    problem = occurred_at_problem(moment, datetime.now(UTC))
    if problem is not None:
        raise InvalidEido(f"{where}: {problem}")
    return moment


# --- events -> EIDO (test fixtures from replayed CAD calls) -------------------------------

_EVENT_STATUSES: dict[CadEventType, str] = {
    CadEventType.CREATED: "Active",
    CadEventType.UPDATED: "Active",
    CadEventType.ASSIGNED: "ResourcesAssigned",
    CadEventType.ENROUTE: "ResourcesEnroute",
    CadEventType.ON_SCENE: "ResourcesOnscene",
    CadEventType.CLEARED: "Closed",
    CadEventType.CANCELLED: "Cancelled",
    CadEventType.REOPENED: "ReOpened",
}
_UNIT_STATUSES = frozenset({"ResourcesAssigned", "ResourcesEnroute", "ResourcesOnscene"})


def events_to_eido(
    call: ReplayCall, agency: AgencyConfig, mapping: EidoMapping
) -> list[dict[str, Any]]:
    """One EIDO document per event of a replayed call, shaped after NENA's sample.

    Each is a full snapshot: the created event's details are carried into every document.
    A DELAYED event keeps the previous status and marks the unit `Delayed`.
    """
    created = call.events[0]
    documents = []
    status = "Active"
    for event in call.events:
        delayed = event.event_type == CadEventType.DELAYED
        status = status if delayed else _EVENT_STATUSES[event.event_type]
        documents.append(_document(call, created, event, status, delayed, agency, mapping))
    return documents


def _document(
    call: ReplayCall,
    created: CadEvent,
    event: CadEvent,
    status: str,
    delayed: bool,
    agency: AgencyConfig,
    mapping: EidoMapping,
) -> dict[str, Any]:
    stamp = event.occurred_at.isoformat()
    prologue = {"lastUpdateTimeStamp": stamp, "updatedByAgencyReference": {"$ref": agency.id}}
    tracking_id = f"urn:emergency:uid:incidentid:{call.incident_id}:{agency.id}"
    incident: dict[str, Any] = {
        "$id": tracking_id,
        **prologue,
        "incidentTypeCommonRegistryText": _apco_code(created.call_type, mapping),
        "incidentStatusCommonRegistryText": [status],
        "internalIncidentId": call.incident_id,
    }
    eido_priority = (
        None if created.priority is None else mapping.eido_priority_for(created.priority)
    )
    if eido_priority is not None:
        incident["incidentCommonPriorityNumber"] = eido_priority
    document: dict[str, Any] = {
        "$id": tracking_id,
        **prologue,
        "eidoVersion": "1.0",
        "issuingElementIdentification": f"cad.{agency.id}",
        "incidentComponent": incident,
        "agencyComponent": [
            {"$id": agency.id, **prologue, "agencyType": ["psap"]},
        ],
        **_caller_components(call, created, prologue),
    }
    if status in _UNIT_STATUSES or delayed:
        document["emergencyResourceComponent"] = [_unit(call, prologue, delayed)]
    return document


def _apco_code(call_type: str | None, mapping: EidoMapping) -> str:
    if call_type is None:
        return "UNKNOWN"
    return mapping.apco_code_for(call_type) or call_type


def _caller_components(
    call: ReplayCall, created: CadEvent, prologue: Mapping[str, Any]
) -> dict[str, Any]:
    if created.source not in CALLER_SOURCES:
        return {}
    callback_id = f"callback:{call.incident_id}"
    primary = _EMERGENCY_CALL if created.source != CallSource.PHONE else "nonEmergency"
    components: dict[str, Any] = {
        "callComponent": [
            {
                "$id": f"urn:emergency:uid:callid:{call.incident_id}",
                **prologue,
                "standardPrimaryCallType": primary,
                "direction": "incoming",
                "callStartTimestamp": call.created_at.isoformat(),
                "callStateRegistryText": "callAnswered",
                "callBackReference": {"$ref": callback_id},
            }
        ]
    }
    if created.caller_phone is not None:
        components["callbackComponent"] = [
            {
                "$id": callback_id,
                **prologue,
                "callBackInformationUri": [f"tel:{created.caller_phone}"],
            }
        ]
    if created.caller_language is not None:
        components["personComponent"] = [
            {
                "$id": f"person:{call.incident_id}",
                **prologue,
                "personIncidentRoleRegistryText": [_CALLER_ROLE],
                "ncPersonComponent": {
                    "PersonPrimaryLanguage": {"LanguageCode": created.caller_language}
                },
            }
        ]
    return components


def _unit(call: ReplayCall, prologue: Mapping[str, Any], delayed: bool) -> dict[str, Any]:
    return {
        "$id": f"unit:{call.incident_id}",
        **prologue,
        "agentReference": [],
        "emergencyResourceTypeCommonRegistryText": "LawEnforcement",
        "primaryUnitStatusRegistryText": "Committed",
        "resourceAttributeRegistryText": [],
        "secondaryUnitStatusRegistryText": [_DELAYED] if delayed else ["Assigned"],
    }
