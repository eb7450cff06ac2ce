"""Who may be texted: a pure, deterministic, default-deny eligibility decision.

The workflow calls `decide` after every change to a call; the tests call it directly.
Every rule must say yes for a call to be texted. Safety stops (officer-initiated,
sensitive or in-progress call types, escalation, do-not-text flag, operator suppression)
are permanent: once a call hits one it never texts again, whatever happens next.
"""

from __future__ import annotations

import re
from dataclasses import replace
from enum import StrEnum

from workflows.model import (
    AgencyPolicy,
    CadEvent,
    CallSource,
    CallState,
    Decision,
    DelayThreshold,
    LineType,
    QuietHours,
)

# Sources where a member of the public reached the police. Officer-initiated, radio,
# alarm-company and other-agency calls have no caller to text.
CALLER_SOURCES = frozenset({CallSource.PHONE, CallSource.E911, CallSource.TEXT})

# Call types that are never texted, whatever an agency configures: a text could reach
# the person the caller needs protecting from. Matched against the normalised call type
# (upper case, punctuation as spaces). Agencies add their own patterns on top.
BUILT_IN_SENSITIVE_PATTERNS: tuple[str, ...] = (
    r"\bSEX",  # sexual assault, sexual offense, sex crime
    r"\bRAPE\b",
    r"\bDOMESTIC",
    r"\bDV\b",
    r"\bINTIMATE\b",
    r"\bIPV\b",
    r"\bFAMILY VIOL",
    r"\bABDUCT",
    r"\bKIDNAP",
    r"\bBOMB",
    r"\bEXPLOSIVE",
    r"\bALARM",
    r"\bDEMONSTRAT",
    r"\bPROTEST",
    r"\bSUICID",
    r"\bPROTECTIVE ORDER",
    r"\bPROTECTION ORDER",
    r"\bRESTRAINING ORDER",
    r"\bSTALK",
    r"\bTRAFFICKING",
    r"\bCHILD ABUSE",
    r"\bELDER ABUSE",
    # French and Spanish CAD vocabularies (Ottawa, bilingual centres).
    r"\bAGRESSION SEXUELLE",
    r"\bVIOLENCE CONJUGALE",
    r"\bVIOLENCE FAMILIALE",
    r"\bENL[EÈ]VEMENT",
    r"\bALERTE A LA BOMBE",
    r"\bALARME",
    r"\bMANIFESTATION",
    r"\bVIOLENCIA DOMESTICA",
    r"\bSECUESTRO",
)


__all__ = ["AgencyPolicy", "DelayThreshold", "EligibilityReason", "QuietHours", "decide"]


class EligibilityReason(StrEnum):
    ELIGIBLE = "eligible"
    SUPPRESSED = "suppressed"
    OFFICER_INITIATED = "officer_initiated"
    SOURCE_NOT_CALLER = "source_not_caller"
    SOURCE_UNKNOWN = "source_unknown"
    CALL_TYPE_SENSITIVE = "call_type_sensitive"
    CALL_TYPE_EXCLUDED = "call_type_excluded"
    CALL_TYPE_UNKNOWN = "call_type_unknown"
    IN_PROGRESS = "in_progress"
    DO_NOT_TEXT = "do_not_text"
    PRIORITY_ESCALATED = "priority_escalated"
    PRIORITY_NOT_ELIGIBLE = "priority_not_eligible"
    PRIORITY_UNKNOWN = "priority_unknown"
    NO_PHONE = "no_phone"
    PHONE_INVALID = "phone_invalid"
    PHONE_UNUSABLE = "phone_unusable"
    PHONE_LANDLINE = "phone_landline"
    PHONE_NOT_MOBILE = "phone_not_mobile"
    OPTED_OUT = "opted_out"


def normalise_call_type(call_type: str) -> str:
    """Upper case, punctuation and runs of spaces folded, so patterns match CAD spellings
    such as 'Domestic-Viol/No Inj' and 'DOMESTIC VIOL NO INJ' alike."""
    folded = re.sub(r"[^0-9A-ZÀ-Ý]+", " ", call_type.upper())
    return folded.strip()


def call_type_problem(call_type: str) -> str | None:
    """A call type no safety rule could read is refused where it comes in, not guessed at."""
    if call_type.strip() and not normalise_call_type(call_type):
        return (
            "has no Latin letter or digit, so no safety rule can read it: send the CAD's "
            "call type as text like 'NOISE COMPLAINT' (or its APCO code through EIDO)"
        )
    return None


def _matching_pattern(call_type: str, patterns: list[str] | tuple[str, ...]) -> str | None:
    normalised = normalise_call_type(call_type)
    for pattern in patterns:
        if re.search(pattern, normalised, flags=re.IGNORECASE):
            return pattern
    return None


def sensitive_pattern(call_type: str, policy: AgencyPolicy) -> str | None:
    """The built-in or agency pattern the call type matches, if any."""
    return _matching_pattern(call_type, BUILT_IN_SENSITIVE_PATTERNS) or _matching_pattern(
        call_type, policy.excluded_call_type_patterns
    )


def _deny(reason: EligibilityReason, detail: str = "", permanent: bool = False) -> Decision:
    return Decision(eligible=False, reason=reason.value, detail=detail, permanent=permanent)


