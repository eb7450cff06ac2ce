"""Pacing each sender to its messages per second inside the SMS worker.

The Temporal server already rate-limits the sender's task queue, but its token bucket lets
short bursts through; carriers count per second. The pacer spaces provider calls at least
1/rate apart, so no second ever carries more than the sender's rate from this worker.
"""

from __future__ import annotations

import threading
import time


class Pacer:
    def __init__(self, messages_per_second: float) -> None:
        self._interval = 1.0 / messages_per_second
        self._next_slot = 0.0
        self._lock = threading.Lock()

    def wait_turn(self) -> None:
        """Block until this caller's slot; slots are handed out first come, first served."""
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self._interval
        time.sleep(max(0.0, slot - now))
