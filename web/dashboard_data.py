"""What the staff dashboard shows, as tables: one function per chart, each reading the
database for an agency (or all) and a date range. Staff see exact figures (no
suppression): the dashboard is behind a sign-in, open data is not. Response rates and
shares are worked out as in the open data (`callerloop.survey.figures`), from the same
tallies (`callerloop.opendata.gather`), each with its 95 % Wilson interval."""

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
from callerloop.opendata.gather import (
    PROVIDERS_WITHOUT_RECEIPTS,
    SATISFIED_FROM,
    CellKey,
    Tally,
    gather_in,
)
from callerloop.survey.figures import (
    Basis,
    Represented,
    Share,
    basis,
    invitations,
    represented_groups,
    response_rate,
    share,
)
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
    # The agencies shown (the one filtered on, or all; `parse_filters` fills it): the survey
    # figures need their call-type groups and languages, and show nothing without them.
    configs: Mapping[str, AgencyConfig] = field(default_factory=dict, compare=False, hash=False)

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
    shown = {agency: agencies[agency]} if agency else dict(agencies)
    return Filters(agency, start, end, zones[agency] if agency else UTC_ZONE, zones, shown)


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


def _texts(session: Session, filters: Filters) -> list[tuple[str, str, datetime, str]]:
    statement = select(OutboxMessage.kind, OutboxMessage.status, OutboxMessage.created_at,
                       OutboxMessage.provider)  # fmt: skip
    statement = _where_agency(statement, col(OutboxMessage.agency), filters)
    statement = _where_time(statement, col(OutboxMessage.created_at), filters)
    return [(kind, status, at, provider) for kind, status, at, provider in session.exec(statement)]


def texts_per_day(session: Session, filters: Filters) -> Table:
    days: dict[str, Counter[str]] = defaultdict(Counter)
    for kind, status, at, _ in _texts(session, filters):
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
    without_receipts = 0
    for _, status, at, provider in _texts(session, filters):
        day = _day(at, filters)
        sent[day] += status in SENT_STATUSES
        delivered[day] += status in DELIVERED_STATUSES
        without_receipts += status in SENT_STATUSES and provider in PROVIDERS_WITHOUT_RECEIPTS
    rows = [[d, sent[d], delivered[d], _share(delivered[d], sent[d])] for d in sorted(sent)]
    overall = _share(sum(delivered.values()), sum(sent.values()))
    summary = f"{_percent(overall)} of texts sent were confirmed delivered."
    if without_receipts:
        summary += (
            f" {without_receipts} went through a provider that reports no delivery"
            " (never confirmed)."
        )
    return Table(["day", "texts sent", "delivered", "delivery rate"], rows, summary)


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


RATE_COLUMNS = ["surveys sent", "surveys delivered", "responses", "rate over", "response rate",
                "rate 95% low", "rate 95% high"]  # fmt: skip
WITHOUT_RECEIPTS = "sent (no delivery receipts)"


def _cells(session: Session, filters: Filters) -> dict[CellKey, Tally]:
    """The shown agencies' tallies of the filtered months, as the open data counts them
    (agencies' cells with the same labels added up)."""
    first, last = filters.months()
    cells: dict[CellKey, Tally] = {}
    for agency in filters.configs.values():
        for key, tally in gather_in(session, agency, first, last).items():
            cells.setdefault(key, Tally()).add(tally)
    return cells


def _group(cells: Mapping[CellKey, Tally], key: Callable[[CellKey], Any]) -> dict[Any, Tally]:
    groups: dict[Any, Tally] = {}
    for cell, tally in cells.items():
        groups.setdefault(key(cell), Tally()).add(tally)
    return groups


def _rate_columns(tally: Tally, counted_as: Basis) -> list[Any]:
    """A group's RATE_COLUMNS."""
    invited = invitations(counted_as, tally.surveys_sent, tally.surveys_delivered)
    rate = response_rate(tally.responses, invited)
    delivered = tally.surveys_delivered if counted_as is Basis.DELIVERED else None
    over = "delivered" if counted_as is Basis.DELIVERED else WITHOUT_RECEIPTS
    return [tally.surveys_sent, delivered, tally.responses, over, *_bounded(rate)]


def _bounded(found: Share | None) -> list[float | None]:
    if found is None:
        return [None, None, None]
    return [round(found.value, 3), round(found.low, 3), round(found.high, 3)]


def _rate_summary(whole: Tally, counted_as: Basis) -> str:
    invited = invitations(counted_as, whole.surveys_sent, whole.surveys_delivered)
    rate = response_rate(whole.responses, invited)
    counted = "sent" if counted_as is Basis.SENT else "delivered"
    if rate is None:
        said = f"{whole.responses} responses to {invited} surveys {counted}: no response rate."
    else:
        said = (
            f"{_percent(rate.value)} of {invited} surveys {counted} were answered "
            f"(95% interval {_interval(rate)})."
        )
    if counted_as is Basis.SENT:
        said += " Counted as sent: the text provider reports no delivery."
    return said


