"""Retention: personal data leaves the application database on schedule.

A call's workflow purges its caller's number when its lifecycle ends; this sweep is the
backstop for everything that outlives a workflow (a call terminated by hand, a dead
letter, a cached line type), for expired link tokens and for survey comments (free text
with a case number, kept for supervisors only as long as the agency's retention). The
opt-out registry keeps only pseudonyms (`Database.pseudonym`), so it stays. Run it daily:
`callerloop retention run`.
It is idempotent: a second run finds nothing to do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, update
from sqlmodel import col

from callerloop.cad.dead_letters import OPEN
from callerloop.core.agency_config import AgencyConfig
from callerloop.core.db import (
    AutoReply,
    CallRecord,
    Database,
    DeadLetter,
    LineTypeCache,
    LinkToken,
    OutboxMessage,
    SurveyComment,
)

REDACTED = ""


@dataclass
class RetentionReport:
    texts_cleared: int = 0  # outbox rows whose number, body and provider error were removed
    call_numbers_cleared: int = 0
    auto_replies_deleted: int = 0
    dead_letters_redacted: int = 0  # resolved dead letters whose body was removed
    line_types_deleted: int = 0
    link_tokens_deleted: int = 0
    survey_comments_deleted: int = 0  # free text for supervisors, past the retention period

    def lines(self) -> list[str]:
        return [f"{f.name.replace('_', ' ')}: {getattr(self, f.name)}" for f in fields(self)]

    @property
    def total(self) -> int:
        return sum(getattr(self, f.name) for f in fields(self))


def run_retention(
    db: Database,
    agencies: Mapping[str, AgencyConfig],
    now: datetime,
    line_type_cache_days: int,
) -> RetentionReport:
    report = RetentionReport()
    with db.session() as session:

        def count(statement: Any) -> int:
            return int(session.execute(statement).rowcount or 0)  # type: ignore[attr-defined]

        for agency in agencies.values():
            cutoff = now - timedelta(days=agency.retention.outbox_days)
            report.texts_cleared += count(
                update(OutboxMessage)
                .where(col(OutboxMessage.agency) == agency.id)
                .where(col(OutboxMessage.created_at) < cutoff)
                .where(
                    col(OutboxMessage.to).is_not(None)
                    | col(OutboxMessage.body).is_not(None)
                    | col(OutboxMessage.error_message).is_not(None)
                )
                # A provider's error can quote the number (masked since, but not in rows
                # written before): it goes with the number and the body.
                .values(to=None, body=None, error_message=None)
            )
            report.call_numbers_cleared += count(
                update(CallRecord)
                .where(col(CallRecord.agency) == agency.id)
                .where(col(CallRecord.updated_at) < cutoff)
                .where(col(CallRecord.caller_phone).is_not(None))
                .values(caller_phone=None)
            )
            report.auto_replies_deleted += count(
                delete(AutoReply)
                .where(col(AutoReply.agency) == agency.id)
                .where(col(AutoReply.sent_at) < cutoff)
            )
            report.dead_letters_redacted += count(
                update(DeadLetter)
                .where(col(DeadLetter.agency) == agency.id)
                .where(col(DeadLetter.status) != OPEN)  # open ones still await an operator
                .where(col(DeadLetter.resolved_at) < cutoff)
                .where(col(DeadLetter.body) != REDACTED)
                .values(body=REDACTED)
            )
            report.survey_comments_deleted += count(
                delete(SurveyComment)
                .where(col(SurveyComment.agency) == agency.id)
                .where(col(SurveyComment.created_at) < cutoff)
            )
        report.line_types_deleted = count(
            delete(LineTypeCache).where(
                col(LineTypeCache.looked_up_at) < now - timedelta(days=line_type_cache_days)
            )
        )
        report.link_tokens_deleted = count(delete(LinkToken).where(col(LinkToken.expires_at) < now))
        session.commit()
    return report
