"""CAD events at the edge: valid JSON becomes a CadEvent; anything else is a clear error."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callerloop.agency_config import AgencyConfig
from starter.cad_events import InvalidCadEvent, parse_cad_event, parse_cad_json
from tests.factories import make_agency
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
        ({"agency": "gotham"}, "event.agency: unknown agency 'gotham'; configured: ['testville']"),
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
