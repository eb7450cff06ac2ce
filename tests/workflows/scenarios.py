"""Random call histories for property-based tests, and the oracle that judges them.

An action is a CAD event, a signal (opt-out, opt-in, suppress) or time passing. The
oracle classifies the call's facts with its own lists, independent of the policy module.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from hypothesis import strategies as st

from tests.factories import T0, cad_event
from workflows.model import CadEvent, CadEventType, CallSource, LineType

SAFE_TYPES = ["NOISE COMPLAINT DELAY", "PARKING COMPLAINT", "LARCENY FROM AUTO DELAY"]
SENSITIVE_TYPES = [
    "DOMESTIC VIOL NO INJ",
    "SEXUAL OFFENSE DELAY",
    "BOMB THREAT",
    "ALARM COMMERCIAL",
    "ABDUCTION IMMEDIATE",
    "PROTECTIVE ORDER ISSUED",
    "SUICIDE DELAY",
    "DEMONSTRATION",
    "STALKING DELAY",
]
IN_PROGRESS_TYPES = ["TRESPASSING IN PROG", "SHOPLIFTING IN PROG"]
EXCLUDED_TYPES = ["WEAPON VIOL GUN DELAY"]  # the test agency's own exclusion
ELIGIBLE_PRIORITIES = (3, 4)  # tests.factories.make_agency
ESCALATED_PRIORITIES = (1, 2)


@dataclass(frozen=True)
class Event:
    event: CadEvent


SignalKind = Literal["opt_out", "opt_in", "suppress"]


@dataclass(frozen=True)
class Signal:
    kind: SignalKind


@dataclass(frozen=True)
class Wait:
    minutes: int


Action = Event | Signal | Wait


def makes_unsafe(action: Action) -> bool:
    """An action after which the call must never be texted again, whatever came before
    or comes after it: judged from what the action says, not from the call's state (an
    event older than the call's facts counts too: CAD said it once)."""
    if isinstance(action, Signal):
        return action.kind == "suppress"
    if not isinstance(action, Event):
        return False
    event = action.event
    return (
        event.source == CallSource.OFFICER
        or event.call_type in SENSITIVE_TYPES + IN_PROGRESS_TYPES + EXCLUDED_TYPES
        or event.priority in ESCALATED_PRIORITIES
        or bool(event.in_progress)
        or bool(event.do_not_text)
    )


def opts_out(action: Action) -> bool | None:
    """True for a STOP, False for a START, None for anything else."""
    if isinstance(action, Signal) and action.kind in ("opt_out", "opt_in"):
        return action.kind == "opt_out"
    return None


@st.composite
def call_histories(
    draw: st.DrawFn, incident_id: str, max_actions: int = 12, eligible_start: bool = False
) -> list[Action]:
    """A created event with random facts (or, with `eligible_start`, facts every rule says
    yes to), then random events, signals and waits. CAD times mostly move forward but
    sometimes go back (late, out-of-order events)."""
    minute = 0

    def next_time() -> int:
        nonlocal minute
        minute += draw(st.integers(min_value=0, max_value=90))
        return minute - draw(st.sampled_from([0, 0, 0, 0, 30]))

    if eligible_start:
        priorities, types = st.sampled_from(ELIGIBLE_PRIORITIES), st.sampled_from(SAFE_TYPES)
        sources, lines = (
            st.sampled_from([CallSource.PHONE, CallSource.E911]),
            st.just(LineType.MOBILE),
        )
    else:
        priorities = st.sampled_from([1, 2, 3, 4, 4, 4, 5])
        types = st.sampled_from(SAFE_TYPES * 3 + SENSITIVE_TYPES + IN_PROGRESS_TYPES)
        sources = st.sampled_from([CallSource.PHONE, CallSource.E911, CallSource.OFFICER])
        lines = st.sampled_from([LineType.MOBILE] * 4 + [LineType.LANDLINE])
    created = cad_event(
        incident_id,
        CadEventType.CREATED,
        at=T0,
        priority=draw(priorities),
        call_type=draw(types),
        source=draw(sources),
        caller_phone="+17035550142",
        caller_line_type=draw(lines),
        caller_language=draw(st.sampled_from(["en", "es", "fr", "de"])),
    )
    actions: list[Action] = [Event(created)]
    for _ in range(draw(st.integers(min_value=0, max_value=max_actions))):
        choice = draw(st.sampled_from(["status", "update", "signal", "wait", "duplicate", "flip"]))
        if choice == "flip":
            # Unsafe, then safe-looking again, then news the caller would be told about.
            field, unsafe_value, safe_value = draw(
                st.sampled_from(
                    [
                        ("call_type", draw(st.sampled_from(SENSITIVE_TYPES)), SAFE_TYPES[0]),
                        ("priority", draw(st.sampled_from(ESCALATED_PRIORITIES)), 4),
                        ("in_progress", True, False),
                        ("do_not_text", True, False),
                    ]
                )
            )
            for value in (unsafe_value, safe_value):
                actions.append(
                    Event(
                        cad_event(
                            incident_id,
                            CadEventType.UPDATED,
                            at=T0 + timedelta(minutes=minute + 1),
                            **{field: value},  # type: ignore[arg-type]
                        )
                    )
                )
                minute += 1
            news = draw(
                st.sampled_from([CadEventType.ASSIGNED, CadEventType.DELAYED, CadEventType.CLEARED])
            )
            minute += 1
            actions.append(Event(cad_event(incident_id, news, at=T0 + timedelta(minutes=minute))))
        elif choice == "status":
            event_type = draw(
                st.sampled_from([t for t in CadEventType if t != CadEventType.UPDATED])
            )
            actions.append(
                Event(cad_event(incident_id, event_type, at=T0 + timedelta(minutes=next_time())))
            )
        elif choice == "update":
            field, value = draw(
                st.sampled_from(
                    [
                        (
                            "call_type",
                            st.sampled_from(SAFE_TYPES + SENSITIVE_TYPES + EXCLUDED_TYPES),
                        ),
                        ("priority", st.integers(min_value=1, max_value=5)),
                        ("in_progress", st.booleans()),
                        ("do_not_text", st.booleans()),
                    ]
                )
            )
            actions.append(
                Event(
                    cad_event(
                        incident_id,
                        CadEventType.UPDATED,
                        at=T0 + timedelta(minutes=next_time()),
                        **{field: draw(value)},  # type: ignore[arg-type]
                    )
                )
            )
        elif choice == "signal":
            kinds: list[SignalKind] = ["opt_out", "opt_out", "opt_in", "suppress"]
            actions.append(Signal(draw(st.sampled_from(kinds))))
        elif choice == "wait":
            actions.append(Wait(draw(st.integers(min_value=1, max_value=3 * 24 * 60))))
        else:
            previous = [a for a in actions if isinstance(a, Event)]
            actions.append(draw(st.sampled_from(previous)))
    return actions