def _interval(found: Share) -> str:
    return f"{found.low:.0%} to {found.high:.0%}"


def response_rate_by_month(session: Session, filters: Filters) -> Table:
    """AAPOR's response rate (responses over surveys delivered) per month, each month over
    what it can count (delivered, or sent when its provider reports no delivery)."""
    months = _group(_cells(session, filters), lambda cell: cell.month)
    rows = [
        [month, *_rate_columns(tally, basis(tally.surveys_without_receipts))]
        for month, tally in sorted(months.items())
    ]
    whole = Tally()
    for tally in months.values():
        whole.add(tally)
    return Table(
        ["month", *RATE_COLUMNS],
        rows,
        _rate_summary(whole, basis(whole.surveys_without_receipts)),
    )


def _response_rate_by(
    session: Session, filters: Filters, dimension: str, key: Callable[[CellKey], Any]
) -> Table:
    """The response rate of each group of one breakdown, and who answered vs who was
    texted: the group's share of the responses against its share of the invitations."""
    groups = _group(_cells(session, filters), key)
    whole = Tally()
    for tally in groups.values():
        whole.add(tally)
    counted_as = basis(whole.surveys_without_receipts)
    shares = represented_groups(
        {group: tally.responses for group, tally in groups.items()},
        {
            group: invitations(counted_as, tally.surveys_sent, tally.surveys_delivered)
            for group, tally in groups.items()
        },
    )
    # Priorities as numbers (10 after 9), the rest by name; not known last.
    ordered = sorted(groups, key=lambda g: (g is None, g if isinstance(g, int) else 0, str(g)))
    rows = [
        [
            _label(group),
            *_rate_columns(groups[group], counted_as),
            _rounded(shares[group].of_invitations),
            *_bounded(shares[group].of_responses),
        ]
        for group in ordered
    ]
    return Table(
        [dimension, *RATE_COLUMNS, "share of surveys", "share of responses", "share 95% low",
         "share 95% high"],
        rows,
        f"{_rate_summary(whole, counted_as)} By {dimension}: "
        + "; ".join(
            _group_summary(_label(group), groups[group], counted_as, shares[group])
            for group in ordered
        )
        + ".",
    )  # fmt: skip


def _group_summary(label: str, tally: Tally, counted_as: Basis, shares: Represented) -> str:
    invited = invitations(counted_as, tally.surveys_sent, tally.surveys_delivered)
    rate = response_rate(tally.responses, invited)
    answered = "no rate" if rate is None else f"{_percent(rate.value)} answered"
    if rate is not None:
        answered += f" ({_interval(rate)})"
    of_responses = None if shares.of_responses is None else shares.of_responses.value
    return (
        f"{label} {answered}, {_percent(shares.of_invitations)} of the surveys and "
        f"{_percent(of_responses)} of the responses"
    )


def _label(group: Any) -> str:
    return "not known" if group is None else str(group)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def response_rate_by_language(session: Session, filters: Filters) -> Table:
    return _response_rate_by(session, filters, "language", lambda cell: cell.language)


def response_rate_by_group(session: Session, filters: Filters) -> Table:
    return _response_rate_by(session, filters, "call-type group", lambda cell: cell.call_type_group)


def response_rate_by_priority(session: Session, filters: Filters) -> Table:
    return _response_rate_by(session, filters, "priority", lambda cell: cell.priority)


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
        [_label(value), question, answered[(value, question)], satisfied[(value, question)],
         *_bounded(share(satisfied[(value, question)], answered[(value, question)]))]
        for value, question in sorted(answered, key=lambda g: (str(g[0]), g[1]))
    ]  # fmt: skip
    overall = share(sum(satisfied.values()), sum(answered.values()))
    summary = "No answers on the scale."
    if overall is not None:
        summary = (
            f"{_percent(overall.value)} of {overall.whole} answers were satisfied or better "
            f"(95% interval {_interval(overall)})."
        )
    return Table(
        [dimension, "question", "answers", "satisfied", "share satisfied", "share 95% low",
         "share 95% high"],
        rows,
        summary,
    )  # fmt: skip


def satisfaction_by_month(session: Session, filters: Filters) -> Table:
    return _satisfaction_by(session, filters, "month", lambda r: r.month)


def satisfaction_by_priority(session: Session, filters: Filters) -> Table:
    return _satisfaction_by(session, filters, "priority", lambda r: r.priority)


def satisfaction_by_group(session: Session, filters: Filters) -> Table:
    return _satisfaction_by(session, filters, "call-type group", lambda r: r.call_type_group)


def satisfaction_by_language(session: Session, filters: Filters) -> Table:
    return _satisfaction_by(session, filters, "language", lambda r: r.language)


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
