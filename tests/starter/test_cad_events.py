"""CAD events at the edge: valid JSON becomes a CadEvent; anything else is a clear error."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callerloop.cad.events import InvalidCadEvent, UnknownAgency, parse_cad_event, parse_cad_json
from callerloop.core.agency_config import AgencyConfig, AgencyConfigError
from tests.factories import make_agency
from workflows.event_identity import event_fingerprint
from workflows.model import CadEventType, CallSource, LineType

AGENCIES: dict[str, AgencyConfig] = {"testville": make_agency()}


def event(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "agency": "testville",
        "incident_id": "25-071089",
        "event_type": "created",
        "occurred_at": "2025-08-24T00:07:06-04:00",
        "priority": 4,
        "call_type": "NOISE COMPLAINT DELAY",
        "source": "911",
        "caller_phone": "(703) 555-0142",
        "caller_line_type": "mobile",
        "caller_language": "es",
    }
    data.update(overrides)
    return data


def test_valid_event_is_normalised() -> None:
    parsed = parse_cad_event(event(), AGENCIES)
    assert parsed.event_type == CadEventType.CREATED and parsed.source == CallSource.E911
    assert parsed.caller_phone == "+17035550142" and parsed.caller_line_type == LineType.MOBILE
    assert parsed.occurred_at.utcoffset() is not None
    assert parsed.event_id.startswith("sha256:")


def test_an_event_without_an_id_gets_the_id_every_entry_path_derives() -> None:
    parsed = parse_cad_event(event(event_id="  "), AGENCIES)
    assert parsed.event_id == event_fingerprint(replace(parsed, event_id=""))


def test_same_content_same_id_so_a_resent_event_is_a_duplicate() -> None:
    first = parse_cad_event(event(), AGENCIES)
    again = parse_cad_event(event(), AGENCIES)
    later = parse_cad_event(event(occurred_at="2025-08-24T00:09:00-04:00"), AGENCIES)
    assert first.event_id == again.event_id != later.event_id
    assert parse_cad_event(event(event_id="cad-77"), AGENCIES).event_id == "cad-77"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"priority": "urgent"}, "event.priority: Input should be a valid integer"),
        ({"event_type": "exploded"}, "event.event_type: Input should be 'created'"),
        ({"occurred_at": "yesterday"}, "event.occurred_at: Input should be a valid datetime"),
        ({"occurred_at": "2025-08-24T00:07:06"}, "event.occurred_at: needs a UTC offset"),
        ({"caller_phone": "12"}, "event.caller_phone: '12' is not a valid number for region US"),
        ({"agency": "gotham"}, "event.agency: unknown agency 'gotham'"),
        ({"incident_id": "  "}, "event.incident_id: must not be empty"),
        ({"colour": "blue"}, "event.colour: unknown field"),
        ({"caller_language": "spanish"}, "event.caller_language: expected a two-letter"),
        # JSON types are not coerced (found by Schemathesis: `false` was taken for 0).
        ({"priority": False}, "event.priority: Input should be a valid integer"),
        ({"priority": "4"}, "event.priority: Input should be a valid integer"),
        ({"in_progress": 1}, "event.in_progress: Input should be a valid boolean"),
        ({"do_not_text": "yes"}, "event.do_not_text: Input should be a valid boolean"),
    ],
)
def test_bad_events_say_what_and_where(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidCadEvent) as raised:
        parse_cad_event(event(**overrides), AGENCIES)
    assert message in str(raised.value)


def test_missing_required_fields_are_each_named() -> None:
    with pytest.raises(InvalidCadEvent) as raised:
        parse_cad_event({"agency": "testville"}, AGENCIES)
    for field in ("incident_id", "event_type", "occurred_at"):
        assert f"event.{field}: Field required" in str(raised.value)


def test_json_batches_point_at_the_bad_item() -> None:
    good, bad = event(), event(priority="x")
    assert len(parse_cad_json(json.dumps([good, good]), AGENCIES, "body")) == 2
    with pytest.raises(InvalidCadEvent, match=r"body\[1\]\.priority"):
        parse_cad_json(json.dumps([good, bad]), AGENCIES, "body")
    with pytest.raises(InvalidCadEvent, match=r"body: not valid JSON: .* line 1 column 2"):
        parse_cad_json("{oops", AGENCIES, "body")
    with pytest.raises(InvalidCadEvent, match=r"body\[0\]: expected a JSON object, got int"):
        parse_cad_json("[3]", AGENCIES, "body")


@given(st.dictionaries(st.sampled_from(list(event())), st.none() | st.integers() | st.text()))
def test_arbitrary_input_is_accepted_or_rejected_cleanly(data: dict[str, Any]) -> None:
    try:
        parse_cad_event({**event(), **data}, AGENCIES)
    except InvalidCadEvent as error:
        message = str(error)
    else:
        return
    assert message.startswith("event.")


# --- every accepted value can be applied (issue 20, finding 5) -------------------------


def test_a_priority_beyond_int64_is_refused_naming_the_field() -> None:
    with pytest.raises(InvalidCadEvent) as raised:
        parse_cad_json(json.dumps([event(priority=9223372036854775808)]), AGENCIES, "body")
    assert str(raised.value) == (
        "body[0].priority: outside the signed 64-bit range of the CallPriority search attribute"
    )


def _in(days: float) -> str:
    """A time `days` from now by the wall clock, as CAD would send it."""
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"priority": -(2**63) - 1}, "event.priority: outside the signed 64-bit range"),
        ({"priority": 10}, "event.priority: not on this agency's priority scale (0 to 9)"),
        ({"priority": -1}, "event.priority: not on this agency's priority scale (0 to 9)"),
        ({"agency": "t" * 129}, "event.agency: longer than 128 characters (129)"),
        ({"agency": "testville\x00"}, "event.agency: contains a control character"),
        ({"incident_id": "2" * 129}, "event.incident_id: longer than 128 characters (129)"),
        ({"incident_id": "25-07\x001089"}, "event.incident_id: contains a control character"),
        ({"case_number": "C" * 129}, "event.case_number: longer than 128 characters (129)"),
        ({"event_id": "e" * 201}, "event.event_id: longer than 200 characters (201)"),
        ({"event_id": "cad-1\n"}, "event.event_id: contains a control character"),
        ({"call_type": "N" * 201}, "event.call_type: longer than 200 characters (201)"),
        ({"call_type": "NOISE\x1bCOMPLAINT"}, "event.call_type: contains a control character"),
        ({"disposition": "D" * 201}, "event.disposition: longer than 200 characters (201)"),
        ({"disposition": "NR\x7f"}, "event.disposition: contains a control character"),
        ({"caller_phone": "7" * 41}, "event.caller_phone: longer than 40 characters (41)"),
        ({"caller_phone": "703\x00555"}, "event.caller_phone: contains a control character"),
        ({"caller_language": "e\x00"}, "event.caller_language: expected a two-letter"),
        ({"occurred_at": "1999-12-31T23:59:59Z"}, "event.occurred_at: before 2000-01-01"),
        ({"occurred_at": "2000-01-01T00:30:00+01:00"}, "event.occurred_at: before 2000-01-01"),
        ({"occurred_at": _in(days=3)}, "event.occurred_at: more than 2 days ahead of the clock"),
        ({"occurred_at": "9999-12-31T23:59:59Z"}, "event.occurred_at: more than 2 days ahead"),
    ],
)
def test_a_value_the_call_cannot_apply_is_refused_naming_the_field(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidCadEvent) as raised:
        parse_cad_event(event(**overrides), AGENCIES)
    assert str(raised.value).startswith(message), str(raised.value)


@pytest.mark.parametrize(
    "overrides",
    [
        {"priority": 0},
        {"priority": 9},
        {"incident_id": "2" * 128, "case_number": "C" * 128, "event_id": "e" * 200},
        {"call_type": "N" * 200, "disposition": "D" * 200},
        {"call_type": "VOIES DE FAIT \u2013 ÉTÉ"},  # any printable text: accents, dashes
        {"occurred_at": "2000-01-01T00:00:00Z"},
        {"occurred_at": _in(days=1.9)},
    ],
)
def test_values_at_the_bounds_are_accepted(overrides: dict[str, Any]) -> None:
    parse_cad_event(event(**overrides), AGENCIES)


def test_every_problem_of_an_event_is_named_at_once() -> None:
    with pytest.raises(InvalidCadEvent) as raised:
        parse_cad_event(event(priority=99, call_type="X" * 300), AGENCIES)
    assert "event.priority: not on this" in str(raised.value)
    assert "event.call_type: longer than 200" in str(raised.value)


def test_a_number_too_long_to_read_is_refused_not_a_crash() -> None:
    with pytest.raises(InvalidCadEvent, match=r"^body: a number too long to read"):
        parse_cad_json('{"priority": ' + "9" * 5000 + "}", AGENCIES, "body")


def test_the_priority_scale_is_the_agencys_own() -> None:
    ottawa = make_agency("ottawa", cad={"priority_scale": {"min": 1, "max": 5}})
    with pytest.raises(InvalidCadEvent, match=r"scale \(1 to 5\)"):
        parse_cad_event(event(agency="ottawa", priority=6), {"ottawa": ottawa})
    assert parse_cad_event(event(agency="ottawa", priority=5), {"ottawa": ottawa}).priority == 5


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"cad": {"priority_scale": {"min": 5, "max": 1}}}, "min (5) is greater than max (1)"),
        ({"cad": {"priority_scale": {"max": 2**63}}}, "cad.priority_scale.max: Input should be"),
        (
            {"cad": {"priority_scale": {"min": 1, "max": 3}}},
            "eligibility.priorities: [4] not on cad.priority_scale (1 to 3)",
        ),
        ({"cad": {"priorities": {"P0": 0}, "priority_scale": {"min": 1}}}, "{'P0': 0} not on"),
        (
            {"eido": {"priority_bands": [{"min_eido": 0, "priority": 12}]}},
            "eido.priority_bands: [12] not on cad.priority_scale (0 to 9)",
        ),
        ({"eido": {"default_priority": 10}}, "eido.default_priority: [10] not on"),
    ],
)
def test_an_agency_file_naming_a_priority_off_its_scale_is_refused(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(AgencyConfigError) as raised:
        make_agency(**overrides)
    assert message in str(raised.value)


# --- errors name no other agency (issue 20, finding 12) --------------------------------


def test_an_unknown_agency_error_names_no_other_agency() -> None:
    agencies = {"testville": make_agency(), "otherville": make_agency("otherville")}
    with pytest.raises(UnknownAgency) as raised:
        parse_cad_json(json.dumps([event(agency="gotham")]), agencies, "body")
    assert str(raised.value) == "body[0].agency: unknown agency 'gotham'"
    assert (raised.value.where, raised.value.agency) == ("body[0]", "gotham")


@pytest.mark.parametrize("call_type", ["-", "???", "家庭暴力", "عنف منزلي"])
def test_a_call_type_no_safety_rule_can_read_is_refused_at_the_edge(call_type: str) -> None:
    with pytest.raises(InvalidCadEvent) as raised:
        parse_cad_event(event(call_type=call_type), AGENCIES)
    assert "event.call_type: has no Latin letter or digit, so no safety rule can read it" in str(
        raised.value
    )
