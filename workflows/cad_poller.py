"""The CAD poller: one durable workflow per agency and source, reading its CAD's reporting
database (`[cad.poll]`) or its watched export folder (`[cad.folder]`).

Every interval it runs one poll (an activity: the rows changed since the watermark, or
the files not read yet, turned into CAD events and delivered to each call's workflow),
keeps the new watermark and its counts, and shows them in the Temporal UI (current details) and to
`callerloop cad poll status` (the `status` query). A poll that cannot reach the database
is reported and tried again at the next interval; a poll that fails otherwise (a bug) is
retried by Temporal. It continues as new every `polls_per_run` polls, so its history
stays short however long it runs.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

from workflows import activity_names as activities
from workflows.model import (
    DATABASE_SOURCE,
    FOLDER_SOURCE,
    PollerInput,
    PollerStatus,
    PollInput,
    PollResult,
)

# A first read of a whole table delivers every call's events: allow it time. A poll that
# runs longer (a hung connection) is retried.
POLL_TIMEOUT = timedelta(minutes=30)
POLL_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=1))
NOTES_KEPT = 5


def poller_workflow_id(agency: str, source: str = DATABASE_SOURCE) -> str:
    return f"cad-poll/{agency}" if source == DATABASE_SOURCE else f"cad-{source}/{agency}"


@workflow.defn(name="CadPoller")
class CadPollerWorkflow:
    def __init__(self) -> None:
        self._status = PollerStatus(agency="")

    @workflow.run
    async def run(self, input: PollerInput) -> None:
        self._status = input.status or PollerStatus(agency=input.agency, source=input.source)
        for _ in range(input.polls_per_run):
            result = await workflow.execute_activity(
                activities.POLL_CAD,
                PollInput(
                    input.agency,
                    self._status.watermark,
                    self._status.started,
                    self._status.calls_from,
                    input.source,
                ),
                result_type=PollResult,
                start_to_close_timeout=POLL_TIMEOUT,
                retry_policy=POLL_RETRY,
            )
            self._record(result)
            workflow.set_current_details(poller_details(self._status))
            if workflow.info().is_continue_as_new_suggested():
                break
            await workflow.sleep(timedelta(seconds=result.interval_seconds))
        workflow.continue_as_new(replace(input, status=self._status))

    @workflow.query
    def status(self) -> PollerStatus:
        return self._status

    def _record(self, result: PollResult) -> None:
        status = self._status
        now = workflow.now()
        status.polls += 1
        status.last_poll_at = now
        status.notes = [*status.notes, *result.notes][-NOTES_KEPT:]
        if result.error:
            status.failed_polls += 1
            status.last_error = result.error
            status.failing_since = status.failing_since or now
            return
        status.started = True
        status.watermark = result.watermark or status.watermark
        status.calls_from = status.calls_from or result.calls_from
        status.rows += result.rows
        status.changed += result.changed
        status.events += result.events
        status.for_finished_calls += result.for_finished_calls
        status.dead_letters += result.dead_letters
        status.files += result.files
        status.rejected_files += result.rejected_files
        status.last_error, status.failing_since = "", None
        if result.newest_change is not None:
            # How late the newest change read was told: the poller's lag behind the CAD.
            status.newest_change = result.newest_change
            status.lag_seconds = max(0.0, (now - result.newest_change).total_seconds())


def poller_details(status: PollerStatus) -> str:
    """Markdown for the poller's page in the Temporal UI: no personal data (counts only)."""
    lag = "not known yet" if status.lag_seconds is None else f"{status.lag_seconds:.0f} s"
    last = f"{status.last_poll_at:%Y-%m-%d %H:%M:%S} UTC" if status.last_poll_at else "never"
    lines = [
        f"**Watermark:** {status.watermark or 'none yet'} · **lag:** {lag}",
        f"**Polls:** {status.polls} (last {last}) · **rows read:** {status.rows} · "
        f"**changed:** {status.changed} · **events:** {status.events}",
        f"**Dead letters:** {status.dead_letters} · **for calls already over:** "
        f"{status.for_finished_calls} · **failed polls:** {status.failed_polls}",
    ]
    if status.last_error:
        since = f"{status.failing_since:%Y-%m-%d %H:%M:%S} UTC" if status.failing_since else ""
        lines.append(f"**Failing since {since}:** {status.last_error}")
    if status.source == FOLDER_SOURCE:
        lines.append(f"**Files read:** {status.files} · **moved aside:** {status.rejected_files}")
    lines.extend(f"**Note:** {note}" for note in status.notes)
    return "  \n".join(lines)
