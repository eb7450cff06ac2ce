"""The chaos run's oracle and verdict on their own: eligibility read from CSV rows and the
agency's TOML, and each breach the verdict must catch."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from callerloop.core.agency_config import load_agencies
from callerloop.core.settings import PROJECT_ROOT
from chaos.facts import FULL_RUN, Fact, Race, plan, reclassification
from chaos.invariants import (
    CALLERS_STOP,
    CLOSED_STAYS_CLOSED,
    IN_ORDER,
    NO_DELAY_ONCE_ASSIGNED,
    NOTHING_STALE_AFTER_START,
    SAFETY_FACT,
    Observed,
    OutboxRow,
    ProviderMessage,
    judge,
)
from chaos.oracle import AgencyRules, Expectation, after_schedule, expectations
from chaos.run import ChaosOptions, choose_day
from chaos.timeline import CadSent, Journal, Keyword, ReplySent
from workflows.model import CadEventType

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
PHONE = "+17035550142"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


HEADER = (
    "Master_Incident_Number,Agency,Problem,Priority_Number,Call_Reception,"
    "Incident_Start_Time,Incident_Queue_Time,Incident_Dispatch_Time,Incident_Enroute_Time,"
    "Incident_Arrival_Time,Incident_First_Close_Time,Final_Closed_Time,Call_Reopened,"
    "Disposition\n"
)
T = "2025-10-16 10:00:00.000"
ROWS = {
    "A": f"A,POLICE,LARCENY FROM AUTO DELAY,4,Phone,{T},{T},{T},{T},{T},{T},{T},0,R-Report\n",
    "B": f"B,POLICE,DOMESTIC VIOL NO INJ,4,Phone,{T},{T},{T},{T},{T},{T},{T},0,R-Report\n",
    "C": f"C,POLICE,TRAFFIC STOP,4,OFFICER,{T},{T},{T},{T},{T},{T},{T},0,R-Report\n",
    "D": f"D,POLICE,NOISE COMPLAINT DELAY,2,E-911,{T},{T},NULL,NULL,NULL,{T},{T},0,CN-Cancelled\n",
    "E": f"E,POLICE,BURGLARY IN PROG,3,Phone,{T},{T},{T},{T},{T},{T},{T},0,R-Report\n",
    "F": f"F,POLICE,PARKING COMPLAINT,8,Phone,{T},{T},{T},{T},{T},{T},{T},0,R-Report\n",
    "G": f"G,POLICE,PARKING COMPLAINT,NULL,Phone,{T},{T},NULL,NULL,NULL,NULL,NULL,0,NULL\n",
}


@pytest.fixture
def rules() -> AgencyRules:
    return AgencyRules.from_toml(PROJECT_ROOT / "agencies" / "example.toml")


def test_eligibility_comes_from_the_csv_and_the_toml(rules: AgencyRules) -> None:
    found = expectations([HEADER, *ROWS.values()], rules, set(ROWS))
    assert {i for i, e in found.items() if e.eligible} == {"A", "D"}
    assert "DOMESTIC" in found["B"].why and found["C"].why == "source officer"
    assert "IN PROG" in found["E"].why and found["F"].why == "priority 8"
    assert found["G"].why == "priority NULL" and found["G"].closing == "open"
    assert found["A"].closing == "cleared" and found["A"].dispatched
    assert found["D"].closing == "cancelled" and not found["D"].dispatched


def message(
    n: int, incident: str, outbox_id: int, seconds: float | None = None, to: str = PHONE
) -> ProviderMessage:
    """Twilio's n-th message, received `seconds` into the run (default: n)."""
    return ProviderMessage(
        f"SM{n}",
        f"case {incident}",
        f"https://x/twilio/status?outbox={outbox_id}",
        to,
        at(n if seconds is None else seconds),
    )


