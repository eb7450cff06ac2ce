"""Pacing each sender to its messages per second inside the SMS worker.

The Temporal server already rate-limits the sender's task queue, but its token bucket lets
short bursts through; carriers count per second. Two gates, both 1/rate apart:
- `wait_turn` hands out slots before a send is recorded as handed over, so a send waits
  for its turn while nothing says it may have reached the provider;
- `space_requests`, right before the provider request: a thread can be held up between
  its slot and its request (a database lock, the GIL), and sends held up together would
  otherwise reach the provider together. This wait is short: the slots already spaced them.
"""

from __future__ import annotations

import threading
import time


class Pacer:
    def __init__(self, messages_per_second: float) -> None:
        self._interval = 1.0 / messages_per_second
        self._next_slot = 0.0
        self._last_request = float("-inf")
        self._slot_lock = threading.Lock()
        self._request_lock = threading.Lock()

    def wait_turn(self) -> None:
        """Block until this caller's slot; slots are handed out first come, first served."""
        with self._slot_lock:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self._interval
        time.sleep(max(0.0, slot - now))

    def space_requests(self) -> None:
        """Block until 1/rate has passed since the previous provider request began."""
        with self._request_lock:
            wait = self._last_request + self._interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self._last_request = time.monotonic()
