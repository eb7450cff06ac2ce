"""Eligibility is default-deny: a call is texted only when every rule says yes."""

from __future__ import annotations

import re
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.factories import make_agency
from workflows.model import CallSource, CallState, LineType
from workflows.policy import (
    BUILT_IN_SENSITIVE_PATTERNS,
    CALLER_SOURCES,
    EligibilityReason,
    decide,
    normalise_call_type,
)

POLICY = make_agency().to_policy()
# Words that mark a sensitive call in any CAD vocabulary this project ships patterns for.
SENSITIVE_WORDS = [
    "sexual assault", "Sex Offense", "RAPE", "domestic", "Domestic-Viol", "DV", "intimate partner",
    "IPV", "abduction", "kidnapping", "bomb threat", "explosive device", "alarm", "demonstration",
    "protest", "suicide", "protective order", "restraining order", "stalking", "human trafficking",
    "agression sexuelle", "violence conjugale", "enlèvement", "alarme", "manifestation",
]  # fmt: skip

call_types = st.text(
    alphabet=st.characters(whitelist_categories=("Lu", "Ll", "Nd", "Zs", "Pd", "Po")), max_size=40
)


@st.composite
def calls(draw: st.DrawFn) -> CallState:
    return CallState(
        agency="testville",
        incident_id="P-1",
        source=draw(st.none() | st.sampled_from(CallSource)),
        priority=draw(st.none() | st.integers(min_value=-1, max_value=10)),
        call_type=draw(st.none() | call_types),
        caller_phone=draw(st.none() | st.sampled_from(["+17035550142", "7035550142", "", "+1"])),
        caller_line_type=draw(st.none() | st.sampled_from(LineType)),
        in_progress=draw(st.none() | st.booleans()),
        do_not_text=draw(st.none() | st.booleans()),
        opted_out=draw(st.booleans()),
        suppressed_reason=draw(st.none() | st.just("operator")),
    )


def matches_any(call_type: str, patterns: list[str]) -> bool:
    normalised = normalise_call_type(call_type)
    return any(re.search(p, normalised, re.IGNORECASE) for p in patterns)


@settings(max_examples=1000)
@given(calls())
def test_eligible_only_when_every_rule_says_yes(call: CallState) -> None:
    decision = decide(call, POLICY)
    if not decision.eligible:
        assert decision.reason != EligibilityReason.ELIGIBLE
        return
    assert call.source in CALLER_SOURCES and call.source in POLICY.eligible_sources
    assert call.priority in POLICY.eligible_priorities
    assert call.call_type and not matches_any(
        call.call_type,
        [
            *BUILT_IN_SENSITIVE_PATTERNS,
            *POLICY.excluded_call_type_patterns,
            *POLICY.in_progress_patterns,
        ],
    )
    assert call.caller_phone == "+17035550142" and call.caller_line_type == LineType.MOBILE
    assert not call.in_progress and not call.do_not_text
    assert not call.opted_out and call.suppressed_reason is None


@settings(max_examples=600)
@given(calls(), st.sampled_from(SENSITIVE_WORDS), call_types, call_types)
def test_sensitive_call_types_are_never_texted_and_stop_for_good(
    call: CallState, word: str, before: str, after: str
) -> None:
    call.call_type = f"{before} {word} {after}"
    decision = decide(call, POLICY)
    assert not decision.eligible
    if call.suppressed_reason is None and call.source in (None, *CALLER_SOURCES):
        assert decision.permanent


@given(calls())
def test_officer_initiated_calls_never_text(call: CallState) -> None:
    call.source = CallSource.OFFICER
    decision = decide(call, POLICY)
    assert not decision.eligible and decision.permanent


@given(calls(), st.sampled_from(["source", "priority", "call_type", "caller_phone"]))
def test_a_missing_fact_is_a_no(call: CallState, missing: str) -> None:
    setattr(call, missing, None)
    assert not decide(call, POLICY).eligible


@given(
    st.sampled_from(sorted(CALLER_SOURCES)),
    st.integers(min_value=-5, max_value=2),
    st.sampled_from(["NOISE COMPLAINT DELAY", "PARKING COMPLAINT", "LOST PROPERTY"]),
    st.none() | st.sampled_from(["+17035550142", "garbage"]),
)
def test_escalation_above_eligible_priorities_is_a_safety_stop(
    source: CallSource, priority: int, call_type: str, phone: str | None
) -> None:
    call = CallState(
        agency="testville",
        incident_id="P-1",
        source=source,
        priority=priority,
        call_type=call_type,
        caller_phone=phone,
    )
    decision = decide(call, POLICY)
    assert decision.reason == EligibilityReason.PRIORITY_ESCALATED and decision.permanent


def test_a_blocked_call_stays_blocked_when_its_facts_look_safe_again() -> None:
    call = CallState(
        agency="testville",
        incident_id="P-1",
        source=CallSource.PHONE,
        priority=4,
        call_type="DOMESTIC VIOL NO INJ",
        caller_phone="+17035550142",
        caller_line_type=LineType.MOBILE,
    )
    call.blocked = decide(call, POLICY)
    call.call_type = "NOISE COMPLAINT"
    decision = decide(call, POLICY)
    assert not decision.eligible and decision.reason == EligibilityReason.CALL_TYPE_SENSITIVE


def test_the_example_agency_texts_a_plain_noise_complaint_only() -> None:
    example = make_agency()
    call = CallState(
        agency="testville",
        incident_id="P-1",
        source=CallSource.E911,
        priority=4,
        call_type="NOISE COMPLAINT DELAY",
        caller_phone="+17035550142",
        caller_line_type=LineType.MOBILE,
    )
    assert decide(call, example.to_policy()).eligible
    call.caller_line_type = LineType.UNKNOWN
    assert decide(call, example.to_policy()).reason == EligibilityReason.PHONE_NOT_MOBILE


# Punctuation, and letters of a script the patterns do not read (CJK, Arabic).
_UNREADABLE = (
    st.sampled_from("-?/#*.()")
    | st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)
    | st.characters(min_codepoint=0x0621, max_codepoint=0x064A)
)


@given(st.text(alphabet=_UNREADABLE, min_size=1, max_size=30))
def test_a_call_type_no_rule_can_read_is_never_texted(call_type: str) -> None:
    """Default deny: a call type the sensitive patterns cannot read ("-", "???", another
    script) is as good as unknown, however eligible the rest of the call is."""
    call = CallState(
        agency="testville",
        incident_id="1",
        call_type=call_type,
        priority=4,
        source=CallSource.PHONE,
        caller_phone="+17035550142",
        caller_line_type=LineType.MOBILE,
    )
    assert not normalise_call_type(call_type)
    decision = decide(call, POLICY)
    assert not decision.eligible and decision.reason == EligibilityReason.CALL_TYPE_UNKNOWN


def test_a_policy_recorded_before_the_rule_decides_as_it_did() -> None:
    old = replace(POLICY, unreadable_call_type_is_unknown=False)
    call = CallState(
        agency="testville",
        incident_id="1",
        call_type="家庭暴力",  # domestic violence, in Chinese
        priority=4,
        source=CallSource.PHONE,
        caller_phone="+17035550142",
        caller_line_type=LineType.MOBILE,
    )
    assert decide(call, POLICY).reason == EligibilityReason.CALL_TYPE_UNKNOWN
    assert decide(call, old).eligible  # running calls replay unchanged
