"""From the database to additive tallies per cell: one agency's texts, surveys sent (and
delivered) and survey answers by the month the call came in, its priority, call-type
group (from the agency's `[survey.call_type_groups]`, so raw call types never leave) and
language. The open data and the staff dashboard both count through here."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, select

from callerloop.core.agency_config import AgencyConfig
from callerloop.core.db import CallRecord, Database, OutboxMessage, SurveyAnswer, SurveyResponse
from callerloop.messaging.delivery_status import DELIVERED_STATUSES, SENT_STATUSES
from callerloop.survey.facts import call_language, call_month
from workflows.model import TextKind

SATISFIED_FROM = 4  # 4 and 5 on a scale of five: satisfied, or agree
# Providers that never report delivery (`activities/sms_providers/local.py`: texts stay in
# the outbox): their texts are sent, never confirmed delivered.
PROVIDERS_WITHOUT_RECEIPTS = frozenset({"local"})


@dataclass(frozen=True)
class CellKey:
    month: str  # "2025-09"
    priority: int | None
    call_type_group: str
    language: str

    def order(self) -> tuple[object, ...]:
        priority = -1 if self.priority is None else self.priority
        return (self.month, priority, self.call_type_group, self.language)


@dataclass
class Tally:
    """Everything published about a group of calls; every field adds up."""

    texts_sent: int = 0
    surveys_sent: int = 0
    surveys_delivered: int = 0  # confirmed by the carrier's delivery receipt
    surveys_without_receipts: int = 0  # sent through a provider that reports no delivery
    responses: int = 0
    answered: Counter[str] = field(default_factory=Counter)  # question -> answers 1-5
    score_sum: Counter[str] = field(default_factory=Counter)
    satisfied: Counter[str] = field(default_factory=Counter)  # answers of 4 or 5

    def add(self, other: Tally) -> None:
        self.texts_sent += other.texts_sent
        self.surveys_sent += other.surveys_sent
        self.surveys_delivered += other.surveys_delivered
        self.surveys_without_receipts += other.surveys_without_receipts
        self.responses += other.responses
        self.answered.update(other.answered)
        self.score_sum.update(other.score_sum)
        self.satisfied.update(other.satisfied)

    def answer(self, question: str, score: int) -> None:
        self.answered[question] += 1
        self.score_sum[question] += score
        self.satisfied[question] += score >= SATISFIED_FROM


def scale_questions(agency: AgencyConfig) -> list[str]:
    """The questions results are published for: the agency's scales (never comments)."""
    return [q.id for q in agency.survey.questions if q.kind != "comment"]


def gather(db: Database, agency: AgencyConfig) -> dict[CellKey, Tally]:
    with db.session() as session:
        return gather_in(session, agency)


def gather_in(
    session: Session, agency: AgencyConfig, first: str | None = None, last: str | None = None
) -> dict[CellKey, Tally]:
    """The agency's tallies, of the months from `first` to `last` ("2025-09", inclusive;
    None: no limit)."""
    tallies: dict[CellKey, Tally] = {}

    def in_range(month: str) -> bool:
        return (first is None or month >= first) and (last is None or month <= last)

    def tally(key: CellKey) -> Tally:
        return tallies.setdefault(key, Tally())

    calls = session.exec(select(CallRecord).where(col(CallRecord.agency) == agency.id))
    cell_of = {
        call.workflow_id: CellKey(
            month=call_month(agency, call),
            priority=call.priority,
            call_type_group=agency.survey.call_type_group(call.call_type),
            language=call_language(agency, call),
        )
        for call in calls
    }
    texts = session.exec(
        select(OutboxMessage.workflow_id, OutboxMessage.kind, OutboxMessage.status,
               OutboxMessage.provider)
        .where(col(OutboxMessage.agency) == agency.id)
        .where(col(OutboxMessage.status).in_(SENT_STATUSES))
    )  # fmt: skip
    for workflow_id, kind, status, provider in texts:
        key = cell_of.get(workflow_id)
        if key is None or not in_range(key.month):
            continue
        counts = tally(key)
        counts.texts_sent += 1
        if kind == TextKind.SURVEY.value:
            counts.surveys_sent += 1
            counts.surveys_delivered += status in DELIVERED_STATUSES
            counts.surveys_without_receipts += provider in PROVIDERS_WITHOUT_RECEIPTS
    questions = set(scale_questions(agency))
    responses = session.exec(
        _months(select(SurveyResponse), first, last).where(col(SurveyResponse.agency) == agency.id)
    ).all()
    keys = {
        response.id: CellKey(
            response.month, response.priority, response.call_type_group, response.language
        )
        for response in responses
    }
    for key in keys.values():
        tally(key).responses += 1
    answers = session.exec(
        _months(
            select(SurveyAnswer).join(
                SurveyResponse, col(SurveyResponse.id) == col(SurveyAnswer.response_id)
            ),
            first,
            last,
        )
        .where(col(SurveyResponse.agency) == agency.id)
        .where(col(SurveyAnswer.score).is_not(None))
    ).all()
    for answer in answers:
        if answer.question in questions and answer.score is not None:
            tally(keys[answer.response_id]).answer(answer.question, answer.score)
    return tallies


def _months(statement: Any, first: str | None, last: str | None) -> Any:
    if first is not None:
        statement = statement.where(col(SurveyResponse.month) >= first)
    if last is not None:
        statement = statement.where(col(SurveyResponse.month) <= last)
    return statement
