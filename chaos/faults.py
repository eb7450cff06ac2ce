"""The faults of a chaos run and their schedule, drawn from a seed: the same seed breaks
the same things in the same order at the same moments of the run."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum


class Fault(StrEnum):
    WORKER_KILLED = "worker SIGKILLed and restarted"
    WORKER_KILLED_MID_SEND = "worker SIGKILLed mid-send (Twilio holds the text) and restarted"
    WEB_KILLED = "web app SIGKILLed and restarted"
    SERVER_RESTARTED = "Temporal dev server restarted on the same SQLite file"
    TWILIO_500 = "Twilio answered 500 for a few seconds"
    TWILIO_429 = "Twilio answered 429 for a few seconds"
    TWILIO_TIMEOUT = "Twilio answered after the client's timeout"
    CALLBACKS_DROPPED = "status callbacks dropped"


# How many of each a run injects: every kind at least once.
SHORT_RUN: Counter[Fault] = Counter(
    {
        Fault.WORKER_KILLED: 2,
        Fault.WORKER_KILLED_MID_SEND: 1,
        Fault.WEB_KILLED: 1,
        Fault.SERVER_RESTARTED: 1,
        Fault.TWILIO_500: 2,
        Fault.TWILIO_429: 2,
        Fault.TWILIO_TIMEOUT: 1,
        Fault.CALLBACKS_DROPPED: 2,
    }
)
FULL_RUN: Counter[Fault] = Counter(
    {
        Fault.WORKER_KILLED: 2,
        Fault.WORKER_KILLED_MID_SEND: 2,
        Fault.WEB_KILLED: 2,
        Fault.SERVER_RESTARTED: 2,
        Fault.TWILIO_500: 4,
        Fault.TWILIO_429: 4,
        Fault.TWILIO_TIMEOUT: 3,
        Fault.CALLBACKS_DROPPED: 4,
    }
)


@dataclass(frozen=True)
class Step:
    at: float  # seconds after the replay starts
    fault: Fault
    size: int  # Twilio outage (x 2 s) or callbacks dropped, for the provider's faults
    pause: float  # seconds a killed process stays down


def schedule(seed: int, faults: Counter[Fault], within: float) -> list[Step]:
    """The faults in a seeded order, one in each equal slice of `within` seconds, at a
    seeded moment of its slice: spread out, so each fault's recovery is its own."""
    rng = random.Random(seed)
    kinds = sorted(faults.elements())
    rng.shuffle(kinds)
    width = within / max(len(kinds), 1)
    return [
        Step(
            at=round(width * (n + rng.uniform(0.1, 0.9)), 2),
            fault=fault,
            size=rng.randint(1, 3),
            pause=round(rng.uniform(0.2, 2.0), 2),
        )
        for n, fault in enumerate(kinds)
    ]