def observed(messages: list[ProviderMessage], rows: list[OutboxRow], **extra: object) -> Observed:
    fields: dict[str, object] = {
        "provider_messages": messages,
        "outbox": rows,
        "skipped": {},
        "recorded_events": {("call/example/A", "A:created:1")},
        "accepted_events": [("call/example/A", "A:created:1")],
        "workflows_not_completed": 0,
    }
    fields.update(extra)
    return Observed(**fields)  # type: ignore[arg-type]


def row(n: int, incident: str, kind: str, status: str = "delivered") -> OutboxRow:
    return OutboxRow(n, f"call/example/{incident}", incident, kind, 1, status)


CLEARED = Expectation("A", True, "eligible", dispatched=True, closing="cleared")
ALL_TEXTS = [row(1, "A", "confirmation"), row(2, "A", "assigned"), row(3, "A", "cleared"),
             row(4, "A", "survey")]  # fmt: skip


def test_a_clean_run_passes() -> None:
    messages = [message(r.id, "A", r.id) for r in ALL_TEXTS]
    verdict = judge({"A": CLEARED}, observed(messages, ALL_TEXTS))
    assert verdict.passed, verdict.breaches
    assert verdict.checks["every accepted CAD event was applied"] == 1


def test_each_breach_is_caught() -> None:
    messages = [message(r.id, "A", r.id) for r in ALL_TEXTS]
    twice = judge({"A": CLEARED}, observed([*messages, message(9, "A", 1)], ALL_TEXTS))
    assert any("sent twice" in b for b in twice.breaches)

    no_survey = judge({"A": CLEARED}, observed(messages[:3], ALL_TEXTS[:3]))
    assert any("survey" in b for b in no_survey.breaches)

    unsafe = Expectation("B", False, "call type DOMESTIC", dispatched=True, closing="cleared")
    texted = judge({"B": unsafe}, observed([message(5, "B", 5)], [row(5, "B", "cleared")]))
    assert any("ineligible" in b for b in texted.breaches)

    lost = judge({}, observed([], [], recorded_events=set()))
    assert any("every accepted CAD event was applied" in b for b in lost.breaches)

    unknown = judge(
        {"A": CLEARED}, observed(messages, [*ALL_TEXTS[:3], row(4, "A", "survey", "unknown")])
    )
    assert any("half done" in b for b in unknown.breaches)


def test_a_call_closed_before_its_confirmation_needs_the_workflow_to_say_so() -> None:
    rows = [row(3, "A", "cleared"), row(4, "A", "survey")]
    messages = [message(r.id, "A", r.id) for r in rows]
    unexplained = judge({"A": CLEARED}, observed(messages, rows))
    assert any("confirmation" in b for b in unexplained.breaches)
    explained = judge(
        {"A": CLEARED}, observed(messages, rows, skipped={"A": frozenset({"confirmation"})})
    )
    assert explained.passed, explained.breaches


