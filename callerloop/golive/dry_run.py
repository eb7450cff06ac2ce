"""The go-live dry run: an agency's policy and the call lifecycle over its own CAD export,
with no Temporal and no phones, as tables a supervisor can read before the first text.

Each call runs through `workflows.offline` (the workflow's own decisions and planner on a
virtual clock at CAD time), so what the report says would be texted is what the workflow
would text for the same events, quiet hours and delay notices included; an actual
deployment differs only where residents act (STOP, a landline, an operator).
Deterministic: the same export and agency file give the same report.
"""

from __future__ import annotations

import secrets
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

from callerloop.cad.replay import ParsedExport, Quirk, ReplayCall
from callerloop.core.agency_config import AgencyConfig
from callerloop.core.sms_encoding import measure
from callerloop.golive.watch_list import watch_words_in
from callerloop.messaging.links import STATUS, SURVEY, TOKEN_BYTES, link_url
from callerloop.messaging.messages import MessageContext, render_text
from workflows.model import STAGE_KINDS, CallSource, SendTextInput, TextKind
from workflows.offline import run_call
from workflows.policy import AgencyPolicy, EligibilityReason

_K = TypeVar("_K", str, tuple[str, str])
AVERAGE_MONTH_DAYS = 365.25 / 12
# Twilio's list price for one outbound SMS segment in the US (2025); set your own.
DEFAULT_PRICE_PER_SEGMENT = 0.0083
# A call type first seen this close to the end of the export is new to the CAD.
NEW_TYPE_WINDOW = timedelta(days=7)
# The shortest export in which "first seen near its end" means anything.
NEW_TYPE_MIN_SPAN = timedelta(days=21)
TEXTED = EligibilityReason.ELIGIBLE.value


@dataclass(frozen=True)
class CallResult:
    """What one call of the export would have been texted, and why not if nothing."""

    incident_id: str
    created_at: datetime  # in the agency's zone
    call_type: str  # at creation
    final_call_type: str
    priority: int | None  # the agency's rank, at creation
    source: CallSource
    language: str | None
    texts: tuple[TextKind, ...]
    segments: tuple[int, ...]  # SMS segments of each of those texts
    rule: str  # the last decision's EligibilityReason; "eligible" for a call texted to the end
    detail: str

    @property
    def texted(self) -> bool:
        return bool(self.texts)


@dataclass(frozen=True)
class Table:
    """One table of the report, written as `<name>.csv` and shown in the HTML."""

    name: str
    title: str
    columns: tuple[str, ...]
    rows: list[tuple[object, ...]]


@dataclass
class DryRun:
    agency: AgencyConfig
    calls: list[CallResult]
    export: ParsedExport
    price_per_segment: float
    currency: str
    first_day: date | None = None
    last_day: date | None = None
    tables: list[Table] = field(default_factory=list)
    headline: dict[str, object] = field(default_factory=dict)

    @property
    def days(self) -> int:
        if self.first_day is None or self.last_day is None:
            return 0
        return (self.last_day - self.first_day).days + 1


def dry_run(
    export: ParsedExport,
    agency: AgencyConfig,
    *,
    public_base_url: str,
    price_per_segment: float = DEFAULT_PRICE_PER_SEGMENT,
    currency: str = "USD",
) -> DryRun:
    """Every call of `export` through the agency's policy and the lifecycle; the report's
    tables. `public_base_url` sizes the links in the texts as they will be sent."""
    if price_per_segment < 0:
        raise ValueError(f"price per segment must be >= 0, got {price_per_segment}")
    policy = agency.to_policy()
    zone = ZoneInfo(agency.agency.time_zone)
    sizer = _TextSizer(agency, public_base_url)
    calls = [_call_result(call, agency, policy, zone, sizer) for call in export.calls]
    calls.sort(key=lambda result: (result.created_at, result.incident_id))
    run = DryRun(agency, calls, export, price_per_segment, currency)
    if calls:
        run.first_day, run.last_day = calls[0].created_at.date(), calls[-1].created_at.date()
    run.tables = [
        _by(calls, "call_type", "By call type", lambda c: c.call_type),
        _by(calls, "priority", "By priority", lambda c: "" if c.priority is None else c.priority),
        _by(calls, "source", "By source", lambda c: c.source.value),
        _exclusions(calls),
        _review(calls),
        _volume(calls, run),
        _errors(export),
    ]
    run.headline = _headline(run)
    return run


