"""The survey follow-up as the worker runs it, on the time-skipping server, against a real
SMTP server: a low score reaches the supervisors within the minute; the mail server goes
down (reported, nothing lost) and comes back (sent once, never twice), across
continue-as-new; an hourly digest is one mail on the hour; the worker starts one workflow
per agency with follow-up on; turning it off ends the workflow."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import timedelta

from pydantic import SecretStr
from sqlmodel import select
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from callerloop.core.agency_config import AgencyConfig
from callerloop.core.db import Database, FollowUpMail, utcnow
from callerloop.core.settings import Settings
from callerloop.staff.follow_up import WITHDRAWN
from callerloop.staff.follow_up_mail import inbox_item_url
from tests.callerloop.test_follow_up import (
    BASE,
    COMMENT_ONLY,
    LOW_AND_COMMENT,
    LOW_ONLY,
    SENDER,
    SUPERVISORS,
    assert_nothing_personal,
    follow_up_agency,
    item_of,
)
from tests.conftest import TEST_ENCRYPTION_KEYS
from tests.factories import RecordingProvider, make_agency
from tests.harness import skip_time
from tests.smtp_server import HOST, Mailbox, Received, SmtpServer, free_port
from worker import all_running, build_workers, start_follow_ups
from workflows.follow_up import (
    CHECK_EVERY,
    FollowUpWorkflow,
    follow_up_details,
    follow_up_workflow_id,
    next_hour,
)
from workflows.model import FollowUpInput, FollowUpStatus

Handle = WorkflowHandle[FollowUpWorkflow, None]


def settings_for(database: Database, port: int) -> Settings:
    return Settings(
        task_queue=f"follow-up-{uuid.uuid4()}",
        database_url=database.url,
        public_base_url=BASE,
        encryption_keys=SecretStr(TEST_ENCRYPTION_KEYS),
        smtp_host=HOST,
        smtp_port=port,
        smtp_security="none",
        smtp_from=SENDER,
    )


@asynccontextmanager
async def worker_for(
    env: WorkflowEnvironment,
    database: Database,
    agencies: Mapping[str, AgencyConfig],
    settings: Settings,
) -> AsyncIterator[None]:
    """The production worker (build_workers), for these agencies and settings."""
    with ThreadPoolExecutor(4) as executor:
        workers = build_workers(
            env.client, settings, database, agencies, RecordingProvider(), executor, 4
        )
        async with all_running(workers):
            yield


async def start_follow_up(
    env: WorkflowEnvironment, settings: Settings, runs_per_run: int = 500
) -> Handle:
    return await env.client.start_workflow(
        FollowUpWorkflow.run,
        FollowUpInput("testville", runs_per_run=runs_per_run),
        id=f"{follow_up_workflow_id('testville')}-{uuid.uuid4()}",
        task_queue=settings.task_queue,
    )


async def status_when(
    handle: Handle, ready: Callable[[FollowUpStatus], bool], what: str
) -> FollowUpStatus:
    """The workflow's status once `ready` holds (in real time: the activity's SMTP)."""
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        status = await handle.query(FollowUpWorkflow.status)
        if ready(status):
            return status
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {status}")
        await asyncio.sleep(0.05)


async def next_run(
    env: WorkflowEnvironment, handle: Handle, after: FollowUpStatus
) -> FollowUpStatus:
    await skip_time(env, CHECK_EVERY + timedelta(seconds=1))
    return await status_when(handle, lambda s: s.runs > after.runs, f"run {after.runs + 1}")


def links(mails: list[Received]) -> list[str]:
    return [word for mail in mails for word in mail.text.split() if word.startswith(BASE)]


async def test_mail_within_the_minute_through_a_mail_server_down_then_up(
    env: WorkflowEnvironment, database: Database
) -> None:
    agency = follow_up_agency()
    mailbox, port = Mailbox(), free_port()
    server = SmtpServer(mailbox, port=port).start()
    settings = settings_for(database, port)
    async with worker_for(env, database, {agency.id: agency}, settings):
        handle = await start_follow_up(env, settings, runs_per_run=3)
        try:
            first = await status_when(handle, lambda s: s.runs == 1, "the first run")
            first_run = (await handle.describe()).run_id
            assert first.since is not None and first.mails_sent == 0

            low = item_of(database, agency, "25-002001", LOW_AND_COMMENT)
            mailed = await next_run(env, handle, first)
            assert (mailed.claimed, mailed.mails_sent, mailed.pending_mails) == (1, 1, 0)
            [mail] = mailbox.mails()
            assert sorted(mail.recipients) == sorted(SUPERVISORS)
            assert "an answer of 2 or less and a comment" in mail.message["Subject"]
            assert links([mail]) == [inbox_item_url(BASE, low)]
            assert_nothing_personal(mail, "Nobody came", "C25-002001")

            # The mail server goes away: reported, the mail kept for the next run.
            server.stop()
            other = item_of(database, agency, "25-002002", LOW_ONLY)
            failing = await next_run(env, handle, mailed)
            assert failing.last_error.startswith("ConnectionRefusedError")
            assert failing.failing_since is not None and failing.pending_mails == 1
            assert "**Failing since" in follow_up_details(failing)

            # It comes back: the waiting mail goes, once; the next run sends nothing.
            server = SmtpServer(mailbox, port=port).start()
            recovered = await next_run(env, handle, failing)
            assert (recovered.mails_sent, recovered.pending_mails) == (2, 0)
            assert recovered.last_error == "" and recovered.failing_since is None
            quiet = await next_run(env, handle, recovered)
            assert quiet.mails_sent == 2 and len(mailbox.mails()) == 2
            assert sorted(links(mailbox.mails())) == sorted(
                inbox_item_url(BASE, item) for item in (low, other)
            )
            # Five runs on a run of three: it continued as new, its counts kept.
            assert quiet.runs == 5 and quiet.items_mailed == 2 and quiet.since == first.since
            assert (await handle.describe()).run_id != first_run
        finally:
            await handle.terminate(reason="test finished")
            server.stop()


async def test_an_hourly_digest_is_one_mail_on_the_hour(
    env: WorkflowEnvironment, database: Database
) -> None:
    agency = follow_up_agency(delivery="hourly")
    mailbox = Mailbox()
    server = SmtpServer(mailbox).start()
    settings = settings_for(database, server.port)
    async with worker_for(env, database, {agency.id: agency}, settings):
        handle = await start_follow_up(env, settings)
        try:
            first = await status_when(handle, lambda s: s.runs == 1, "the first run")
            assert first.last_run_at is not None and first.next_claim_at is not None
            # The digest goes on the next full hour (UTC) after the first run.
            assert first.next_claim_at == next_hour(first.last_run_at)
            items = [
                item_of(database, agency, "25-003001", LOW_AND_COMMENT),
                item_of(database, agency, "25-003002", LOW_ONLY),
                item_of(database, agency, "25-003003", COMMENT_ONLY),
            ]
            until_the_hour = first.next_claim_at - await env.get_current_time()
            await skip_time(env, until_the_hour + timedelta(seconds=1))
            digest = await status_when(handle, lambda s: s.mails_sent == 1, "the digest")
            assert digest.runs == 2  # none between: nothing was due before the hour
            assert (digest.claimed, digest.items_mailed) == (3, 3)
            [mail] = mailbox.mails()
            assert mail.message["Subject"] == "Testville PD: 3 survey answers to follow up"
            assert sorted(links([mail])) == sorted(inbox_item_url(BASE, i) for i in items)
            assert_nothing_personal(mail, "Nobody came", "Lovely officer")
        finally:
            await handle.terminate(reason="test finished")
            server.stop()


async def test_the_worker_starts_one_follow_up_per_agency_with_it_on(
    env: WorkflowEnvironment, database: Database
) -> None:
    on = follow_up_agency()
    off = make_agency("quietville")
    agencies = {on.id: on, off.id: off}
    settings = settings_for(database, free_port())
    handle = env.client.get_workflow_handle(follow_up_workflow_id("testville"))
    try:
        without_mail = settings.model_copy(update={"smtp_host": ""})
        assert await start_follow_ups(env.client, without_mail, agencies) == []
        assert await start_follow_ups(env.client, settings, agencies) == ["testville"]
        started = await handle.describe()
        assert await start_follow_ups(env.client, settings, agencies) == ["testville"]
        again = await handle.describe()
        assert again.run_id == started.run_id and again.workflow_type == "FollowUp"
        assert again.id == "follow-up/testville" and again.task_queue == settings.task_queue
    finally:
        await handle.terminate(reason="test finished")


async def test_turning_follow_up_off_ends_the_workflow_and_withdraws_its_mails(
    env: WorkflowEnvironment, database: Database
) -> None:
    agency = make_agency()  # [follow_up] off, as the worker now loads the file
    with database.session() as session:
        session.add(
            FollowUpMail(
                agency=agency.id, kind="item", items=1, subject="s", body="b", created_at=utcnow()
            )
        )
        session.commit()
    settings = settings_for(database, free_port())
    async with worker_for(env, database, {agency.id: agency}, settings):
        handle = await start_follow_up(env, settings)
        await handle.result()  # it ends on its own
        assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
    with database.session() as session:
        assert [m.status for m in session.exec(select(FollowUpMail))] == [WITHDRAWN]
