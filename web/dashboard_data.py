"""What the staff dashboard shows, as tables: one function per chart, each reading the
database for an agency (or all) and a date range. Staff see exact figures (no
suppression): the dashboard is behind a sign-in, open data is not."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, func, select

from callerloop.core.agency_config import AgencyConfig
from callerloop.core.db import CallRecord, Database, OutboxMessage, SurveyAnswer, SurveyResponse
from callerloop.messaging.delivery_status import DELIVERED_STATUSES, SENT_STATUSES
from callerloop.opendata.gather import SATISFIED_FROM
from workflows.model import TextKind

KINDS = [kind.value for kind in TextKind]
NOT_DECIDED = "not decided yet"
# Buckets of the time from a call's creation to its first text.
FIRST_TEXT_BUCKETS = [(1, "<1"), (2, "1-2"), (5, "2-5"), (15, "5-15"), (60, "15-60"),
                      (None, "60+")]  # fmt: skip


UTC_ZONE = ZoneInfo("UTC")


class FilterError(ValueError):
    """A filter the dashboard cannot apply; the message names it and says why."""


@dataclass(frozen=True)
class Filters:
    agency: str | None = None
    start: date | None = None  # first day, inclusive
    end: date | None = None  # last day, inclusive
    zone: ZoneInfo = UTC_ZONE  # days are the agency's days (UTC for all agencies)
    # Each agency's zone: a call's month is its agency's month, as in the survey answers.
    zones: Mapping[str, ZoneInfo] = field(default_factory=dict, compare=False, hash=False)

    def since(self) -> datetime | None:
        return None if self.start is None else _midnight(self.start, self.zone)

    def until(self) -> datetime | None:
        if self.end is None:
            return None
        return _midnight(self.end + timedelta(days=1), self.zone)

    def months(self) -> tuple[str | None, str | None]:
        return (
            None if self.start is None else f"{self.start:%Y-%m}",
            None if self.end is None else f"{self.end:%Y-%m}",
        )

    def query(self) -> str:
        parts = [
            ("agency", self.agency or ""),
            ("from", self.start.isoformat() if self.start else ""),
            ("to", self.end.isoformat() if self.end else ""),
        ]
        return "&".join(f"{k}={v}" for k, v in parts if v)


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def parse_filters(params: Mapping[str, str], agencies: Mapping[str, AgencyConfig]) -> Filters:
    agency = params.get("agency", "").strip() or None
    if agency is not None and agency not in agencies:
        raise FilterError(f"agency: unknown agency {agency!r}; known: {sorted(agencies)}")
    start = _date(params, "from")
    end = _date(params, "to")
    if start and end and start > end:
        raise FilterError(f"from ({start}) is after to ({end}): the range is empty")
    zones = {a.id: ZoneInfo(a.agency.time_zone) for a in agencies.values()}
    return Filters(agency, start, end, zones[agency] if agency else UTC_ZONE, zones)


def _date(params: Mapping[str, str], name: str) -> date | None:
    raw = params.get(name, "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise FilterError(f"{name}: {raw!r} is not a date (YYYY-MM-DD)") from None


@dataclass(frozen=True)
class Table:
    columns: list[str]
    rows: list[list[Any]]
    summary: str = ""  # one sentence: what the chart says, for its alt text too


def _where_time(statement: Any, column: Any, filters: Filters) -> Any:
    if (since := filters.since()) is not None:
        statement = statement.where(column >= since)
    if (until := filters.until()) is not None:
        statement = statement.where(column < until)
    return statement


def _where_agency(statement: Any, column: Any, filters: Filters) -> Any:
    return statement if filters.agency is None else statement.where(column == filters.agency)


def _where_months(statement: Any, filters: Filters) -> Any:
    first, last = filters.months()
    if first is not None:
        statement = statement.where(col(SurveyResponse.month) >= first)
    if last is not None:
        statement = statement.where(col(SurveyResponse.month) <= last)
    return _where_agency(statement, col(SurveyResponse.agency), filters)


def _day(moment: datetime, filters: Filters) -> str:
    return moment.astimezone(filters.zone).date().isoformat()


def _texts(session: Session, filters: Filters) -> list[tuple[str, str, datetime]]:
    statement = select(OutboxMessage.kind, OutboxMessage.status, OutboxMessage.created_at)
    statement = _where_agency(statement, col(OutboxMessage.agency), filters)
    statement = _where_time(statement, col(OutboxMessage.created_at), filters)
    return [(kind, status, at) for kind, status, at in session.exec(statement)]


def texts_per_day(session: Session, filters: Filters) -> Table:
    days: dict[str, Counter[str]] = defaultdict(Counter)
    for kind, status, at in _texts(session, filters):
        if status in SENT_STATUSES:
            days[_day(at, filters)][kind] += 1
    rows: list[list[Any]] = [
        [day, *(days[day][k] for k in KINDS), sum(days[day].values())] for day in sorted(days)
    ]
    total = sum(sum(counts.values()) for counts in days.values())
    return Table(["day", *KINDS, "total"], rows, f"{total} texts sent over {len(rows)} day(s).")


def delivery_rate(session: Session, filters: Filters) -> Table:
    sent: Counter[str] = Counter()
    delivered: Counter[str] = Counter()
    for _, status, at in _texts(session, filters):
        day = _day(at, filters)
        sent[day] += status in SENT_STATUSES
        delivered[day] += status in DELIVERED_STATUSES
    rows = [[d, sent[d], delivered[d], _share(delivered[d], sent[d])] for d in sorted(sent)]
    overall = _share(sum(delivered.values()), sum(sent.values()))
    return Table(
        ["day", "texts sent", "delivered", "delivery rate"],
        rows,
        f"{_percent(overall)} of texts sent were confirmed delivered.",
    )


def _calls(session: Session, filters: Filters) -> list[CallRecord]:
    statement = select(CallRecord)
    statement = _where_agency(statement, col(CallRecord.agency), filters)
    statement = _where_time(statement, col(CallRecord.received_at), filters)
    return list(session.exec(statement))


def opt_out_rate(session: Session, filters: Filters) -> Table:
    texted: Counter[str] = Counter()
    opted_out: Counter[str] = Counter()
    for call in _calls(session, filters):
        if call.texts_sent and call.received_at is not None:
            day = _day(call.received_at, filters)
            texted[day] += 1
            opted_out[day] += call.reason == "opted_out"
    rows = [[d, texted[d], opted_out[d], _share(opted_out[d], texted[d])] for d in sorted(texted)]
    overall = _share(sum(opted_out.values()), sum(texted.values()))
    return Table(
        ["day", "calls texted", "opted out", "opt-out rate"],
        rows,
        f"{_percent(overall)} of texted callers replied STOP.",
    )


def not_texted_by_reason(session: Session, filters: Filters) -> Table:
    calls = _calls(session, filters)
    reasons = Counter(
        (call.reason or NOT_DECIDED).replace("_", " ") for call in calls if not call.texts_sent
    )
    rows = [[reason, count] for reason, count in reasons.most_common()]
    not_texted = sum(reasons.values())
    return Table(
        ["reason", "calls"],
        rows,
        f"{not_texted} of {len(calls)} calls were not texted.",
    )


def response_rate_by_month(session: Session, filters: Filters) -> Table:
    surveys: Counter[str] = Counter()
    statement = (
        select(CallRecord.agency, CallRecord.received_at, CallRecord.updated_at)
        .join(OutboxMessage, col(OutboxMessage.workflow_id) == col(CallRecord.workflow_id))
        .where(col(OutboxMessage.kind) == TextKind.SURVEY.value)
        .where(col(OutboxMessage.status).in_(SENT_STATUSES))
    )
    statement = _where_agency(statement, col(CallRecord.agency), filters)
    first, last = filters.months()
    for agency, received, updated in session.exec(statement):
        zone = filters.zones.get(agency, filters.zone)
        month = f"{(received or updated).astimezone(zone):%Y-%m}"
        if (first is None or month >= first) and (last is None or month <= last):
            surveys[month] += 1
    responses_statement = _where_months(
        select(SurveyResponse.month, func.count()).group_by(col(SurveyResponse.month)), filters
    )
    responses = {month: count for month, count in session.exec(responses_statement)}
    months = sorted(set(surveys) | set(responses))
    rows = [
        [m, surveys[m], responses.get(m, 0), _share(responses.get(m, 0), surveys[m])]
        for m in months
    ]
    overall = _share(sum(responses.values()), sum(surveys.values()))
    return Table(
        ["month", "surveys sent", "responses", "response rate"],
        rows,
        f"{_percent(overall)} of surveys sent were answered.",
    )


def _answers(session: Session, filters: Filters) -> list[tuple[SurveyResponse, SurveyAnswer]]:
    statement = (
        select(SurveyResponse, SurveyAnswer)
        .join(SurveyAnswer, col(SurveyAnswer.response_id) == col(SurveyResponse.id))
        .where(col(SurveyAnswer.score).is_not(None))
    )
    return [(r, a) for r, a in session.exec(_where_months(statement, filters))]


def _satisfaction_by(
    session: Session, filters: Filters, dimension: str, key: Callable[[SurveyResponse], Any]
) -> Table:
    answered: Counter[tuple[Any, str]] = Counter()
    satisfied: Counter[tuple[Any, str]] = Counter()
    for response, answer in _answers(session, filters):
        group = (key(response), answer.question)
        answered[group] += 1
        satisfied[group] += (answer.score or 0) >= SATISFIED_FROM
    rows = [
        [value, question, answered[(value, question)], satisfied[(value, question)],
         _share(satisfied[(value, question)], answered[(value, question)])]
        for value, question in sorted(answered, key=lambda g: (str(g[0]), g[1]))
    ]  # fmt: skip
    overall = _share(sum(satisfied.values()), sum(answered.values()))
    return Table(
        [dimension, "question", "answers", "satisfied", "share satisfied"],
        rows,
        f"{_percent(overall)} of {sum(answered.values())} answers were satisfied or better.",
    )


def satisfaction_by_month(session: Session, filters: Filters) -> Table:
    return _satisfaction_by(session, filters, "month", lambda r: r.month)


def satisfaction_by_priority(session: Session, filters: Filters) -> Table:
    return _satisfaction_by(session, filters, "priority", lambda r: r.priority)


def satisfaction_by_group(session: Session, filters: Filters) -> Table:
    return _satisfaction_by(session, filters, "call-type group", lambda r: r.call_type_group)


def time_to_first_text(session: Session, filters: Filters) -> Table:
    first = (
        select(OutboxMessage.workflow_id, func.min(OutboxMessage.created_at))
        .where(col(OutboxMessage.status).in_(SENT_STATUSES))
        .group_by(col(OutboxMessage.workflow_id))
    )
    first_text = {workflow_id: at for workflow_id, at in session.exec(first)}
    minutes = []
    for call in _calls(session, filters):
        at = first_text.get(call.workflow_id)
        if at is not None and call.received_at is not None:
            at = at if at.tzinfo else at.replace(tzinfo=UTC)
            minutes.append(max(0.0, (at - call.received_at).total_seconds() / 60))
    counts = Counter(_bucket(m) for m in minutes)
    rows = [[label, counts[label]] for _, label in FIRST_TEXT_BUCKETS]
    summary = "No call was texted." if not minutes else (
        f"Median {statistics.median(minutes):.1f} min from call creation to first text; "
        f"90th percentile {_percentile(minutes, 0.9):.1f} min ({len(minutes)} calls)."
    )  # fmt: skip
    return Table(["minutes to first text", "calls"], rows, summary)


def _bucket(minutes: float) -> str:
    for limit, label in FIRST_TEXT_BUCKETS:
        if limit is None or minutes < limit:
            return label
    raise AssertionError("the last bucket has no limit")


def _percentile(values: Iterable[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 3) if whole else None


def _percent(share: float | None) -> str:
    return "n/a" if share is None else f"{share:.0%}"


def read(db: Database, reader: Callable[[Session, Filters], Table], filters: Filters) -> Table:
    with db.session() as session:
        return reader(session, filters)
