"""Runs the callerloop worker: the call workflow and every activity it uses.

    python worker.py        (or `callerloop worker`)

Stops gracefully on SIGINT/SIGTERM: activities in flight get time to finish.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
from collections.abc import AsyncIterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta

import structlog
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.worker import Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.cad_polling import CadPollActivities
from activities.call_records import CallRecordActivities
from activities.follow_up import FollowUpActivities
from activities.line_types import LineTypeActivities
from activities.opt_outs import OptOutActivities
from activities.policy_loader import PolicyActivities
from activities.sms_providers import make_provider
from activities.sms_providers.base import SmsProvider
from activities.texts import TextActivities, sender_rate
from activities.thread_surveys import ThreadSurveyActivities
from callerloop.cad.client import CadClient
from callerloop.core.agency_config import AgencyConfig, load_agencies
from callerloop.core.db import Database, database_for
from callerloop.core.health import HealthServer, temporal_runtime
from callerloop.core.logging import configure_logging
from callerloop.core.settings import Settings, get_settings
from callerloop.core.temporal import TemporalConfigError, connect, required_payload_codec
from callerloop.core.temporal_connection import resolve_connection
from callerloop.core.workflow_code import share_workflow_code
from workflows.cad_poller import CadPollerWorkflow, poller_workflow_id
from workflows.call_for_service import CallForServiceWorkflow
from workflows.follow_up import FollowUpWorkflow, follow_up_workflow_id
from workflows.model import DATABASE_SOURCE, FOLDER_SOURCE, FollowUpInput, PollerInput

log = structlog.get_logger("callerloop.worker")
GRACEFUL_SHUTDOWN = timedelta(seconds=20)
ACTIVITY_THREADS = 32


def sms_task_queue(settings: Settings, agency_id: str) -> str:
    """Each agency's sender gets its own task queue, so its rate limit is its own."""
    return f"{settings.task_queue}-sms-{agency_id}"


def build_workers(
    client: Client,
    settings: Settings,
    db: Database,
    agencies: Mapping[str, AgencyConfig],
    provider: SmsProvider,
    executor: ThreadPoolExecutor,
    max_concurrent_activities: int = ACTIVITY_THREADS,
) -> list[Worker]:
    """The call workflow with its bookkeeping activities on the main task queue, and one
    worker per sender whose task queue the server paces at the sender's messages/second."""
    policies = PolicyActivities(
        agencies, settings.time_scale, lambda agency_id: sms_task_queue(settings, agency_id)
    )
    opt_outs = OptOutActivities(db)
    records = CallRecordActivities(db)
    line_types = LineTypeActivities(db, provider, settings.line_type_cache_days)
    texts = TextActivities(db, agencies, provider, settings.public_base_url, settings.time_scale)
    polls = CadPollActivities(settings, db, agencies, CadClient(client, settings.task_queue))
    follow_ups = FollowUpActivities(settings, db, agencies)
    thread_surveys = ThreadSurveyActivities(db, agencies)
    main = Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[CallForServiceWorkflow, CadPollerWorkflow, FollowUpWorkflow],
        workflow_runner=workflow_runner(),
        # Each cached call costs ~270 KB in the sandbox: 400 keep the worker under 300 MB
        # with 10,000 calls waiting for their survey (make bench, docs/performance.md).
        max_cached_workflows=settings.workflow_cache_size,
        activities=[
            policies.load_agency_policy,
            opt_outs.check_opt_out,
            records.record_call,
            records.record_call_then_check_opt_out,
            records.purge_personal_data,
            line_types.lookup_line_type,
            texts.outbox_report,  # local: an operator's resend checks the receipts first
            texts.revoke_sends,  # local: withdraws a call's sends before cancelling them
            polls.poll_cad,
            follow_ups.send_follow_ups,
            thread_surveys.store_thread_survey,  # local: a survey answered in the thread
        ],
        activity_executor=executor,
        max_concurrent_activities=max_concurrent_activities,
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
    )
    senders = [
        Worker(
            client,
            task_queue=sms_task_queue(settings, agency.id),
            activities=[texts.send_text],
            activity_executor=executor,
            max_concurrent_activities=max_concurrent_activities,
            max_task_queue_activities_per_second=sender_rate(agency, settings.time_scale),
            graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
        )
        for agency in agencies.values()
    ]
    return [main, *senders]


# Passed into the sandbox as they are loaded outside it, beside the SDK's defaults (the
# standard library, temporalio, pydantic and its core). Every workflow run re-imports the
# rest of `workflows.*` in a fresh sandbox, so no module state leaks between calls and a
# non-deterministic call there fails the run (and the test that drove it) instead of
# diverging on replay. One module of callerloop's own is shared: `workflows.model`, the
# data contract (dataclasses only, its code under the lint rule of workflows/ruff.toml),
# so the payload converter builds its type adapters once per process instead of once per
# call. Replaying the 77 recorded histories took ~65 ms each with it re-imported, ~30 ms
# shared, ~17 ms unsandboxed (2026-12-02, two cores). Add a third-party library here only
# if workflow code needs it and it keeps no state a run could change. The re-imported
# modules share their compiled bytecode across runs (callerloop.core.workflow_code): the
# modules themselves stay each run's own.
SANDBOX_PASSTHROUGH: tuple[str, ...] = ("workflows.model",)


