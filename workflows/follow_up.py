"""The survey follow-up: one durable workflow per agency whose `[follow_up]` is on,
mailing its supervisors about new items of the comments inbox.

Each run is one activity (activities.follow_up): it claims the new unhandled items the
agency's rule asks a mail for (every minute for one mail per item, on the hour for an
hourly digest) and sends the agency's mails not sent yet. The inbox row and its mail's
row are the truth, so a run that fails loses nothing: a mail the SMTP server did not take
is reported (the `status` query, the Temporal UI's current details) and tried again a
minute later; an activity that fails otherwise (a bug, the database away) is retried by
Temporal. The workflow ends once the agency's file turns follow-up off, and continues as
new every `runs_per_run` runs, so its history stays short however long it runs.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

from workflows import activity_names as activities
from workflows.model import (
    HOURLY_DELIVERY,
    FollowUpInput,
    FollowUpResult,
    FollowUpRun,
    FollowUpStatus,
)

# New items are claimed this often for one mail each; a mail the server refused is
# tried again this often whatever the delivery.
CHECK_EVERY = timedelta(minutes=1)
DIGEST_EVERY = timedelta(hours=1)
# A run sends a mail at a time, each bounded by the SMTP timeout: a run longer than this
# is stuck (a hung connection) and is retried; its mails' leases keep them from going twice.
RUN_TIMEOUT = timedelta(minutes=10)
RUN_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=1))
NOTES_KEPT = 5


def follow_up_workflow_id(agency: str) -> str:
    return f"follow-up/{agency}"


def next_hour(now: datetime) -> datetime:
    """The next full hour (UTC) after `now`: when an hourly digest goes."""
    return now.replace(minute=0, second=0, microsecond=0) + DIGEST_EVERY


@workflow.defn(name="FollowUp")
class FollowUpWorkflow:
    def __init__(self) -> None:
        self._status = FollowUpStatus(agency="")

    @workflow.run
    async def run(self, input: FollowUpInput) -> None:
        self._status = input.status or FollowUpStatus(agency=input.agency)
        for _ in range(input.runs_per_run):
            started = workflow.now()
            due = self._status.next_claim_at
            claim = due is None or started >= due
            result = await workflow.execute_activity(
                activities.SEND_FOLLOW_UPS,
                FollowUpRun(input.agency, self._status.since, claim),
                result_type=FollowUpResult,
                start_to_close_timeout=RUN_TIMEOUT,
                retry_policy=RUN_RETRY,
            )
            self._record(result, claim, started)
            workflow.set_current_details(follow_up_details(self._status))
            if result.off:
                return
            if workflow.info().is_continue_as_new_suggested():
                break
            await workflow.sleep(self._wait(result))
        workflow.continue_as_new(replace(input, status=self._status))

    @workflow.query
    def status(self) -> FollowUpStatus:
        return self._status

    def _record(self, result: FollowUpResult, claimed: bool, started: datetime) -> None:
        status = self._status
        now = workflow.now()
        status.runs += 1
        status.last_run_at = now
        status.since = status.since or result.since
        status.delivery = result.delivery
        status.claimed += result.claimed
        status.mails_sent += result.mails_sent
        status.items_mailed += result.items_mailed
        status.pending_mails = result.pending_mails
        status.notes = [*status.notes, *result.notes][-NOTES_KEPT:]
        if result.mails_sent:
            status.last_sent_at = now
        if claimed:
            hourly = result.delivery == HOURLY_DELIVERY
            status.next_claim_at = next_hour(started) if hourly else started + CHECK_EVERY
        if result.error:
            status.failed_runs += 1
            status.last_error = result.error
            status.failing_since = status.failing_since or now
        else:
            status.last_error, status.failing_since = "", None

    def _wait(self, result: FollowUpResult) -> timedelta:
        """Until the next claim is due; sooner while a mail waits to be tried again."""
        due = self._status.next_claim_at
        wait = CHECK_EVERY if due is None else due - workflow.now()
        if result.pending_mails:
            wait = min(wait, CHECK_EVERY)
        return max(wait, timedelta(seconds=1))


def follow_up_details(status: FollowUpStatus) -> str:
    """Markdown for the workflow's page in the Temporal UI: counts only, no inbox text."""

    def at(moment: datetime | None) -> str:
        return f"{moment:%Y-%m-%d %H:%M:%S} UTC" if moment else "never"

    lines = [
        f"**Delivery:** {status.delivery} · **items since:** {at(status.since)}",
        f"**Runs:** {status.runs} (last {at(status.last_run_at)}) · **items claimed:** "
        f"{status.claimed} · **mails sent:** {status.mails_sent} (last "
        f"{at(status.last_sent_at)}) · **waiting to go:** {status.pending_mails}",
    ]
    if status.last_error:
        lines.append(f"**Failing since {at(status.failing_since)}:** {status.last_error}")
    lines.extend(f"**Note:** {note}" for note in status.notes)
    return "  \n".join(lines)
