"""The safety facts of a chaos run and their schedule, drawn from a seed like the faults:
CAD reclassifying a call mid-call (sensitive, escalated, do-not-text) and the caller
replying STOP, then START. Each fact follows one of its call's CAD events, so it races
that event's text: right after it, or while Twilio refuses the caller's texts (429 or
500) and the text waits for its retry."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from callerloop.cad.replay import ReplayCall
from chaos.oracle import AgencyRules
from workflows.model import CadEvent, CadEventType


class Fact(StrEnum):
    SENSITIVE = "CAD reclassified a call as DOMESTIC DISTURBANCE"
    ESCALATED = "CAD escalated a call above the eligible priorities"
    DO_NOT_TEXT = "CAD flagged a call do-not-text"
    STOP_THEN_START = "the caller replied STOP, then START"


class Race(StrEnum):
    AFTER_EVENT = "right after a CAD event that texts"
    IN_RETRY = "while Twilio refuses the caller's texts (429/500)"


RECLASSIFICATIONS = (Fact.SENSITIVE, Fact.ESCALATED, Fact.DO_NOT_TEXT)
SENSITIVE_CALL_TYPE = "DOMESTIC DISTURBANCE"
# The CAD events whose text a fact races (a timer's texts have no event to follow).
TEXTING_EVENTS = (CadEventType.CREATED, CadEventType.ASSIGNED, CadEventType.CLEARED)

# The short run has few eligible calls (8 of its 40): one of each fact, two in retries.
SHORT_RUN: Counter[tuple[Fact, Race]] = Counter(
    {
        (Fact.SENSITIVE, Race.IN_RETRY): 1,
        (Fact.ESCALATED, Race.AFTER_EVENT): 1,
        (Fact.DO_NOT_TEXT, Race.AFTER_EVENT): 1,
        (Fact.STOP_THEN_START, Race.IN_RETRY): 1,
    }
)
FULL_RUN: Counter[tuple[Fact, Race]] = Counter({(fact, race): 2 for fact in Fact for race in Race})
# START this long after the STOP was accepted: within the call's life (a short-run call
# lasts seconds, a full-run call minutes), always longer than the stack's grace.
SHORT_START_AFTER = (1.5, 4.0)
FULL_START_AFTER = (5.0, 30.0)


@dataclass(frozen=True)
class PlannedFact:
    incident_id: str
    phone: str
    fact: Fact
    race: Race
    trigger: str  # the event id of the CAD event it follows
    delay: float  # seconds after the trigger was accepted (AFTER_EVENT)
    twilio_status: int  # what Twilio answers the caller's texts meanwhile (IN_RETRY)
    hold: float  # seconds Twilio keeps refusing once the fact is accepted (IN_RETRY)
    start_after: float  # STOP_THEN_START: seconds from the STOP's acceptance to the START


def plan(
    seed: int,
    calls: Sequence[ReplayCall],
    eligible: Iterable[str],
    wanted: Counter[tuple[Fact, Race]],
    *,
    short: bool,
) -> list[PlannedFact]:
    """Each wanted fact on a call of its own, with a number of its own: eligible calls (a
    fact about a call that never texts tests nothing), the longest-lived ones for the
    races with a retry, as their texts have the most time to be in flight."""
    rng = random.Random(f"facts:{seed}")
    allowed = set(eligible)
    free = [call for call in calls if call.incident_id in allowed and _phone(call)]
    rng.shuffle(free)
    kinds = sorted(wanted.elements(), key=lambda kind: kind[1] != Race.IN_RETRY)
    planned: list[PlannedFact] = []
    for fact, race in kinds:
        if not free:
            break
        call = _pick(free, race, rng)
        free = [other for other in free if _phone(other) != _phone(call)]
        planned.append(_planned(call, fact, race, rng, short))
    return planned


def _pick(free: list[ReplayCall], race: Race, rng: random.Random) -> ReplayCall:
    if race != Race.IN_RETRY:
        return free[0]
    longest = sorted(free, key=_lifetime, reverse=True)[:3]
    return rng.choice(longest)


def _planned(
    call: ReplayCall, fact: Fact, race: Race, rng: random.Random, short: bool
) -> PlannedFact:
    # In a retry: the confirmation, the first text, is the one Twilio refuses.
    candidates = [e for e in call.events if e.event_type in TEXTING_EVENTS]
    trigger = call.events[0] if race == Race.IN_RETRY else rng.choice(candidates)
    low, high = SHORT_START_AFTER if short else FULL_START_AFTER
    return PlannedFact(
        incident_id=call.incident_id,
        phone=_phone(call) or "",
        fact=fact,
        race=race,
        trigger=trigger.event_id,
        delay=round(rng.uniform(0.0, 0.3), 2),
        twilio_status=rng.choice((429, 500)),
        hold=round(rng.uniform(0.3, 1.5), 2),
        start_after=round(rng.uniform(low, high), 2),
    )


def _phone(call: ReplayCall) -> str | None:
    return call.events[0].caller_phone


def _lifetime(call: ReplayCall) -> timedelta:
    return call.events[-1].occurred_at - call.created_at


def reclassification(planned: PlannedFact, trigger: CadEvent, rules: AgencyRules) -> CadEvent:
    """The `updated` event CAD sends for the fact: a second after the trigger, CAD time,
    so it is the call's newest word on the field it changes."""
    event = CadEvent(
        agency=trigger.agency,
        incident_id=trigger.incident_id,
        event_type=CadEventType.UPDATED,
        occurred_at=trigger.occurred_at + timedelta(seconds=1),
        event_id=f"{trigger.incident_id}:chaos-{planned.fact.name.lower()}:1",
    )
    match planned.fact:
        case Fact.SENSITIVE:
            event.call_type = SENSITIVE_CALL_TYPE
        case Fact.ESCALATED:
            event.priority = rules.escalated_priority()
        case Fact.DO_NOT_TEXT:
            event.do_not_text = True
        case _:
            raise ValueError(f"{planned.fact} is not a CAD reclassification")
    return event
