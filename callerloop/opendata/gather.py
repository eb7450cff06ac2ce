"""From the database to additive tallies per cell: one agency's texts, surveys sent and
survey answers by the month the call came in, its priority, call-type group (from the
agency's `[survey.call_type_groups]`, so raw call types never leave) and language."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sqlmodel import col, select

from callerloop.core.agency_config import AgencyConfig
from callerloop.core.db import CallRecord, Database, OutboxMessage, SurveyAnswer, SurveyResponse
from callerloop.messaging.delivery_status import SENT_STATUSES
from callerloop.survey.facts import call_language, call_month
from workflows.model import TextKind

SATISFIED_FROM = 4  # 4 and 5 on a scale of five: satisfied, or agree


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
    responses: int = 0
    answered: Counter[str] = field(default_factory=Counter)  # question -> answers 1-5
    score_sum: Counter[str] = field(default_factory=Counter)
    satisfied: Counter[str] = field(default_factory=Counter)  # answers of 4 or 5

    def add(self, other: Tally) -> None:
        self.texts_sent += other.texts_sent
        self.surveys_sent += other.surveys_sent
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
    tallies: dict[CellKey, Tally] = {}

    def tally(key: CellKey) -> Tally:
        return tallies.setdefault(key, Tally())

    questions = set(scale_questions(agency))
    with db.session() as session:
        texts = session.exec(
            select(OutboxMessage.kind, CallRecord)
            .join(CallRecord, col(CallRecord.workflow_id) == col(OutboxMessage.workflow_id))
            .where(col(OutboxMessage.agency) == agency.id)
            .where(col(OutboxMessage.status).in_(SENT_STATUSES))
        ).all()
        for kind, call in texts:
            key = CellKey(
                month=call_month(agency, call),
                priority=call.priority,
                call_type_group=agency.survey.call_type_group(call.call_type),
                language=call_language(agency, call),
            )
            tally(key).texts_sent += 1
            tally(key).surveys_sent += kind == TextKind.SURVEY.value
        responses = session.exec(
            select(SurveyResponse).where(col(SurveyResponse.agency) == agency.id)
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
            select(SurveyAnswer)
            .join(SurveyResponse, col(SurveyResponse.id) == col(SurveyAnswer.response_id))
            .where(col(SurveyResponse.agency) == agency.id)
            .where(col(SurveyAnswer.score).is_not(None))
        ).all()
        for answer in answers:
            if answer.question in questions and answer.score is not None:
                tally(keys[answer.response_id]).answer(answer.question, answer.score)
    return tallies
