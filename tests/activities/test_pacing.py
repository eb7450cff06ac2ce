"""The pacer keeps provider requests 1/rate apart even when sends are held up between
their turn and their request (what bunched texts into one second under load)."""

from __future__ import annotations

import itertools
import threading
import time

from activities.pacing import Pacer

RATE = 20.0  # messages per second: short waits, the same rule
INTERVAL = 1 / RATE


def test_sends_held_up_after_their_turn_still_reach_the_provider_spaced() -> None:
    pacer = Pacer(RATE)
    requests: list[float] = []
    lock = threading.Lock()

    def send(held_up: float) -> None:
        pacer.wait_turn()
        time.sleep(held_up)  # e.g. waiting on a database lock to record the hand-over
        pacer.space_requests()
        with lock:
            requests.append(time.monotonic())

    # The first sends are held up long enough for the later ones to catch up with them.
    holds = [4 * INTERVAL, 3 * INTERVAL, 2 * INTERVAL, 0.0, 0.0, 0.0]
    threads = [threading.Thread(target=send, args=(hold,)) for hold in holds]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    requests.sort()
    gaps = [later - earlier for earlier, later in itertools.pairwise(requests)]
    assert len(requests) == len(holds)
    assert min(gaps) >= INTERVAL * 0.99, gaps


def test_sends_that_are_not_held_up_are_not_delayed_further() -> None:
    pacer = Pacer(RATE)
    started = time.monotonic()
    for _ in range(5):
        pacer.wait_turn()
        pacer.space_requests()
    # Five turns take four intervals; the second gate adds nothing when the first spaced them.
    assert time.monotonic() - started < 4 * INTERVAL + 0.15