# --- one call -------------------------------------------------------------------------


class _TextSizer:
    """SMS segments of each text as the agency's templates render it, links included."""

    def __init__(self, agency: AgencyConfig, public_base_url: str) -> None:
        self.agency = agency
        token = "x" * len(secrets.token_urlsafe(TOKEN_BYTES))  # a token's length, not one
        self.status_url = link_url(public_base_url, STATUS, token)
        self.survey_url = link_url(public_base_url, SURVEY, token)

    def segments(
        self, kind: TextKind, language: str, case_number: str, call_type: str | None
    ) -> int:
        """As the outbox would store it; a survey asked in the text thread counts its
        opening text (the questions that follow depend on the caller's answers)."""
        survey = self.agency.survey
        thread = kind == TextKind.SURVEY and survey.delivery_for(language) != "link"
        text = SendTextInput(
            workflow_id="",
            agency=self.agency.id,
            incident_id="",
            case_number=case_number,
            kind=kind,
            language=language,
            to="",
            survey_question=survey.questions[0].id if thread else "",
            survey_link=survey.delivery_for(language) != "thread",
            call_type=call_type or "",
        )
        context = MessageContext(case_number, self.status_url, self.survey_url)
        return measure(render_text(self.agency, text, context)).segments


def _call_result(
    call: ReplayCall,
    agency: AgencyConfig,
    policy: AgencyPolicy,
    zone: ZoneInfo,
    sizer: _TextSizer,
) -> CallResult:
    offline = run_call(call.events, policy)
    state = offline.call
    created = call.events[0]
    texts = tuple(kind for _, kind in offline.sent)
    language = state.caller_language or agency.agency.default_language
    case_number = state.case_number or call.incident_id
    decision = state.blocked or state.decision
    rule = decision.reason if decision is not None else EligibilityReason.CALL_TYPE_UNKNOWN.value
    return CallResult(
        incident_id=call.incident_id,
        created_at=call.created_at.astimezone(zone),
        call_type=created.call_type or "",
        final_call_type=state.call_type or "",
        priority=created.priority,
        source=created.source or CallSource.UNKNOWN,
        language=state.caller_language,
        texts=texts,
        segments=tuple(
            sizer.segments(kind, language, case_number, state.call_type) for kind in texts
        ),
        rule=rule,
        detail=decision.detail if decision is not None and rule != TEXTED else "",
    )


# --- tables ---------------------------------------------------------------------------


def _by(
    calls: Sequence[CallResult], name: str, title: str, key: Callable[[CallResult], object]
) -> Table:
    groups: dict[object, list[CallResult]] = defaultdict(list)
    for call in calls:
        groups[key(call)].append(call)
    rows: list[tuple[object, ...]] = []
    for group, members in sorted(groups.items(), key=lambda item: (-len(item[1]), str(item[0]))):
        kinds = Counter(kind for call in members for kind in call.texts)
        rules = Counter(call.rule for call in members if not call.texted)
        texted = sum(call.texted for call in members)
        rows.append(
            (
                group,
                len(members),
                texted,
                *(kinds[kind] for kind in STAGE_KINDS),
                len(members) - texted,
                "; ".join(f"{rule} ({n})" for rule, n in _by_count(rules)),
            )
        )
    columns = (name, "calls", "texted", *(k.value for k in STAGE_KINDS), "not texted", "why not")
    return Table(f"by_{name}", title, columns, rows)


def _by_count(counts: Counter[_K]) -> list[tuple[_K, int]]:
    """Most first, ties in the keys' order: the same report every time."""
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def _exclusions(calls: Iterable[CallResult]) -> Table:
    """Each rule (and its detail: the pattern, the priority) that kept calls from texting."""
    counted = Counter((call.rule, call.detail) for call in calls if not call.texted)
    rows: list[tuple[object, ...]] = [(rule, detail, n) for (rule, detail), n in _by_count(counted)]
    return Table("exclusions", "Why calls would not be texted", ("rule", "detail", "calls"), rows)