def test_without_the_cad_export_the_run_replays_the_synthetic_day(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("chaos.run.SHARED_CAD_EXPORT", tmp_path / "missing.csv")
    agency = load_agencies(PROJECT_ROOT / "agencies")["example"]
    day = choose_day(agency, ChaosOptions(short=True))
    assert "synthetic" in day.description and day.calls
    assert all(call.incident_id.startswith("SYN-") for call in day.calls)


# --- the schedule's facts: no text after a safety fact, no stale stage text ---------------


def cad(incident: str, event_type: str, posted: float, unsafe: str | None = None) -> CadSent:
    """A CAD event the driver posted `posted` seconds in, accepted 0.1 s later."""
    return CadSent(incident, event_type, at(posted), at(posted + 0.1), unsafe)


def reply(keyword: Keyword, posted: float, phone: str = PHONE) -> ReplySent:
    return ReplySent(phone, keyword, at(posted), at(posted + 0.1))


def texts(*sent: tuple[str, float]) -> tuple[list[ProviderMessage], list[OutboxRow]]:
    """Call A's texts, each a kind and the second Twilio received it."""
    rows = [row(n, "A", kind) for n, (kind, _) in enumerate(sent, start=1)]
    messages = [
        message(r.id, "A", r.id, seconds) for r, (_, seconds) in zip(rows, sent, strict=True)
    ]
    return messages, rows


def judged(
    sent: list[tuple[str, float]],
    events: list[CadSent],
    replies: list[ReplySent] = [],  # noqa: B006 (never changed)
    call: Expectation = CLEARED,
) -> list[str]:
    journal = Journal(cad=events, replies=replies, phones={"A": PHONE})
    messages, rows = texts(*sent)
    expected = after_schedule({"A": call}, journal)
    return judge(expected, observed(messages, rows, journal=journal)).breaches


A_DAY = [cad("A", "created", 0), cad("A", "assigned", 2), cad("A", "cleared", 4)]
A_DAYS_TEXTS = [("confirmation", 0.5), ("assigned", 2.5), ("cleared", 4.5), ("survey", 9)]


def test_a_day_without_facts_passes_the_timing_rules() -> None:
    assert judged(A_DAYS_TEXTS, A_DAY) == []


def test_no_text_after_a_reclassification_beyond_the_grace() -> None:
    unsafe = cad("A", "updated", 2.2, unsafe="call type DOMESTIC DISTURBANCE ~ \\bDOMESTIC")
    # The assigned update may have been handed over just before: within the grace.
    in_time = [("confirmation", 0.5), ("assigned", 2.9)]
    assert judged(in_time, [*A_DAY, unsafe]) == []
    late = judged(A_DAYS_TEXTS, [*A_DAY, unsafe])
    assert [b.split(":")[0] for b in late] == [SAFETY_FACT]
    assert "cleared at 12:00:04.500 (+2.20 s)" in late[0] and "survey" in late[0]


def test_no_text_to_a_number_between_its_stop_and_its_start() -> None:
    stop_then_start = [reply("STOP", 1), reply("START", 3)]
    after_start = [("confirmation", 0.5), ("cleared", 4.5), ("survey", 9)]
    assert judged(after_start, A_DAY, stop_then_start) == []
    meanwhile = judged(A_DAYS_TEXTS, A_DAY, stop_then_start)
    assert [b.split(":")[0] for b in meanwhile] == [CALLERS_STOP]
    assert "assigned at 12:00:02.500" in meanwhile[0]
    # Never opted back in: nothing after the STOP, however late.
    never = judged([("confirmation", 0.5), ("survey", 60)], A_DAY, [reply("STOP", 1)])
    assert [b.split(":")[0] for b in never] == [CALLERS_STOP]


def test_a_text_of_an_earlier_stage_after_a_later_one_is_stale_unless_reopened() -> None:
    late_assigned = [("confirmation", 0.5), ("cleared", 4.5), ("assigned", 5.5)]
    stale = judged(late_assigned, A_DAY)
    names = {b.split(":")[0] for b in stale}
    assert {IN_ORDER, CLOSED_STAYS_CLOSED} <= names
    reopened = [*A_DAY, cad("A", "reopened", 4.7)]
    assert not {IN_ORDER, CLOSED_STAYS_CLOSED} & {b.split(":")[0] for b in judged(
        late_assigned, reopened)}  # fmt: skip


def test_no_delay_notice_once_a_unit_is_assigned() -> None:
    stale = judged([("confirmation", 0.5), ("delayed", 3.5)], A_DAY)
    assert NO_DELAY_ONCE_ASSIGNED in {b.split(":")[0] for b in stale}
    in_time = judged([("confirmation", 0.5), ("delayed", 1)], A_DAY)
    assert NO_DELAY_ONCE_ASSIGNED not in {b.split(":")[0] for b in in_time}


def test_after_start_a_stage_reached_before_it_is_not_texted() -> None:
    # Called at 0, unit assigned at 2 while opted out (STOP 1, START 3), cleared at 4.
    stop_then_start = [reply("STOP", 1), reply("START", 3)]
    burst = judged([("confirmation", 3.5), ("assigned", 3.6), ("cleared", 4.5)], A_DAY,
                   stop_then_start)  # fmt: skip
    stale = [b for b in burst if b.startswith(NOTHING_STALE_AFTER_START)]
    assert len(stale) == 1 and "confirmation" in stale[0] and "assigned" in stale[0]
    assert "cleared" not in stale[0]  # reached after the START: news


def test_the_schedules_facts_turn_exact_expectations_into_at_most() -> None:
    unsafe = cad("A", "updated", 1, unsafe="do not text")
    # Reclassified before its closing texts: none of them is owed any more.
    assert judged([("confirmation", 0.5)], [*A_DAY, unsafe]) == []
    # Opted out and never back: the same.
    assert judged([("confirmation", 0.5)], A_DAY, [reply("STOP", 1)]) == []


def test_a_caller_back_before_the_close_still_gets_the_closing_texts() -> None:
    journal = Journal(cad=A_DAY, replies=[reply("STOP", 1), reply("START", 2.5)])
    journal.phones = {"A": PHONE}
    expected = after_schedule({"A": CLEARED}, journal)["A"]
    assert expected.interrupted == f"STOP from {PHONE}" and expected.resumed
    lost = judged([("confirmation", 0.5), ("cleared", 4.5)], A_DAY, journal.replies)
    assert any("exactly one survey" in b for b in lost)
    # Back only after the close: the closing texts may be gone for good.
    late = after_schedule({"A": CLEARED}, replace(journal, replies=[reply("STOP", 1),
                          reply("START", 6)]))["A"]  # fmt: skip
    assert late.interrupted and not late.resumed


def test_a_call_made_after_the_start_owes_everything() -> None:
    journal = Journal(
        cad=[cad("A", "created", 10), cad("A", "cleared", 12)],
        replies=[reply("STOP", 1), reply("START", 3)],
        phones={"A": PHONE},
    )
    assert after_schedule({"A": CLEARED}, journal)["A"] == CLEARED


def test_a_withheld_confirmation_of_a_closed_call_needs_no_skip() -> None:
    rows = [row(2, "A", "confirmation", "withheld"), row(3, "A", "cleared"), row(4, "A", "survey")]
    messages = [message(r.id, "A", r.id) for r in rows[1:]]
    verdict = judge({"A": CLEARED}, observed(messages, rows))
    assert verdict.passed, verdict.breaches


def test_the_oracle_knows_which_changes_are_unsafe(rules: AgencyRules) -> None:
    assert rules.escalated_priority() == 1  # 1 is more urgent than the eligible 2, 3, 4
    assert rules.unsafe_change("DOMESTIC DISTURBANCE", None, None)
    assert rules.unsafe_change(None, 1, None) == "priority 1"
    assert rules.unsafe_change(None, None, True) == "do not text"
    assert rules.unsafe_change("LARCENY FROM AUTO DELAY", 3, False) is None


def test_the_fact_schedule_is_seeded_and_each_fact_has_a_call_of_its_own(
    rules: AgencyRules,
) -> None:
    agency = load_agencies(PROJECT_ROOT / "agencies")["example"]
    calls = choose_day(agency, ChaosOptions(short=True)).calls
    eligible = [call.incident_id for call in calls[::2]]
    planned = plan(1, calls, eligible, FULL_RUN, short=True)
    assert planned == plan(1, calls, eligible, FULL_RUN, short=True)
    assert planned != plan(2, calls, eligible, FULL_RUN, short=True)
    assert len({fact.incident_id for fact in planned}) == len(planned)
    assert len({fact.phone for fact in planned}) == len(planned)
    assert {fact.incident_id for fact in planned} <= set(eligible)
    by_id = {event.event_id: event for call in calls for event in call.events}
    for fact in planned:
        trigger = by_id[fact.trigger]
        if fact.race == Race.IN_RETRY:
            assert trigger.event_type == CadEventType.CREATED
        if fact.fact != Fact.STOP_THEN_START:
            event = reclassification(fact, trigger, rules)
            assert rules.unsafe_change(event.call_type, event.priority, event.do_not_text)
            assert event.occurred_at > trigger.occurred_at
