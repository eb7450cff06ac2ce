"""What the CAD edge holds for the hand-off, judged by the hand-off's own question
(`Outbox.withdrawn`), on both database backends."""

from __future__ import annotations

from activities.outbox import Outbox
from callerloop.cad.edge_stops import hold_at_edge
from callerloop.core.db import Database
from tests.factories import cad_event, make_agency, new_incident_id
from workflows.call_for_service import workflow_id_for
from workflows.model import CadEventType

AGENCIES = {"testville": make_agency()}


def may_hand_over(db: Database, incident: str, kind: str) -> bool:
    return not Outbox(db.engine).withdrawn(
        workflow_id_for("testville", incident),
        0,
        kind=kind,
        agency="testville",
        phone_pseudonym=db.pseudonym("+17035550142"),
    )


def test_a_close_holds_back_the_earlier_stages_until_a_later_reopen(database: Database) -> None:
    incident = new_incident_id()
    for event_type, minute in [(CadEventType.CLEARED, 10), (CadEventType.REOPENED, 5)]:
        hold_at_edge(database, AGENCIES, cad_event(incident, event_type, minutes=minute))
    assert not may_hand_over(database, incident, "assigned"), "a reopen older than the close"
    assert may_hand_over(database, incident, "cleared") and may_hand_over(
        database, incident, "survey"
    )

    hold_at_edge(database, AGENCIES, cad_event(incident, CadEventType.REOPENED, minutes=12))
    hold_at_edge(database, AGENCIES, cad_event(incident, CadEventType.CANCELLED, minutes=11))
    assert may_hand_over(database, incident, "confirmation"), "a close older than the reopen"


def test_an_unsafe_event_withdraws_every_send_and_a_plain_one_nothing(database: Database) -> None:
    plain, unsafe = new_incident_id(), new_incident_id()
    hold_at_edge(database, AGENCIES, cad_event(plain, CadEventType.UPDATED, call_type="NOISE"))
    hold_at_edge(database, AGENCIES, cad_event(unsafe, CadEventType.UPDATED, priority=1))
    assert may_hand_over(database, plain, "confirmation")
    assert not may_hand_over(database, unsafe, "survey")
