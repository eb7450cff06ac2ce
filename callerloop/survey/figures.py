"""The survey's figures from counts, the same for the dashboard and the open data: shares
with their 95 % Wilson score interval, the response rate in AAPOR's terms, and "who
answered vs who was texted" (a group's share of the responses against its share of the
invitations). Pure functions over counts: no database, no rounding (callers round).

Response rate (AAPOR, Standard Definitions): responses (complete and partial: any
question may be skipped, I + P) over survey invitations the carrier confirmed delivered
(the eligible cases reached: I + P + R + NC + O). Invitations handed to the carrier
without a delivery receipt (undelivered, or none yet) are of unknown eligibility and left
out (e = 0): that is AAPOR's RR6. A provider that reports no delivery at all (the
`local` one) leaves only the invitations sent to count: the rate is then over those, and
says so (`Basis.SENT`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

CONFIDENCE = 0.95

Group = TypeVar("Group")


@dataclass(frozen=True)
class Share:
    """`part` of `whole`, with its Wilson score interval at CONFIDENCE."""

    part: int
    whole: int
    value: float
    low: float
    high: float


def share(part: int, whole: int) -> Share | None:
    """`part` of `whole` with its interval; None when `whole` is 0 (no share to speak of).
    A part that is negative or larger than the whole is not a share: ValueError."""
    if whole < 0 or part < 0 or part > whole:
        raise ValueError(f"share: {part} of {whole} is not a share (0 <= part <= whole)")
    if whole == 0:
        return None
    return Share(part, whole, part / whole, *_wilson(part, whole))


@functools.lru_cache(maxsize=16384)
def _wilson(part: int, whole: int) -> tuple[float, float]:
    """Cached: scipy's binomtest works out a p-value too (a third of a millisecond), and
    the same small counts come back across groups and months."""
    # Imported when first used: scipy.stats takes seconds to import, and most processes
    # (the worker, the CLI) never compute an interval.
    from scipy.stats import binomtest  # type: ignore[import-untyped]

    interval = binomtest(part, whole).proportion_ci(confidence_level=CONFIDENCE, method="wilson")
    return float(interval.low), float(interval.high)


class Basis(StrEnum):
    """What a response rate is over: invitations confirmed delivered, or (when the
    provider reports no delivery) invitations sent."""

    DELIVERED = "delivered"
    SENT = "sent"


def basis(without_receipts: int) -> Basis:
    """The basis of every rate of a scope (a month, a dashboard view): over invitations
    sent as soon as one of them went through a provider that reports no delivery, so that
    every rate of the scope, and its groups' shares, count the same thing."""
    return Basis.SENT if without_receipts else Basis.DELIVERED


def invitations(counted_as: Basis, sent: int, delivered: int) -> int:
    """The invitations a rate of `counted_as` is over."""
    return delivered if counted_as is Basis.DELIVERED else sent


def response_rate(responses: int, invited: int) -> Share | None:
    """Responses over invitations (see the module's docstring). None when nobody was
    invited, or when there are more responses than confirmed invitations: receipts went
    missing (a response cannot be traced to its invitation), so no rate can be given."""
    if responses > invited:
        return None
    return share(responses, invited)


@dataclass(frozen=True)
class Represented:
    """Who answered vs who was texted: a group's share of the invitations (every one of
    them is counted: no interval) and its share of the responses (with its interval)."""

    of_invitations: float | None
    of_responses: Share | None


def represented(responses: int, all_responses: int, invited: int, all_invited: int) -> Represented:
    """A group's shares of the responses and invitations of everyone it is part of."""
    return Represented(
        invited / all_invited if all_invited else None, share(responses, all_responses)
    )


def represented_groups(
    responses: Mapping[Group, int], invited: Mapping[Group, int]
) -> dict[Group, Represented]:
    """Each group's shares, for the groups of one breakdown (together they are everyone),
    in the order they come (responses' groups first)."""
    all_responses, all_invited = sum(responses.values()), sum(invited.values())
    return {
        group: represented(
            responses.get(group, 0), all_responses, invited.get(group, 0), all_invited
        )
        for group in dict.fromkeys([*responses, *invited])
    }
