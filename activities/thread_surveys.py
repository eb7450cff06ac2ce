"""Storing a survey answered in the text thread: the same tables and figures as the survey
page's (`callerloop.survey.responses`), once per call."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from sqlmodel import col, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from callerloop.core.agency_config import AgencyConfig
from callerloop.core.db import CallRecord, Database, LinkToken
from callerloop.messaging.links import SURVEY
from callerloop.survey.responses import Channel, store_answers
from workflows import activity_names
from workflows.activity_errors import UNKNOWN_AGENCY
from workflows.model import StoreThreadSurveyInput


class ThreadSurveyActivities:
    def __init__(self, db: Database, agencies: Mapping[str, AgencyConfig]) -> None:
        self._db = db
        self._agencies = agencies

    @activity.defn(name=activity_names.STORE_THREAD_SURVEY)
    def store_thread_survey(self, input: StoreThreadSurveyInput) -> None:
        """Idempotent: a retried store finds its answers stored. A call surveyed both ways
        shares one answer: the thread stores under the survey link's own token, so the
        page and the thread cannot both count."""
        agency = self._agencies.get(input.agency)
        if agency is None:
            raise ApplicationError(
                f"unknown agency {input.agency!r}", type=UNKNOWN_AGENCY, non_retryable=True
            )
        limit = agency.survey.comment_max_length
        kinds = {q.id: q.kind for q in agency.survey.questions}
        values = {
            answer.question: answer.value[:limit]
            if kinds.get(answer.question) == "comment"
            else answer.value
            for answer in input.answers
            if answer.question in kinds  # a question the agency has dropped since
        }
        submission = json.dumps([[a.question, a.value] for a in input.answers])
        with self._db.session() as session:
            call = session.get(CallRecord, input.workflow_id)
            if call is None:
                raise ApplicationError(
                    f"no record of call {input.workflow_id!r}", type="NoCallRecord"
                )
            link = session.exec(
                select(LinkToken)
                .where(col(LinkToken.workflow_id) == input.workflow_id)
                .where(col(LinkToken.purpose) == SURVEY)
                .order_by(col(LinkToken.created_at))
            ).first()
            token_hash = link.token_hash if link else thread_token_hash(input.workflow_id)
            outcome = store_answers(
                session,
                agency=agency,
                call=call,
                token_hash=token_hash,
                submission=submission,
                values=values,
                page_language=input.language,
                channel=Channel.THREAD,
            )
        # REPEATED: a retry; ALREADY_ANSWERED: the page got there first (both offered).
        activity.logger.info("thread survey stored", extra={"outcome": outcome.value})


def thread_token_hash(workflow_id: str) -> str:
    """What marks a thread-only survey answered (it has no link whose token could)."""
    return hashlib.sha256(f"thread-survey:{workflow_id}".encode()).hexdigest()
