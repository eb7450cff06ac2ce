"""The Python CadClient against a real worker: what it delivers is what the call applies."""

from __future__ import annotations

from dataclasses import replace

from tests.factories import RecordingProvider, cad_event, eligible_call, new_incident_id
from tests.harness import Harness
from workflows.model import CadEventType


async def test_two_events_without_ids_through_the_python_client_are_both_applied(
    harness: Harness, provider: RecordingProvider
) -> None:
    """Once both were deduplicated on the empty id: the assignment never reached the caller
    (issue 20, finding 6). The client now derives the id, as every entry path does."""
    incident = new_incident_id()
    created = replace(eligible_call(incident), event_id="")
    assigned = replace(cad_event(incident, CadEventType.ASSIGNED, minutes=5), event_id="")

    await harness.send(created)
    state = await harness.send(assigned)

    confirmation, *updates = [text.body for text in provider.accepted]
    assert confirmation.startswith("Testville PD: we received your call.")
    assert updates == [f"Testville PD: an officer has been assigned to case C{incident}."]
    assert (state.events_applied, state.events_ignored) == (2, 0)
    assert len(set(state.applied_event_ids)) == 2 and "" not in state.applied_event_ids