def workflow_runner() -> WorkflowRunner:
    """The one runner of the call workflow: production workers, every test's workers and
    the replay of recorded histories (tests/workflows/test_replay_histories.py) use it."""
    share_workflow_code()
    restrictions = dataclasses.replace(
        SandboxRestrictions.default.with_passthrough_modules(*SANDBOX_PASSTHROUGH),
        # The SDK restricts three class methods of ZoneInfo, which wraps every ZoneInfo the
        # workflow makes in a proxy that `astimezone` refuses (quiet hours). Those three
        # (from_file, clear_cache, reset_tzpath) are banned in workflows/ by the lint rule
        # (workflows/ruff.toml) instead.
        invalid_module_members=SandboxRestrictions.invalid_module_members_default.with_child_unrestricted(
            "zoneinfo"
        ),
    )
    return SandboxedWorkflowRunner(restrictions=restrictions)


async def start_pollers(
    client: Client, settings: Settings, agencies: Mapping[str, AgencyConfig]
) -> list[str]:
    """Starts a CAD poller for every agency file with `[cad.poll]` or `[cad.folder]` (one
    workflow each; one already running is left as it is). Returns what is polled, as
    "<agency>" for a database and "<agency> folder" for a folder."""
    polled = []
    for agency in sorted(agencies.values(), key=lambda a: a.id):
        sources = []
        if agency.cad.poll is not None:
            if agency.id in settings.cad_poll_urls:
                sources.append(DATABASE_SOURCE)
            else:
                log.warning(
                    "[cad.poll] configured but no CALLERLOOP_CAD_POLL_URLS entry: not polling",
                    agency=agency.id,
                )
        if agency.cad.folder is not None:
            sources.append(FOLDER_SOURCE)
        for source in sources:
            await client.start_workflow(
                CadPollerWorkflow.run,
                PollerInput(agency.id, source=source),
                id=poller_workflow_id(agency.id, source),
                task_queue=settings.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                static_summary=f"{agency.id} · CAD {source} poller",
            )
            polled.append(agency.id if source == DATABASE_SOURCE else f"{agency.id} folder")
    return polled


async def start_follow_ups(
    client: Client, settings: Settings, agencies: Mapping[str, AgencyConfig]
) -> list[str]:
    """Starts the survey follow-up of every agency file whose `[follow_up]` is on (one
    workflow each; one already running is left as it is). Returns the agencies."""
    started = []
    for agency in sorted(agencies.values(), key=lambda a: a.id):
        if agency.follow_up.notify == "off":
            continue
        if not settings.smtp_host:
            log.warning(
                "[follow_up] configured but no CALLERLOOP_SMTP_HOST: no follow-up mail",
                agency=agency.id,
            )
            continue
        await client.start_workflow(
            FollowUpWorkflow.run,
            FollowUpInput(agency.id),
            id=follow_up_workflow_id(agency.id),
            task_queue=settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=f"{agency.id} · survey follow-up ({agency.follow_up.delivery})",
        )
        started.append(agency.id)
    return started


@asynccontextmanager
async def all_running(workers: Sequence[Worker]) -> AsyncIterator[None]:
    async with AsyncExitStack() as stack:
        for worker in workers:
            await stack.enter_async_context(worker)
        yield


async def run_worker(settings: Settings) -> None:
    agencies = load_agencies(settings.agencies_dir)
    # Before anything else: without encryption keys (and no explicit development opt-out)
    # the worker does not start at all.
    codec = required_payload_codec(settings)
    db = database_for(settings)
    db.create_schema()
    client = await connect(settings, runtime=temporal_runtime(settings.temporal_metrics_address))
    health = HealthServer(lambda: _ready(client), db, settings.readiness_timeout)
    if settings.worker_http_address:
        await health.start(settings.worker_http_address)
    with ThreadPoolExecutor(ACTIVITY_THREADS, thread_name_prefix="activity") as executor:
        workers = build_workers(client, settings, db, agencies, make_provider(settings), executor)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        log.info(
            "worker started",
            task_queue=settings.task_queue,
            temporal=resolve_connection(settings).describe(),
            agencies=sorted(agencies),
            time_scale=settings.time_scale,
            sms_provider=settings.sms_provider,
            encryption_key=codec.primary if codec else None,
        )
        async with all_running(workers):
            polled = await start_pollers(client, settings, agencies)
            if polled:
                log.info("polling CAD databases", agencies=polled)
            followed = await start_follow_ups(client, settings, agencies)
            if followed:
                log.info("mailing survey follow-ups", agencies=followed)
            await stop.wait()
            log.info("worker stopping: letting activities in flight finish")
    await health.close()
    db.dispose()
    log.info("worker stopped")


async def _ready(client: Client) -> Client:
    return client


def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    try:
        asyncio.run(run_worker(settings))
    except TemporalConfigError as error:  # says what to set
        log.error(str(error))
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
