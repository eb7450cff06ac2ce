"""Values no entry path should let through, sent straight to the workflow as a CAD adapter
of its own might: the call records them as ignored, with the reason, and goes on. (The
edge refuses them first: tests/web/test_cad_ingest.py.)"""

from __future__ import annotations

import pytest
from sqlmodel import col, select

from callerloop.core.db import CallEventRecord
from tests.factories import RecordingProvider, cad_event, eligible_call, new_incident_id
from tests.harness import Harness
from workflows.call_for_service import workflow_id_for
from workflows.call_state import REMEMBERED_EVENT_IDS
from workflows.model import CadEventType


def event_notes(harness: Harness, incident: str) -> list[str]:
    with harness.db.session() as session:
        return list(
            session.exec(
                select(CallEventRecord.note)
                .where(col(CallEventRecord.workflow_id) == workflow_id_for("testville", incident))
                .order_by(col(CallEventRecord.id))
            )
        )


@pytest.mark.parametrize(
    ("fact", "value"),
    [
        ("priority", 2**63),
        ("priority", -(2**63) - 1),
        ("call_type", "NOISE\x00COMPLAINT"),
        ("call_type", "NOISE " * 100),
        ("case_number", "C-1\nC-2"),
    ],
    ids=["priority-above-int64", "priority-below-int64", "nul", "too-long", "newline"],
)
async def test_a_value_past_the_edge_is_ignored_with_its_reason_and_the_call_goes_on(
    fact: str, value: object, harness: Harness, provider: RecordingProvider
) -> None:
    incident = new_incident_id()
    await harness.send(eligible_call(incident))
    await harness.send(cad_event(incident, CadEventType.UPDATED, minutes=1, **{fact: value}))  # type: ignore[arg-type]
    state = await harness.send(cad_event(incident, CadEventType.ASSIGNED, minutes=2))

    assert provider.kinds() == ["confirmation", "assigned"]
    assert getattr(state, fact) != value
    assert any(f"{fact} ignored" in note for note in event_notes(harness, incident))


async def test_the_event_ids_a_call_remembers_are_bounded(harness: Harness) -> None:
    incident = new_incident_id()
    await harness.send(eligible_call(incident))
    updates = [
        cad_event(incident, CadEventType.UPDATED, minutes=minute, disposition=f"note {minute}")
        for minute in range(1, REMEMBERED_EVENT_IDS + 60)
    ]
    for update in updates:
        await harness.cad.send(update)
    harness.sent_events[incident] += len(updates)
    state = await harness.settle(
        incident, lambda s: s.events_applied + s.events_ignored >= harness.sent_events[incident]
    )
    assert state.events_applied == len(updates) + 1
    assert len(state.applied_event_ids) <= REMEMBERED_EVENT_IDS
    # The latest are still recognised as duplicates.
    again = await harness.send(updates[-1])
    assert again.events_ignored == 1
