"""Each sender's texts are paced at its messages per second, however many calls arrive at
once: the SMS task queue is rate-limited by the Temporal server (the dev server here)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest
from temporalio.testing import WorkflowEnvironment

from callerloop.db import Database
from tests.conftest import start_harness
from tests.factories import RecordingProvider, eligible_call, make_agency, new_incident_id
from tests.harness import Harness

RATE = 5  # messages per second
BURST = 50  # calls at once


@pytest.fixture
async def paced_harness(
    dev_server: WorkflowEnvironment, database: Database, provider: RecordingProvider
) -> AsyncIterator[Harness]:
    agency = make_agency(texts={"messages_per_second": RATE})
    async for running in start_harness(dev_server, database, {agency.id: agency}, provider):
        yield running


def busiest_window(times: list[float], seconds: float) -> int:
    """The most texts handed to the provider within any window of `seconds`."""
    return max(sum(1 for t in times if start <= t < start + seconds) for start in times)


async def test_burst_of_calls_never_exceeds_the_sender_rate(
    paced_harness: Harness, provider: RecordingProvider
) -> None:
    incidents = [new_incident_id() for _ in range(BURST)]
    await asyncio.gather(*(paced_harness.cad.send(eligible_call(i)) for i in incidents))
    for _ in range(600):
        if len(provider.accepted) == BURST:
            break
        await asyncio.sleep(0.05)
    assert len(provider.accepted) == BURST
    times = sorted(provider.accepted_at)
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    # Sends are spaced 1/rate apart (less a little timer jitter), so no second carries more
    # than the rate, and the queue drains at the rate: 50 texts at 5/s take about 10 s.
    assert min(gaps) >= 0.9 / RATE
    assert busiest_window(times, seconds=0.99) <= RATE  # 10 ms of slack for timer jitter
    assert times[-1] - times[0] >= 0.95 * (BURST - 1) / RATE
