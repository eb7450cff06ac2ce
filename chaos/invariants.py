"""The chaos run's verdict: what the provider received, the outbox, the workflows and the
call records, checked against the oracle's expectations. Each check is counted, each
breach is kept with the call it concerns.

Two rules judge each text by the moment Twilio received it against the moments the chaos
driver's facts were accepted (`chaos.timeline`), never against a workflow's state:
- no text after a safety fact: none for a call later than FACT_GRACE after the ingest API
  accepted a reclassification that makes it unsafe, none to a number later than
  FACT_GRACE after the inbound webhook accepted its STOP (until its START);
- no stale stage text: a call's texts tell its stages in order (confirmation < delay
  notice < assigned < closing note < survey) unless CAD reopened it in between; a closed
  call gets no confirmation, delay notice or assigned update until it is reopened; no
  delay notice once a unit is assigned; after a START, no text for a stage the call
  reached before it (the confirmation, the assigned update, the closing note: stages a
  CAD event marks; timer stages are left alone, as this model cannot be sure of them).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

from chaos.oracle import Expectation
from chaos.timeline import (
    FACT_GRACE,
    CadSent,
    Journal,
    OptOutWindow,
    opt_out_windows,
    reopened_between,
)

KINDS = ("confirmation", "assigned", "delayed", "cleared", "survey")
# The stage each text tells, in the order a call goes through them (the rule).
STAGE = {"confirmation": 0, "delayed": 1, "assigned": 2, "cleared": 3, "survey": 4}
# The CAD event that marks the stage a text tells (timer stages have none here).
STAGE_EVENT = {"confirmation": "created", "assigned": "assigned", "cleared": "cleared"}
BEFORE_CLOSE = frozenset({"confirmation", "delayed", "assigned"})
CLOSES = frozenset({"cleared", "cancelled"})


@dataclass(frozen=True)
class ProviderMessage:
    sid: str
    body: str
    status_callback: str | None
    to: str
    at: datetime  # when Twilio received it

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


def hms(moment: datetime) -> str:
    return moment.strftime("%H:%M:%S.%f")[:-3]


@dataclass(frozen=True)
class Text:
    """A provider message with the outbox row it is: which call, which kind, when."""

    incident_id: str
    kind: str
    to: str
    at: datetime

    def __str__(self) -> str:
        return f"{self.kind} at {hms(self.at)}"


@dataclass(frozen=True)
class Observed:
    provider_messages: list[ProviderMessage]
    outbox: list[OutboxRow]
    skipped: Mapping[str, frozenset[str]]  # incident -> kinds its workflow skipped
    recorded_events: set[tuple[str, str]]  # (workflow id, event id) in the call records
    accepted_events: list[tuple[str, str]]  # what the ingest API accepted
    workflows_not_completed: int
    journal: Journal = field(default_factory=Journal)  # what the driver sent, and when


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
    withheld = {(row.incident_id, row.kind) for row in observed.outbox if row.status == "withheld"}
    for incident, expectation in expected.items():
        # Closed before it could be confirmed: skipped, or withdrawn on its way.
        unconfirmed = set(observed.skipped.get(incident, ()))
        if (incident, "confirmation") in withheld:
            unconfirmed.add("confirmation")
        _judge_call(verdict, expectation, sent[incident], frozenset(unconfirmed))
    texts = resolved_texts(observed.provider_messages, observed.outbox)
    judge_safety_facts(verdict, texts, observed.journal)
    judge_stages(verdict, texts, observed.journal)
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


def resolved_texts(messages: Sequence[ProviderMessage], outbox: Sequence[OutboxRow]) -> list[Text]:
    """The provider's messages that are outbox rows', as texts of a call and a kind."""
    rows = {row.id: row for row in outbox}
    return [
        Text(row.incident_id, row.kind, message.to, message.at)
        for message in messages
        if (row := rows.get(message.outbox_id() or -1)) is not None
    ]


def _judge_call(
    verdict: Verdict, call: Expectation, sent: Counter[str], not_confirmed: frozenset[str]
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
    cleared = 1 if call.closing == "cleared" else 0
    verdict.check(
        "an assigned update only for a dispatched call, at most once",
        sent["assigned"] <= (1 if call.dispatched else 0),
        f"{who}: {sent['assigned']} assigned updates (dispatched: {call.dispatched})",
    )
    verdict.check("at most one delay notice", sent["delayed"] <= 1, f"{who}: {sent['delayed']}")
    if call.interrupted is not None:
        # The schedule's fact may have stopped any text from then on: at most, not exactly.
        who = f"{call.incident_id} (after {call.interrupted})"
        verdict.check(
            "an interrupted call got at most one confirmation",
            confirmed <= 1,
            f"{who}: {confirmed} confirmations",
        )
    else:
        # Closed before it could be confirmed: the closing note says it all.
        closed_first = confirmed == 0 and call.closing != "open" and "confirmation" in not_confirmed
        verdict.check(
            "every eligible call got exactly one confirmation (unless closed first)",
            confirmed == 1 or closed_first,
            f"{who}: {confirmed} confirmations, skipped or withheld {sorted(not_confirmed)}",
        )
    if call.interrupted is not None and not call.resumed:
        verdict.check(
            "an interrupted call got at most its closing note and survey",
            sent["cleared"] <= cleared and sent["survey"] <= cleared,
            f"{who} ({call.closing}): {sent['cleared']} closing notes, {sent['survey']} surveys",
        )
        return
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


# --- no text after a safety fact ----------------------------------------------------------

SAFETY_FACT = "no text after a safety fact (CAD made the call unsafe)"
CALLERS_STOP = "no text after the caller's STOP (until their START)"


def judge_safety_facts(verdict: Verdict, texts: Sequence[Text], journal: Journal) -> None:
    """No text for a call later than the grace after CAD made it unsafe; none to a number
    later than the grace after its STOP, until its START was posted."""
    for fact in journal.safety_facts():
        late = [
            text
            for text in texts
            if text.incident_id == fact.incident_id and text.at > fact.accepted_at + FACT_GRACE
        ]
        verdict.check(
            SAFETY_FACT,
            not late,
            f"{fact.incident_id}: {_listed(late, fact.accepted_at)} after {fact.unsafe}",
        )
    for window in opt_out_windows(journal.replies):
        late = [text for text in texts if _in_opt_out(text, window)]
        verdict.check(
            CALLERS_STOP,
            not late,
            f"{window.phone}: {_listed(late, window.stop_accepted)} after its STOP",
        )


def _in_opt_out(text: Text, window: OptOutWindow) -> bool:
    ends = window.start_posted
    return (
        text.to == window.phone
        and text.at > window.stop_accepted + FACT_GRACE
        and (ends is None or text.at < ends)
    )


def _listed(texts: Iterable[Text], since: datetime) -> str:
    return ", ".join(f"{t} (+{(t.at - since).total_seconds():.2f} s)" for t in texts)


def texts_within_grace(texts: Sequence[Text], journal: Journal) -> list[float]:
    """Seconds after a safety fact or a STOP at which texts still reached Twilio, within
    the grace (for the report: how much of the grace the stack used)."""
    since = [
        (text.at - fact.accepted_at).total_seconds()
        for fact in journal.safety_facts()
        for text in texts
        if text.incident_id == fact.incident_id
    ]
    since += [
        (text.at - window.stop_accepted).total_seconds()
        for window in opt_out_windows(journal.replies)
        for text in texts
        if text.to == window.phone
    ]
    return sorted(s for s in since if 0 < s <= FACT_GRACE.total_seconds())


# --- no stale stage text -------------------------------------------------------------------

# (No colon in a check's name: the report counts breaches by the text before the first.)
IN_ORDER = "no stale stage text (stages in order, unless reopened between)"
CLOSED_STAYS_CLOSED = "no stale stage text (a closed call stays closed until reopened)"
NO_DELAY_ONCE_ASSIGNED = "no stale stage text (no delay notice once a unit is assigned)"
NOTHING_STALE_AFTER_START = "no stale stage text (after START, only stages reached since)"


def judge_stages(verdict: Verdict, texts: Sequence[Text], journal: Journal) -> None:
    events = journal.events_of()
    by_call: dict[str, list[Text]] = defaultdict(list)
    for text in sorted(texts, key=lambda text: text.at):
        by_call[text.incident_id].append(text)
    for incident, told in by_call.items():
        sent = events.get(incident, [])
        verdict.check(IN_ORDER, not (stale := _out_of_order(told, sent)), f"{incident}: {stale}")
        if any(e.event_type in CLOSES for e in sent):
            stale = _after_close(told, sent)
            verdict.check(CLOSED_STAYS_CLOSED, not stale, f"{incident}: {stale}")
        if any(e.event_type == "assigned" for e in sent):
            stale = _delay_once_assigned(told, sent)
            verdict.check(NO_DELAY_ONCE_ASSIGNED, not stale, f"{incident}: {stale}")
    for window in opt_out_windows(journal.replies):
        if window.start_posted is None:
            continue
        for incident in journal.incidents_of(window.phone):
            stale = _reached_before_start(
                by_call.get(incident, []), events.get(incident, []), window
            )
            verdict.check(NOTHING_STALE_AFTER_START, not stale, f"{incident}: {stale}")


def _out_of_order(told: Sequence[Text], events: Sequence[CadSent]) -> list[str]:
    """Texts that follow a text of a later stage with no reopen in between."""
    return [
        f"{text} after {earlier}"
        for n, text in enumerate(told)
        for earlier in told[:n]
        if STAGE[earlier.kind] > STAGE[text.kind]
        and not reopened_between(events, earlier.at, text.at)
    ]


def _after_close(told: Sequence[Text], events: Sequence[CadSent]) -> list[str]:
    """Texts of a stage before the close, reaching Twilio once the stack saw the close."""
    return [
        f"{text} after {close.event_type} accepted at {hms(close.accepted_at)}"
        for text in told
        if text.kind in BEFORE_CLOSE
        for close in events
        if close.event_type in CLOSES
        and text.at > close.accepted_at + FACT_GRACE
        and not reopened_between(events, close.posted_at, text.at)
    ][:3]


def _delay_once_assigned(told: Sequence[Text], events: Sequence[CadSent]) -> list[str]:
    return [
        f"{text} after the unit assigned at {hms(assigned.accepted_at)}"
        for text in told
        if text.kind == "delayed"
        for assigned in events
        if assigned.event_type == "assigned"
        and text.at > assigned.accepted_at + FACT_GRACE
        and not reopened_between(events, assigned.posted_at, text.at)
    ]


def _reached_before_start(
    told: Sequence[Text], events: Sequence[CadSent], window: OptOutWindow
) -> list[str]:
    """Texts after the START for a stage CAD marked before it (and not again since)."""
    start, started = window.start_posted, window.start_accepted
    assert start is not None and started is not None
    stale: list[str] = []
    for text in told:
        marker = STAGE_EVENT.get(text.kind)
        if marker is None or text.at <= started:
            continue
        before = any(e.event_type == marker and e.accepted_at < start for e in events)
        again = any(
            e.event_type in (marker, "reopened") and start <= e.posted_at <= text.at for e in events
        )
        if before and not again:
            stale.append(f"{text}, a stage reached before the START at {hms(start)}")
    return stale
