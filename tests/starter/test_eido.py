"""NENA EIDO documents in, CadEvents out; and EIDO generated from replayed CAD calls."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callerloop.cad.eido import (
    EidoMapping,
    InvalidEido,
    eido_mapping_for,
    eido_to_events,
    events_to_eido,
)
from callerloop.cad.replay import ReplayCall, parse_cad_export
from callerloop.cad.synthetic_day import synthetic_day, to_csv_lines
from callerloop.core.agency_config import (
    AgencyConfig,
    AgencyConfigError,
    load_agency_file,
    parse_agency_config,
)
from callerloop.core.settings import PROJECT_ROOT
from tests.requirements import eido_reference, real_cad_export
from workflows.event_identity import event_fingerprint
from workflows.model import CadEvent, CadEventType, CallSource

T = CadEventType
NEW_YORK = ZoneInfo("America/New_York")


@pytest.fixture(scope="module")
def agency() -> AgencyConfig:
    return load_agency_file(PROJECT_ROOT / "agencies" / "example.toml")


@pytest.fixture(scope="module")
def mapping(agency: AgencyConfig) -> EidoMapping:
    return eido_mapping_for(agency)


def eido(**incident: Any) -> dict[str, Any]:
    """A minimal valid EIDO for incident 25-000123; keyword arguments override the incident."""
    stamp = "2025-09-01T10:00:00-04:00"
    prologue = {"lastUpdateTimeStamp": stamp, "updatedByAgencyReference": {"$ref": "example"}}
    return {
        "$id": "urn:emergency:uid:incidentid:25-000123:example",
        **prologue,
        "eidoVersion": "1.0",
        "issuingElementIdentification": "cad.example",
        "agencyComponent": [{"$id": "example", **prologue}],
        "incidentComponent": {
            "$id": "incident-1",
            **prologue,
            "internalIncidentId": "25-000123",
            "incidentTypeCommonRegistryText": "PARKING",
            "incidentStatusCommonRegistryText": ["Active"],
            "incidentCommonPriorityNumber": 7,
            **incident,
        },
        "callbackComponent": [
            {"$id": "cb", **prologue, "callBackInformationUri": ["tel:+1-703-555-0123"]}
        ],
    }


def one(document: dict[str, Any], agency: AgencyConfig, mapping: EidoMapping) -> CadEvent:
    events = eido_to_events(document, agency, mapping)
    assert len(events) == 1
    return events[0]


def test_nena_sample_is_a_new_911_call_with_its_callback_number(
    agency: AgencyConfig, mapping: EidoMapping
) -> None:
    sample = json.loads((eido_reference() / "sample_call_transfer_eido.json").read_text())
    [event] = eido_to_events(sample, agency, mapping)
    assert event.incident_id == "urn:emergency:uid:incidentid:a56e556d871:bcf.state.pa.us"
    assert event.case_number == event.incident_id
    assert event.event_type == T.CREATED
    assert event.occurred_at == datetime(2021, 4, 30, 18, 43, 49, 439000, tzinfo=ZoneInfo("UTC"))
    assert event.source == CallSource.E911
    assert event.caller_phone == "+18195551212"  # from sip:8195551212@osp.com
    assert (event.priority, event.call_type, event.caller_language) == (None, None, None)
    assert event.event_id.startswith("sha256:")


def test_a_full_document_maps_every_field(agency: AgencyConfig, mapping: EidoMapping) -> None:
    document = eido()
    document["personComponent"] = [
        {
            "$id": "p",
            "lastUpdateTimeStamp": "2025-09-01T10:00:00-04:00",
            "personIncidentRoleRegistryText": ["Caller"],
            "ncPersonComponent": {"PersonPrimaryLanguage": {"LanguageCode": "es-US"}},
        }
    ]
    event = one(document, agency, mapping)
    assert (event.incident_id, event.case_number) == ("25-000123", "25-000123")
    assert (event.event_type, event.priority, event.call_type) == (
        T.CREATED,
        2,
        "PARKING COMPLAINT",
    )
    assert (event.caller_phone, event.caller_language) == ("+17035550123", "es")
    assert event.occurred_at.utcoffset() == timedelta(hours=-4)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("Active", T.CREATED),
        ("ResourcesAssigned", T.ASSIGNED),
        ("ResourcesEnroute", T.ENROUTE),
        ("ResourcesOnscene", T.ON_SCENE),
        ("Closed", T.CLEARED),
        ("Cancelled", T.CANCELLED),
        ("ReOpened", T.REOPENED),
    ],
)
def test_each_incident_status(
    status: str, expected: CadEventType, agency: AgencyConfig, mapping: EidoMapping
) -> None:
    document = eido(incidentStatusCommonRegistryText=[status])
    assert one(document, agency, mapping).event_type == expected


def unit(*secondary: str) -> dict[str, Any]:
    return {
        "$id": "unit-1",
        "lastUpdateTimeStamp": "2025-09-01T10:00:00-04:00",
        "agentReference": [],
        "emergencyResourceTypeCommonRegistryText": "LawEnforcement",
        "primaryUnitStatusRegistryText": "Committed",
        "resourceAttributeRegistryText": [],
        "secondaryUnitStatusRegistryText": list(secondary),
    }


def test_active_with_a_unit_is_an_update_not_a_new_call(
    agency: AgencyConfig, mapping: EidoMapping
) -> None:
    document = {**eido(), "emergencyResourceComponent": [unit("Assigned")]}
    assert one(document, agency, mapping).event_type == T.UPDATED


def test_a_delayed_unit_adds_a_delayed_event(agency: AgencyConfig, mapping: EidoMapping) -> None:
    document = eido(incidentStatusCommonRegistryText=["ResourcesAssigned"])
    document["emergencyResourceComponent"] = [unit("Assigned", "Delayed")]
    events = eido_to_events(document, agency, mapping)
    assert [e.event_type for e in events] == [T.ASSIGNED, T.DELAYED]
    assert events[0].event_id != events[1].event_id


@pytest.mark.parametrize(("eido_priority", "priority"), [(0, 8), (3, 6), (7, 2), (10, 1)])
def test_priority_bands(
    eido_priority: int, priority: int, agency: AgencyConfig, mapping: EidoMapping
) -> None:
    document = eido(incidentCommonPriorityNumber=eido_priority)
    assert one(document, agency, mapping).priority == priority


def test_apco_codes_map_and_unmapped_codes_keep_their_text(
    agency: AgencyConfig, mapping: EidoMapping
) -> None:
    mapped = one(eido(incidentTypeCommonRegistryText="trespass"), agency, mapping)
    assert mapped.call_type == "TRESPASSING IN PROG"
    unmapped = one(eido(incidentTypeCommonRegistryText="ABDUCTNF"), agency, mapping)
    assert unmapped.call_type == "ABDUCTNF"


@pytest.mark.parametrize(
    ("uris", "phone"),
    [
        (["tel:+1-703-555-0123"], "+17035550123"),
        (["tel:7035550123;ext=12"], "+17035550123"),
        (["sip:+17035550123@carrier.example;user=phone"], "+17035550123"),
        (["sip:alice@carrier.example", "tel:571-555-0199"], "+15715550199"),
        (["sip:alice@carrier.example"], None),
    ],
)
def test_callback_uris(
    uris: list[str], phone: str | None, agency: AgencyConfig, mapping: EidoMapping
) -> None:
    document = eido()
    document["callbackComponent"][0]["callBackInformationUri"] = uris
    assert one(document, agency, mapping).caller_phone == phone


def test_source_non_emergency_and_officer_initiated(
    agency: AgencyConfig, mapping: EidoMapping
) -> None:
    document = eido()
    document["callComponent"] = [{"$id": "c", "standardPrimaryCallType": "nonEmergency"}]
    assert one(document, agency, mapping).source == CallSource.PHONE
    officer = one(eido(incidentTypeCommonRegistryText="TRAFFIC STOP"), agency, mapping)
    assert officer.source == CallSource.OFFICER


def test_a_resent_document_has_the_same_event_id(
    agency: AgencyConfig, mapping: EidoMapping
) -> None:
    first = one(eido(), agency, mapping)
    assert one(eido(), agency, mapping).event_id == first.event_id
    later = eido()
    later["lastUpdateTimeStamp"] = "2025-09-01T10:05:00-04:00"
    assert one(later, agency, mapping).event_id != first.event_id


def test_event_ids_are_derived_as_for_any_cad_event(
    agency: AgencyConfig, mapping: EidoMapping
) -> None:
    document = eido()
    document["emergencyResourceComponent"] = [{"secondaryUnitStatusRegistryText": ["Delayed"]}]
    for event in eido_to_events(document, agency, mapping):
        assert event.event_id == event_fingerprint(replace(event, event_id=""))


def test_same_time_different_content_are_two_events(
    agency: AgencyConfig, mapping: EidoMapping
) -> None:
    """Once keyed on (incident, type, time) only: a reclassification stamped with the same
    second as the document before it was dropped as its duplicate."""
    first = one(eido(), agency, mapping)
    reclassified = one(eido(incidentTypeCommonRegistryText="DOMESTIC"), agency, mapping)
    assert first.event_id != reclassified.event_id


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"lastUpdateTimeStamp": None}, "eido.lastUpdateTimeStamp: required"),
        ({"lastUpdateTimeStamp": "2025-09-01T10:00:00"}, "eido.lastUpdateTimeStamp: needs a UTC"),
        ({"lastUpdateTimeStamp": "yesterday"}, "eido.lastUpdateTimeStamp: not an ISO 8601"),
        (
            {"incidentComponent": {"incidentTypeCommonRegistryText": "X", "internalIncidentId": 1}},
            "eido.incidentComponent.internalIncidentId: expected a non-empty string",
        ),
        ({"callbackComponent": {}}, "eido.callbackComponent: expected a list"),
    ],
)
def test_malformed_documents_name_the_path(
    change: dict[str, Any], message: str, agency: AgencyConfig, mapping: EidoMapping
) -> None:
    document = {**eido(), **change}
    if change.get("lastUpdateTimeStamp", "") is None:
        del document["lastUpdateTimeStamp"]
    with pytest.raises(InvalidEido, match=f"^{message}"):
        eido_to_events(document, agency, mapping)


@pytest.mark.parametrize(
    ("incident", "message"),
    [
        (
            {"incidentStatusCommonRegistryText": ["Dispatched"]},
            r"eido\.incidentComponent\.incidentStatusCommonRegistryText\[0\]: expected one of "
            "Active, ResourcesAssigned",
        ),
        (
            {"incidentCommonPriorityNumber": 11},
            r"eido\.incidentComponent\.incidentCommonPriorityNumber: expected an integer 0-10",
        ),
    ],
)
def test_bad_status_and_priority_name_the_path(
    incident: dict[str, Any], message: str, agency: AgencyConfig, mapping: EidoMapping
) -> None:
    with pytest.raises(InvalidEido, match=message):
        eido_to_events(eido(**incident), agency, mapping)


def _days_ahead(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("incidentComponent", "internalIncidentId"), "2" * 129, "longer than 128 characters"),
        (("incidentComponent", "internalIncidentId"), "25-\x00123", "a control character"),
        (("incidentComponent", "incidentTypeCommonRegistryText"), "P" * 201, "longer than 200"),
        (("incidentComponent", "incidentTypeCommonRegistryText"), "PARK\nING", "a control"),
        (("lastUpdateTimeStamp",), "1999-12-31T18:59:59-05:00", "before 2000-01-01"),
        pytest.param(  # an id without the clock's time: the same in every xdist worker
            ("lastUpdateTimeStamp",),
            _days_ahead(3),
            "more than 2 days ahead of the clock",
            id="lastUpdateTimeStamp-3-days-ahead",
        ),
    ],
)
def test_a_value_out_of_bounds_is_refused_naming_its_path(
    path: tuple[str, ...], value: str, message: str, agency: AgencyConfig, mapping: EidoMapping
) -> None:
    document = eido()
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    with pytest.raises(InvalidEido) as raised:
        eido_to_events(document, agency, mapping)
    assert str(raised.value).startswith(f"eido.{'.'.join(path)}: "), str(raised.value)
    assert message in str(raised.value)


def test_a_mapped_call_type_too_long_is_refused_as_any_cad_events(agency: AgencyConfig) -> None:
    long_name = agency.model_copy(
        update={"eido": EidoMapping(call_types={"PARKING": "PARKING " + "X" * 200})}
    )
    with pytest.raises(InvalidEido, match=r"^eido\.call_type: longer than 200"):
        eido_to_events(eido(), long_name, eido_mapping_for(long_name))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
KEYS = (
    "lastUpdateTimeStamp",
    "$id",
    "incidentComponent",
    "callbackComponent",
    "callComponent",
    "personComponent",
    "emergencyResourceComponent",
)
INCIDENT_KEYS = (
    "internalIncidentId",
    "incidentTypeCommonRegistryText",
    "incidentStatusCommonRegistryText",
    "incidentCommonPriorityNumber",
)


@settings(max_examples=150, deadline=None)
@given(
    top=st.dictionaries(st.sampled_from(KEYS), JSON, max_size=3),
    inner=st.dictionaries(st.sampled_from(INCIDENT_KEYS), JSON, max_size=2),
    anything=JSON,
)
def test_arbitrary_json_gives_events_or_invalid_eido(
    top: dict[str, Any], inner: dict[str, Any], anything: Any, agency: AgencyConfig
) -> None:
    mapping = eido_mapping_for(agency)
    document = eido(**inner)
    document.update(top)
    for candidate in (document, anything):
        try:
            events = eido_to_events(candidate, agency, mapping)
        except InvalidEido:
            continue
        assert events
        assert all(e.occurred_at.tzinfo is not None for e in events)


def test_the_mapping_comes_from_the_agency_file(agency: AgencyConfig) -> None:
    # agencies/example.toml [eido]: EIDO 7-8 is priority 2, codes are matched in any case.
    assert eido_mapping_for(agency).priority_for(8) == 2
    assert eido_mapping_for(agency).call_type_for(" parking ") == "PARKING COMPLAINT"
    assert "TRAFFIC STOP" in agency.eido.officer_initiated_types


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"priority_bands": [{"min_eido": 5, "priority": 1}]}, "one band must have min_eido = 0"),
        ({"priority_bands": [{"min_eido": 11, "priority": 1}]}, "less than or equal to 10"),
        ({"call_types": {"X": 3}}, "eido.call_types.X"),
        ({"priority_bandz": []}, "eido.priority_bandz"),
    ],
)
def test_a_bad_eido_section_is_refused_with_where_and_why(
    section: dict[str, Any], message: str
) -> None:
    data = tomllib.loads((PROJECT_ROOT / "agencies" / "example.toml").read_text())
    data["eido"] = section
    with pytest.raises(AgencyConfigError, match=re.escape(message)) as error:
        parse_agency_config(data, "example", "agencies/example.toml")
    assert str(error.value).startswith("agencies/example.toml: ")


def test_without_bands_eido_is_spread_over_the_scale(agency: AgencyConfig) -> None:
    other = agency.model_copy(update={"id": "elsewhere", "eido": EidoMapping()})
    spread = eido_mapping_for(other)
    # Without a table the scale is the highest priority the agency names (eligible 2, 3, 4).
    assert [spread.priority_for(n) for n in (10, 6, 0)] == [1, 2, 4]
    assert len(spread.priority_bands) == 4


# --- round trip: CAD replay -> EIDO -> events -----------------------------------------


def assert_round_trip(calls: list[ReplayCall], agency: AgencyConfig, mapping: EidoMapping) -> int:
    """Every call whose type is mapped comes back with the replay's event types, priority
    and call type; returns how many calls were compared."""
    compared = 0
    for call in calls:
        created = call.events[0]
        if created.call_type is None or mapping.apco_code_for(created.call_type) is None:
            continue
        documents = events_to_eido(call, agency, mapping)
        events = [e for d in documents for e in eido_to_events(d, agency, mapping)]
        assert [e.event_type for e in events] == [e.event_type for e in call.events]
        assert {e.incident_id for e in events} == {call.incident_id}
        assert {(e.priority, e.call_type) for e in events} == {
            (created.priority, created.call_type)
        }
        assert events[0].caller_phone == created.caller_phone
        compared += 1
    return compared


def test_round_trip_of_a_synthetic_day(agency: AgencyConfig, mapping: EidoMapping) -> None:
    rows = to_csv_lines(synthetic_day(agency, date(2025, 9, 1), calls=300))
    parsed = parse_cad_export(rows, agency)
    assert assert_round_trip(parsed.calls, agency, mapping) > 20


def test_round_trip_of_a_real_day(agency: AgencyConfig, mapping: EidoMapping) -> None:
    export = real_cad_export()
    since = datetime(2025, 9, 1, tzinfo=NEW_YORK)
    with export.open(newline="", encoding="utf-8") as lines:
        parsed = parse_cad_export(lines, agency, since=since, until=since + timedelta(days=1))
    assert assert_round_trip(parsed.calls, agency, mapping) > 20