def _safety_stop(call: CallState, policy: AgencyPolicy) -> Decision | None:
    """The first rule whose breach means the call must never be texted again."""
    if call.suppressed_reason is not None:
        return _deny(EligibilityReason.SUPPRESSED, call.suppressed_reason, permanent=True)
    if call.source == CallSource.OFFICER:
        return _deny(EligibilityReason.OFFICER_INITIATED, permanent=True)
    if call.source is not None and (
        call.source not in CALLER_SOURCES or call.source not in policy.eligible_sources
    ):
        return _deny(EligibilityReason.SOURCE_NOT_CALLER, call.source.value, permanent=True)
    if call.call_type is not None:
        if (pattern := _matching_pattern(call.call_type, BUILT_IN_SENSITIVE_PATTERNS)) is not None:
            return _deny(
                EligibilityReason.CALL_TYPE_SENSITIVE, f"{call.call_type} ~ {pattern}", True
            )
        if (
            pattern := _matching_pattern(call.call_type, policy.excluded_call_type_patterns)
        ) is not None:
            return _deny(
                EligibilityReason.CALL_TYPE_EXCLUDED, f"{call.call_type} ~ {pattern}", True
            )
        if (pattern := _matching_pattern(call.call_type, policy.in_progress_patterns)) is not None:
            return _deny(EligibilityReason.IN_PROGRESS, f"{call.call_type} ~ {pattern}", True)
    if call.in_progress:
        return _deny(EligibilityReason.IN_PROGRESS, "flagged in progress by CAD", permanent=True)
    if call.do_not_text:
        return _deny(EligibilityReason.DO_NOT_TEXT, permanent=True)
    if (
        call.priority is not None
        and call.priority not in policy.eligible_priorities
        and policy.is_escalated(call.priority)
    ):
        return _deny(EligibilityReason.PRIORITY_ESCALATED, f"priority {call.priority}", True)
    return None


def event_safety_stop(event: CadEvent, policy: AgencyPolicy) -> Decision | None:
    """The safety stop this CAD event calls for on its own, whatever else the call is:
    the CAD edge's check, made before the event reaches the call's workflow."""
    said = CallState(
        agency=event.agency,
        incident_id=event.incident_id,
        call_type=event.call_type,
        priority=event.priority,
        source=event.source,
        in_progress=event.in_progress,
        do_not_text=event.do_not_text,
    )
    return _safety_stop(said, policy)


def _late_safety_stop(call: CallState, policy: AgencyPolicy) -> Decision | None:
    """A safety stop an older, late-delivered event called for: CAD said it once."""
    for facts, why in (
        (call.late_facts, "a late CAD event"),
        (call.superseded_facts, "since changed"),
    ):
        for late in facts:
            said = {name: value for name, value in vars(late).items() if value is not None}
            if (stop := _safety_stop(replace(call, **said), policy)) is not None:
                return replace(stop, detail=f"{stop.detail} ({why})".strip())
    return None


def decide(call: CallState, policy: AgencyPolicy) -> Decision:
    """Whether this call may be texted now, and why. Default deny: a missing fact is a no."""
    if call.blocked is not None:
        return call.blocked
    if (stop := _safety_stop(call, policy) or _late_safety_stop(call, policy)) is not None:
        return stop
    if call.source is None:
        return _deny(EligibilityReason.SOURCE_UNKNOWN)
    if call.call_type is None or not call.call_type.strip():
        return _deny(EligibilityReason.CALL_TYPE_UNKNOWN)
    if policy.unreadable_call_type_is_unknown and not normalise_call_type(call.call_type):
        # No letter or digit the safety patterns read ("-", "???", another script): the
        # sensitive rules cannot judge it, so it is as good as unknown.
        return _deny(EligibilityReason.CALL_TYPE_UNKNOWN, f"unreadable: {call.call_type!r}")
    if call.priority is None:
        return _deny(EligibilityReason.PRIORITY_UNKNOWN)
    if call.priority not in policy.eligible_priorities:
        return _deny(EligibilityReason.PRIORITY_NOT_ELIGIBLE, f"priority {call.priority}")
    if not call.caller_phone:
        return _deny(EligibilityReason.NO_PHONE)
    if not is_e164(call.caller_phone):
        return _deny(EligibilityReason.PHONE_INVALID, "not an E.164 number")
    if call.caller_phone == call.unusable_phone:
        return _deny(EligibilityReason.PHONE_UNUSABLE, "the SMS provider refused this number")
    if call.caller_line_type == LineType.LANDLINE:
        return _deny(EligibilityReason.PHONE_LANDLINE)
    voip_allowed = call.caller_line_type == LineType.VOIP and policy.allow_voip
    if call.caller_line_type != LineType.MOBILE and not voip_allowed:
        return _deny(EligibilityReason.PHONE_NOT_MOBILE, str(call.caller_line_type or "unknown"))
    if call.opted_out:
        return _deny(EligibilityReason.OPTED_OUT)
    return Decision(eligible=True, reason=EligibilityReason.ELIGIBLE.value)


_E164 = re.compile(r"^\+[1-9][0-9]{7,14}$")


def is_e164(phone: str) -> bool:
    """Shape check only: numbers are parsed and validated with `phonenumbers` at the edge."""
    return bool(_E164.match(phone))
