"""Where the first text's time goes, read from each call's Temporal history:

submitted ─ingest─▶ workflow started ─Temporal start─▶ first workflow task started
─eligibility─▶ send activity scheduled ─send activity─▶ provider hand-off

"ingest" is the client's request reaching Temporal (for HTTP: the web app's key check,
validation and signal-with-start); "Temporal start" is the server handing the first
workflow task to the worker; "eligibility" is the workflow's first steps (policy, opt-out
registry, record, decide: local activities) until it schedules the text; "send activity" is
the SMS task queue, rendering, the outbox writes and the provider call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from bench.load import TextLatency
from bench.stats import summarize

STAGES = ("ingest", "temporal_start", "eligibility", "send_activity")


@dataclass
class Breakdown:
    ingest: float
    temporal_start: float
    eligibility: float
    send_activity: float


async def first_text_breakdown(client: Client, latency: TextLatency) -> Breakdown | None:
    handle = client.get_workflow_handle(latency.text.workflow_id)
    history = await handle.fetch_history()
    started = first_task = scheduled = None
    for event in history.events:
        at = event.event_time.ToMicroseconds() / 1e6
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED and started is None:
            started = at
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED and first_task is None:
            first_task = at
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attributes = event.activity_task_scheduled_event_attributes
            if attributes.activity_type.name == "send_text":
                scheduled = at
                break
    if started is None or first_task is None or scheduled is None:
        return None
    assert latency.text.sent_at is not None
    return Breakdown(
        ingest=started - latency.trigger.submitted,
        temporal_start=first_task - started,
        eligibility=scheduled - first_task,
        send_activity=latency.text.sent_at - scheduled,
    )


async def breakdowns(
    client: Client, latencies: Sequence[TextLatency], concurrency: int = 16
) -> list[Breakdown]:
    """The breakdown of every first text (the confirmation) among `latencies`."""
    slots = asyncio.Semaphore(concurrency)

    async def one(latency: TextLatency) -> Breakdown | None:
        async with slots:
            return await first_text_breakdown(client, latency)

    firsts = [lat for lat in latencies if lat.text.kind == "confirmation"]
    found = await asyncio.gather(*(one(lat) for lat in firsts))
    return [b for b in found if b is not None]


def summarize_breakdowns(found: Sequence[Breakdown]) -> dict[str, object]:
    return {stage: summarize(getattr(b, stage) for b in found).as_dict() for stage in STAGES}
