"""The chaos run's verdict: what the provider received, the outbox, the workflows and the
call records, checked against the oracle's expectations. Each check is counted, each
breach is kept with the call it concerns."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from chaos.oracle import Expectation

KINDS = ("confirmation", "assigned", "delayed", "cleared", "survey")


@dataclass(frozen=True)
class ProviderMessage:
    sid: str
    body: str
    status_callback: str | None

    def outbox_id(self) -> int | None:
        query = parse_qs(urlsplit(self.status_callback or "").query)
        values = query.get("outbox", [])
        return int(values[0]) if values and values[0].isdigit() else None


@dataclass(frozen=True)
class OutboxRow:
    id: int
    workflow_id: str
    incident_id: str
    kind: str
    attempt: int
    status: str


@dataclass(frozen=True)
class Observed:
    provider_messages: list[ProviderMessage]
    outbox: list[OutboxRow]
    skipped: Mapping[str, frozenset[str]]  # incident -> kinds its workflow skipped
    recorded_events: set[tuple[str, str]]  # (workflow id, event id) in the call records
    accepted_events: list[tuple[str, str]]  # what the ingest API accepted
    workflows_not_completed: int


@dataclass
class Verdict:
    checks: Counter[str] = field(default_factory=Counter)
    breaches: list[str] = field(default_factory=list)

    def check(self, name: str, ok: bool, breach: str) -> None:
        self.checks[name] += 1
        if not ok:
            self.breaches.append(f"{name}: {breach}")

    @property
    def passed(self) -> bool:
        return not self.breaches


def judge(expected: Mapping[str, Expectation], observed: Observed) -> Verdict:
    verdict = Verdict()
    rows = {row.id: row for row in observed.outbox}
    sent: dict[str, Counter[str]] = defaultdict(Counter)
    per_row: Counter[int] = Counter()
    for message in observed.provider_messages:
        row = rows.get(message.outbox_id() or -1)
        verdict.check(
            "every provider message is an outbox row's",
            row is not None,
            f"{message.sid} names no outbox row ({message.status_callback})",
        )
        if row is None:
            continue
        verdict.check(
            "every provider message is about its own call",
            row.incident_id in message.body,
            f"{message.sid} for {row.incident_id} does not name it",
        )
        per_row[row.id] += 1
        sent[row.incident_id][row.kind] += 1
    for row in observed.outbox:
        verdict.check(
            "no (call, kind) sent twice to the provider",
            per_row[row.id] <= 1 and sent[row.incident_id][row.kind] <= 1,
            f"{row.incident_id} {row.kind}: {sent[row.incident_id][row.kind]} times",
        )
        verdict.check(
            "no send left half done (handing_over, unknown)",
            row.status not in ("handing_over", "unknown", "pending"),
            f"{row.incident_id} {row.kind} is {row.status}",
        )
    for incident, expectation in expected.items():
        _judge_call(verdict, expectation, sent[incident], observed.skipped.get(incident))
    for workflow_id, event_id in observed.accepted_events:
        verdict.check(
            "every accepted CAD event was applied",
            (workflow_id, event_id) in observed.recorded_events,
            f"{event_id} accepted but not in the records of {workflow_id}",
        )
    verdict.check(
        "every workflow completed",
        observed.workflows_not_completed == 0,
        f"{observed.workflows_not_completed} workflows running, failed or terminated",
    )
    return verdict


def _judge_call(
    verdict: Verdict, call: Expectation, sent: Counter[str], skipped: frozenset[str] | None
) -> None:
    who = f"{call.incident_id} ({call.why})"
    if not call.eligible:
        verdict.check(
            "no ineligible call got any text",
            not sent,
            f"{who} got {dict(sent)}",
        )
        return
    confirmed = sent["confirmation"]
    # Closed before it could be confirmed: the workflow skips it, the closing note says it.
    closed_first = confirmed == 0 and call.closing != "open" and "confirmation" in (skipped or ())
    verdict.check(
        "every eligible call got exactly one confirmation (unless closed first)",
        confirmed == 1 or closed_first,
        f"{who}: {confirmed} confirmations, skipped {sorted(skipped or ())}",
    )
    verdict.check(
        "an assigned update only for a dispatched call, at most once",
        sent["assigned"] <= (1 if call.dispatched else 0),
        f"{who}: {sent['assigned']} assigned updates (dispatched: {call.dispatched})",
    )
    verdict.check("at most one delay notice", sent["delayed"] <= 1, f"{who}: {sent['delayed']}")
    cleared = 1 if call.closing == "cleared" else 0
    verdict.check(
        "a closing note exactly when cleared",
        sent["cleared"] == cleared,
        f"{who} ({call.closing}): {sent['cleared']} closing notes",
    )
    verdict.check(
        "exactly one survey when cleared, none otherwise",
        sent["survey"] == cleared,
        f"{who} ({call.closing}): {sent['survey']} surveys",
    )


def closed_first_count(expected: Iterable[Expectation], observed: Observed) -> int:
    """Eligible calls closed before their confirmation could go (for the report)."""
    return sum(
        1
        for call in expected
        if call.eligible and "confirmation" in observed.skipped.get(call.incident_id, frozenset())
    )
