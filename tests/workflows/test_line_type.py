"""Before a number's first text, a lookup says what CAD did not: mobile or not."""

from __future__ import annotations

import pytest

from tests.factories import RecordingProvider, eligible_call, new_incident_id
from tests.harness import Harness
from workflows.model import LineType, TextingState


@pytest.mark.record_history
async def test_lookup_makes_an_unknown_number_textable_when_it_is_a_mobile(
    harness: Harness, provider: RecordingProvider
) -> None:
    provider.line_types["+17035550142"] = LineType.MOBILE
    incident = new_incident_id()
    state = await harness.send(eligible_call(incident, caller_line_type=None))
    assert provider.lookups == ["+17035550142"]
    assert state.caller_line_type == LineType.MOBILE
    assert harness.kinds(incident) == ["confirmation"]


async def test_landline_and_unknown_lines_are_not_texted(
    harness: Harness, provider: RecordingProvider
) -> None:
    provider.line_types["+17035550143"] = LineType.LANDLINE
    landline, unknown = new_incident_id(), new_incident_id()
    landline_state = await harness.send(
        eligible_call(landline, caller_phone="+17035550143", caller_line_type=LineType.UNKNOWN)
    )
    unknown_state = await harness.send(
        eligible_call(unknown, caller_phone="+17035550144", caller_line_type=None)
    )
    assert landline_state.decision is not None
    assert landline_state.decision.reason == "phone_landline"
    assert unknown_state.decision is not None
    assert unknown_state.decision.reason == "phone_not_mobile"
    assert unknown_state.texting_state == TextingState.INELIGIBLE
    assert harness.kinds(landline) == [] and harness.kinds(unknown) == []


async def test_lookups_are_cached_per_number_and_skipped_when_cad_knows(
    harness: Harness, provider: RecordingProvider
) -> None:
    provider.line_types["+17035550145"] = LineType.MOBILE
    first, second, known = new_incident_id(), new_incident_id(), new_incident_id()
    await harness.send(eligible_call(first, caller_phone="+17035550145", caller_line_type=None))
    await harness.send(eligible_call(second, caller_phone="+17035550145", caller_line_type=None))
    await harness.send(eligible_call(known, caller_phone="+17035550146"))  # CAD says mobile
    assert provider.lookups == ["+17035550145"]
    assert harness.kinds(second) == ["confirmation"] and harness.kinds(known) == ["confirmation"]


async def test_ineligible_calls_cost_no_lookup(
    harness: Harness, provider: RecordingProvider
) -> None:
    incident = new_incident_id()
    await harness.send(
        eligible_call(incident, caller_line_type=None, call_type="DOMESTIC VIOL NO INJ")
    )
    assert provider.lookups == []
