"""The chaos run's oracle and verdict on their own: eligibility read from CSV rows and the
agency's TOML, and each breach the verdict must catch."""

from __future__ import annotations

from pathlib import Path

import pytest

from callerloop.agency_config import load_agencies
from callerloop.settings import PROJECT_ROOT
from chaos.invariants import Observed, OutboxRow, ProviderMessage, judge
from chaos.oracle import AgencyRules, Expectation, expectations
from chaos.run import ChaosOptions, choose_day

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


def message(n: int, incident: str, outbox_id: int) -> ProviderMessage:
    return ProviderMessage(
        f"SM{n}", f"case {incident}", f"https://x/twilio/status?outbox={outbox_id}"
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
