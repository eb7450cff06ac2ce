"""Each sender's texts are paced at its messages per second, however many calls arrive at
once: the SMS task queue is rate-limited by the Temporal server (the dev server here) and
the worker spaces provider calls. Sent with the real twilio client to the local stand-in.

The spacing is measured where the worker hands a text to the twilio client. The stand-in's
own arrival times are not a fair clock here: it shares this process (and its GIL) with
fifty calls' first workflow tasks, so requests sent 200 ms apart can be read together."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from temporalio.testing import WorkflowEnvironment

from activities.sms_providers.base import OutgoingText, ProviderReceipt
from activities.sms_providers.twilio import TwilioProvider
from callerloop.core.db import Database
from devtools.twilio_standin import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, TwilioStandIn
from tests.conftest import start_harness
from tests.factories import eligible_call, make_agency, new_incident_id
from tests.harness import Harness

RATE = 5  # messages per second
BURST = 50  # calls at once


@pytest.fixture
def standin() -> Iterator[TwilioStandIn]:
    with TwilioStandIn() as running:
        yield running


class TimedTwilioProvider(TwilioProvider):
    """The real provider, noting when each request leaves the worker."""

    requests: list[float]

    def send(self, text: OutgoingText) -> ProviderReceipt:
        self.requests.append(time.monotonic())
        return super().send(text)


@pytest.fixture
def provider_requests() -> list[float]:
    return []


@pytest.fixture
async def paced_harness(
    dev_server: WorkflowEnvironment,
    database: Database,
    standin: TwilioStandIn,
    provider_requests: list[float],
) -> AsyncIterator[Harness]:
    agency = make_agency(texts={"messages_per_second": RATE})
    provider = TimedTwilioProvider(
        DEFAULT_ACCOUNT_SID,
        DEFAULT_AUTH_TOKEN,
        api_base_url=standin.base_url,
        lookups_base_url=standin.base_url,
    )
    provider.requests = provider_requests
    async for running in start_harness(dev_server, database, {agency.id: agency}, provider):
        yield running


def busiest_window(times: list[float], seconds: float) -> int:
    """The most texts Twilio received within any window of `seconds`."""
    return max(sum(1 for t in times if start <= t < start + seconds) for start in times)


async def test_burst_of_calls_never_exceeds_the_sender_rate(
    paced_harness: Harness, standin: TwilioStandIn, provider_requests: list[float]
) -> None:
    incidents = [new_incident_id() for _ in range(BURST)]
    await asyncio.gather(*(paced_harness.cad.send(eligible_call(i)) for i in incidents))
    for _ in range(600):
        if len(standin.messages) == BURST:
            break
        await asyncio.sleep(0.05)
    assert len(standin.messages) == BURST
    assert (
        len({m.to for m in standin.messages}) == 1 and len(paced_harness.outbox(incidents[0])) == 1
    )
    times = sorted(provider_requests)
    assert len(times) == BURST  # one request per text: none retried, none sent twice
    # Requests leave 1/rate apart, so no second carries more than the rate, and the queue
    # drains at the rate: 50 texts at 5/s take about 10 s, not less.
    assert busiest_window(times, seconds=1.0) <= RATE
    assert min(b - a for a, b in itertools.pairwise(times)) >= 0.99 / RATE
    assert times[-1] - times[0] >= 0.99 * (BURST - 1) / RATE
