"""The follow-up workflow's one activity: claim an agency's new inbox items into mails and
send its mails not sent yet (callerloop.staff.follow_up says how neither loses nor
repeats one). An SMTP server that cannot be reached or refuses is reported in the result
and tried again at the next run; anything else (the database away, a bug) fails the
attempt and Temporal retries it."""

from __future__ import annotations

from collections.abc import Mapping

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from callerloop.core.agency_config import AgencyConfig
from callerloop.core.db import Database, utcnow
from callerloop.core.settings import Settings
from callerloop.staff.follow_up import (
    claim_new_items,
    pending_mails,
    send_pending,
    withdraw_pending,
)
from callerloop.staff.mailer import Mailer
from workflows import activity_names
from workflows.activity_errors import UNKNOWN_AGENCY
from workflows.model import FollowUpResult, FollowUpRun

log = structlog.get_logger("callerloop.follow_up")


class FollowUpActivities:
    def __init__(
        self, settings: Settings, db: Database, agencies: Mapping[str, AgencyConfig]
    ) -> None:
        self._db = db
        self._agencies = agencies
        self._public_base_url = settings.public_base_url
        self._mailer = Mailer(settings)

    @activity.defn(name=activity_names.SEND_FOLLOW_UPS)
    def send_follow_ups(self, input: FollowUpRun) -> FollowUpResult:
        agency = self._agencies.get(input.agency)
        if agency is None:
            raise ApplicationError(
                f"agency {input.agency!r} is not on this worker",
                type=UNKNOWN_AGENCY,
                non_retryable=True,
            )
        rule = agency.follow_up
        since = input.since or utcnow()
        if rule.notify == "off":
            withdrawn = withdraw_pending(self._db, agency.id)
            notes = [f"follow-up turned off: {withdrawn} mail(s) not sent withdrawn"]
            log.info("follow-up off: stopping", agency=agency.id, withdrawn=withdrawn)
            return FollowUpResult(since, rule.delivery, notes=notes, off=True)
        claimed = (
            claim_new_items(self._db, agency, since, self._public_base_url) if input.claim else 0
        )
        sending = send_pending(self._db, agency, self._mailer)
        pending = pending_mails(self._db, agency.id)
        if sending.error:
            log.warning(
                "follow-up mail not sent", agency=agency.id, pending=pending, error=sending.error
            )
        elif sending.mails_sent:
            log.info(
                "follow-up mail sent",
                agency=agency.id,
                mails=sending.mails_sent,
                items=sending.items_mailed,
            )
        return FollowUpResult(
            since=since,
            delivery=rule.delivery,
            claimed=claimed,
            mails_sent=sending.mails_sent,
            items_mailed=sending.items_mailed,
            pending_mails=pending,
            error=sending.error,
            notes=sending.notes,
        )
