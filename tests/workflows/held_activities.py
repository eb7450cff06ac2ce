"""Activities held up on purpose, so facts can arrive while an update is under way."""

from __future__ import annotations

import threading

from temporalio import activity

from activities.texts import TextActivities
from workflows import activity_names
from workflows.model import OutboxReport, OutboxReportInput


class HeldOutboxReport(TextActivities):
    """The resend's look at the outbox waits until the test lets it answer (a busy
    database), so facts can arrive while an operator's update is under way."""

    looking = threading.Event()
    answer = threading.Event()

    @activity.defn(name=activity_names.OUTBOX_REPORT)
    def outbox_report(self, input: OutboxReportInput) -> OutboxReport:
        HeldOutboxReport.looking.set()
        HeldOutboxReport.answer.wait(20)
        return super().outbox_report(input)
