"""The survey's figures against hand-computed examples: Wilson score intervals (as
scipy computes them), the response rate over invitations delivered or sent, and who
answered vs who was texted.

Wilson's 95 % score interval of k of n, worked by hand below with z = 1.959964
(z² = 3.841459), p = k / n:

    centre    = (p + z²/2n) / (1 + z²/n)
    half      = z · √(p(1 - p)/n + z²/4n²) / (1 + z²/n)
    interval  = centre ± half
"""

from __future__ import annotations

import pytest

from callerloop.survey.figures import (
    Basis,
    basis,
    invitations,
    represented_groups,
    response_rate,
    share,
)

FOUR_DECIMALS = 5e-5


def test_seven_of_twenty_by_hand() -> None:
    # p = 0.35; 1 + z²/n = 1.192073; centre = (0.35 + 0.096036) / 1.192073 = 0.374169;
    # half = 1.959964 · √(0.011375 + 0.002401) / 1.192073 = 0.192977:
    # 0.374169 ∓ 0.192977 = 0.1812 to 0.5671.
    found = share(7, 20)
    assert found is not None
    assert (found.part, found.whole, found.value) == (7, 20, 0.35)
    assert found.low == pytest.approx(0.1812, abs=FOUR_DECIMALS)
    assert found.high == pytest.approx(0.5671, abs=FOUR_DECIMALS)


@pytest.mark.parametrize(
    ("part", "whole", "low", "high"),
    [
        # p = 0.1: centre (0.1 + 0.192073) / 1.384146 = 0.211013, half 0.193137.
        (1, 10, 0.0179, 0.4042),
        # p = 0.875: centre (0.875 + 0.240091) / 1.480182 = 0.753347, half 0.224235.
        (7, 8, 0.5291, 0.9776),
        # p = 5/7: centre (0.714286 + 0.274390) / 1.548780 = 0.638358, half 0.279424.
        (5, 7, 0.3589, 0.9178),
        # p = 0: the interval starts at 0 and ends at 2 · centre = 2 · 0.217241.
        (0, 5, 0.0, 0.4345),
        # p = 1: it ends at 1 and starts at n / (n + z²) = 1 / 4.841459.
        (1, 1, 0.2065, 1.0),
    ],
)
def test_wilson_intervals_by_hand(part: int, whole: int, low: float, high: float) -> None:
    found = share(part, whole)
    assert found is not None
    assert found.low == pytest.approx(low, abs=FOUR_DECIMALS)
    assert found.high == pytest.approx(high, abs=FOUR_DECIMALS)


def test_no_share_of_nothing_and_no_share_above_the_whole() -> None:
    assert share(0, 0) is None
    with pytest.raises(ValueError, match=r"share: 3 of 2 is not a share"):
        share(3, 2)
    with pytest.raises(ValueError, match=r"share: -1 of 2 is not a share"):
        share(-1, 2)


def test_response_rate_is_over_delivered_or_sent_as_the_provider_allows() -> None:
    # 25 invitations sent, 20 confirmed delivered, 7 answered: RR = 7 / 20 = 0.35.
    with_receipts = basis(without_receipts=0)
    assert with_receipts is Basis.DELIVERED
    rate = response_rate(7, invitations(with_receipts, sent=25, delivered=20))
    assert rate is not None and (rate.part, rate.whole) == (7, 20)
    assert rate.value == 0.35
    # The local provider reports no delivery: the rate is over the 25 sent, and says so.
    without = basis(without_receipts=25)
    assert without is Basis.SENT
    rate = response_rate(7, invitations(without, sent=25, delivered=0))
    assert rate is not None and rate.value == 0.28
    # More answers than confirmed deliveries: receipts went missing; no rate is made up.
    assert response_rate(3, 2) is None
    assert response_rate(0, 0) is None


def test_who_answered_vs_who_was_texted_by_hand() -> None:
    # 20 English and 10 Spanish surveys delivered; 7 and 1 answered. English speakers are
    # 20/30 = 0.6667 of those texted and 7/8 = 0.875 of those who answered (0.5291 to
    # 0.9776); Spanish speakers 10/30 = 0.3333 and 1/8 = 0.125 (0.0224 to 0.4709).
    shares = represented_groups({"en": 7, "es": 1}, {"en": 20, "es": 10})
    english, spanish = shares["en"], shares["es"]
    assert english.of_invitations == pytest.approx(0.6667, abs=FOUR_DECIMALS)
    assert spanish.of_invitations == pytest.approx(0.3333, abs=FOUR_DECIMALS)
    assert english.of_responses is not None and spanish.of_responses is not None
    assert english.of_responses.value == 0.875 and spanish.of_responses.value == 0.125
    assert english.of_responses.low == pytest.approx(0.5291, abs=FOUR_DECIMALS)
    assert english.of_responses.high == pytest.approx(0.9776, abs=FOUR_DECIMALS)
    assert spanish.of_responses.low == pytest.approx(0.0224, abs=FOUR_DECIMALS)
    assert spanish.of_responses.high == pytest.approx(0.4709, abs=FOUR_DECIMALS)
    # A group texted but never answering still shows: none of the responses.
    silent = represented_groups({"en": 4}, {"en": 10, "fr": 5})["fr"]
    assert silent.of_invitations == pytest.approx(1 / 3)
    assert silent.of_responses is not None and silent.of_responses.value == 0.0
