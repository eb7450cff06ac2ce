"""What the activities count in Prometheus: each send attempt by outcome, the latency from
the CAD event to the hand-off, events and decisions recorded once however often a record
is retried, opt-outs and opt-ins."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.call_records import CallRecordActivities
from activities.sms_providers.base import (
    OutgoingText,
    PermanentProviderError,
    TransientProviderError,
)
from activities.texts import TextActivities
from callerloop.core.db import Database
from callerloop.messaging.opt_outs import record_opt_out
from tests.factories import RecordingProvider, hand_over_long_ago, make_agency
from workflows.activity_errors import SmsFailure
from workflows.model import (
    CadEventType,
    CallSnapshot,
    Decision,
    EventRecord,
    RecordCallInput,
    SendTextInput,
    TextKind,
)

AGENCY = "metricsville"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def texts(kind: str, status: str) -> float:
    return sample("callerloop_texts_total", agency=AGENCY, kind=kind, status=status)


def handoffs(kind: str) -> float:
    return sample("callerloop_cad_event_to_handoff_seconds_count", agency=AGENCY, kind=kind)


def send_input(incident: str, kind: TextKind = TextKind.CONFIRMATION) -> SendTextInput:
    return SendTextInput(
        workflow_id=f"call/{AGENCY}/{incident}",
        agency=AGENCY,
        incident_id=incident,
        case_number="25-000001",
        kind=kind,
        language="en",
        to="+17035550142",
    )


def record_input(incident: str, event_type: CadEventType, decision: Decision) -> RecordCallInput:
    now = datetime.now(UTC)
    return RecordCallInput(
        workflow_id=f"call/{AGENCY}/{incident}",
        snapshot=CallSnapshot(agency=AGENCY, incident_id=incident),
        events=[EventRecord(f"{incident}-{event_type}", event_type, now, applied=True)],
        decision=decision,
        decided_at=now,
    )


@pytest.fixture
def activities(database: Database, provider: RecordingProvider) -> TextActivities:
    agency = make_agency(AGENCY)
    return TextActivities(database, {agency.id: agency}, provider, "https://callerloop.test")


def fail_with(error: Exception) -> Callable[[OutgoingText], None]:
    def fail(text: OutgoingText) -> None:
        raise error

    return fail


def test_each_send_attempt_is_counted_by_outcome(
    activities: TextActivities, provider: RecordingProvider, database: Database
) -> None:
    env = ActivityEnvironment()
    before = {s: texts("confirmation", s) for s in ("queued", "duplicate", "retrying", "failed")}
    before_unknown = texts("assigned", "unknown")

    provider.failures.append(fail_with(TransientProviderError("20429", "Too Many Requests")))
    with pytest.raises(TransientProviderError):
        env.run(activities.send_text, send_input("M-1"))
    env.run(activities.send_text, send_input("M-1"))  # the retry goes through
    env.run(activities.send_text, send_input("M-1"))  # a replayed send: already in the outbox

    provider.failures.append(
        fail_with(PermanentProviderError(SmsFailure.NUMBER_UNUSABLE, "21614", "not a mobile"))
    )
    with pytest.raises(ApplicationError):
        env.run(activities.send_text, send_input("M-2"))

    provider.failures.append(fail_with(ConnectionResetError("worker died mid-send")))
    with pytest.raises(ConnectionResetError):
        env.run(activities.send_text, send_input("M-3", TextKind.ASSIGNED))
    hand_over_long_ago(database)
    env.run(activities.send_text, send_input("M-3", TextKind.ASSIGNED))

    assert texts("confirmation", "retrying") == before["retrying"] + 1
    assert texts("confirmation", "queued") == before["queued"] + 1
    assert texts("confirmation", "duplicate") == before["duplicate"] + 1
    assert texts("confirmation", "failed") == before["failed"] + 1
    assert texts("assigned", "unknown") == before_unknown + 1


def test_the_handoff_latency_runs_from_the_recorded_cad_event(
    activities: TextActivities, database: Database
) -> None:
    env = ActivityEnvironment()
    records = CallRecordActivities(database)
    eligible = Decision(eligible=True, reason="eligible")
    before = {kind: handoffs(kind) for kind in ("confirmation", "survey")}
    before_sum = sample(
        "callerloop_cad_event_to_handoff_seconds_sum", agency=AGENCY, kind="confirmation"
    )

    env.run(records.record_call, record_input("L-1", CadEventType.CREATED, eligible))
    started = datetime.now(UTC)
    env.run(activities.send_text, send_input("L-1"))
    elapsed = (datetime.now(UTC) - started).total_seconds()
    env.run(activities.send_text, send_input("L-1", TextKind.SURVEY))  # a timer's text

    assert handoffs("confirmation") == before["confirmation"] + 1
    assert handoffs("survey") == before["survey"]  # not an answer to a CAD event
    observed = (
        sample("callerloop_cad_event_to_handoff_seconds_sum", agency=AGENCY, kind="confirmation")
        - before_sum
    )
    assert 0 <= observed < elapsed + 1


def test_events_and_decisions_are_counted_once_however_often_recorded(
    database: Database,
) -> None:
    env = ActivityEnvironment()
    records = CallRecordActivities(database)
    blocked = Decision(eligible=False, reason="call_type_excluded", permanent=True)
    events = sample(
        "callerloop_cad_events_total", agency=AGENCY, event_type="updated", applied="true"
    )
    decisions = sample(
        "callerloop_eligibility_decisions_total",
        agency=AGENCY,
        eligible="false",
        reason="call_type_excluded",
    )
    recorded = record_input("R-1", CadEventType.UPDATED, blocked)
    env.run(records.record_call, recorded)
    env.run(records.record_call, recorded)  # a retried activity
    assert (
        sample("callerloop_cad_events_total", agency=AGENCY, event_type="updated", applied="true")
        == events + 1
    )
    assert (
        sample(
            "callerloop_eligibility_decisions_total",
            agency=AGENCY,
            eligible="false",
            reason="call_type_excluded",
        )
        == decisions + 1
    )


def test_opt_outs_and_opt_ins_are_counted(database: Database) -> None:
    outs = sample("callerloop_opt_outs_total", agency=AGENCY)
    ins = sample("callerloop_opt_ins_total", agency=AGENCY)
    record_opt_out(database, AGENCY, "+17035550142", "STOP", True)
    record_opt_out(database, AGENCY, "+17035550142", "START", False)
    record_opt_out(database, AGENCY, "+17035550143", "ALTO", True)
    assert sample("callerloop_opt_outs_total", agency=AGENCY) == outs + 2
    assert sample("callerloop_opt_ins_total", agency=AGENCY) == ins + 1