def _review(calls: Sequence[CallResult]) -> Table:
    """Call types a supervisor should look at before go-live."""
    by_type: dict[str, list[CallResult]] = defaultdict(list)
    for call in calls:
        by_type[call.call_type].append(call)
    rows: list[tuple[object, ...]] = []
    for call_type, members in sorted(by_type.items()):
        texted = sum(call.texted for call in members)
        words = watch_words_in(call_type)
        if texted and words:
            why = f"would be texted, but its name has {', '.join(words)}"
            rows.append((call_type, why, len(members), texted))
    reclassified: Counter[tuple[str, str]] = Counter(
        (call.call_type, call.final_call_type)
        for call in calls
        if call.final_call_type and call.final_call_type != call.call_type
    )
    for (initial, final), n in sorted(reclassified.items()):
        texted = sum(call.texted for call in by_type[initial] if call.final_call_type == final)
        rows.append((initial, f"became {final} (initial and final type differ)", n, texted))
    if calls and calls[-1].created_at - calls[0].created_at >= NEW_TYPE_MIN_SPAN:
        recent = calls[-1].created_at - NEW_TYPE_WINDOW
        for call_type, members in sorted(by_type.items()):
            first = members[0].created_at  # calls are in creation order
            if first >= recent:
                texted = sum(call.texted for call in members)
                rows.append((call_type, f"first seen {first:%Y-%m-%d}", len(members), texted))
    return Table(
        "review", "To review before go-live", ("call type", "why", "calls", "texted"), rows
    )


def _volume(calls: Sequence[CallResult], run: DryRun) -> Table:
    """Texts, segments and cost by kind and language: per day over the export's days, and
    per average month."""
    texts: Counter[tuple[TextKind, str]] = Counter()
    segments: Counter[tuple[TextKind, str]] = Counter()
    for call in calls:
        language = call.language or run.agency.agency.default_language
        for kind, size in zip(call.texts, call.segments, strict=True):
            texts[kind, language] += 1
            segments[kind, language] += size
    days = max(run.days, 1)
    order = list(STAGE_KINDS)
    rows: list[tuple[object, ...]] = []
    for (kind, language), n in sorted(texts.items(), key=lambda i: (order.index(i[0][0]), i[0][1])):
        per_month = segments[kind, language] / days * AVERAGE_MONTH_DAYS
        rows.append(
            (
                kind.value,
                language,
                n,
                round(n / days, 1),
                segments[kind, language],
                round(per_month),
                round(per_month * run.price_per_segment, 2),
            )
        )
    columns = (
        "text",
        "language",
        "texts",
        "texts per day",
        "segments",
        "segments per month",
        f"cost per month ({run.currency})",
    )
    return Table("volume", "Texts, segments and cost", columns, rows)


def _errors(export: ParsedExport) -> Table:
    rows: list[tuple[object, ...]] = [
        (error.line, error.column or "", error.value or "", error.message)
        for error in export.errors
    ]
    return Table("refused_rows", "Rows not read", ("line", "column", "value", "problem"), rows)


def _headline(run: DryRun) -> dict[str, object]:
    calls = run.calls
    texted = sum(call.texted for call in calls)
    texts = sum(len(call.texts) for call in calls)
    segments = sum(sum(call.segments) for call in calls)
    days = max(run.days, 1)
    per_month = segments / days * AVERAGE_MONTH_DAYS
    review = next(table for table in run.tables if table.name == "review")
    return {
        "calls": len(calls),
        "days": run.days,
        "texted calls": texted,
        "texted share": round(texted / len(calls), 3) if calls else 0.0,
        "texts": texts,
        "texts per day": round(texts / days, 1),
        "segments per month": round(per_month),
        f"cost per month ({run.currency})": round(per_month * run.price_per_segment, 2),
        "call types to review": len(review.rows),
        "rows not read": len(run.export.errors),
        "reclassified calls": run.export.quirks[Quirk.RECLASSIFIED],
    }
