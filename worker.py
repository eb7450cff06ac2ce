"""Runs the callerloop worker: the call workflow and every activity it uses.

    python worker.py        (or `callerloop worker`)

Stops gracefully on SIGINT/SIGTERM: activities in flight get time to finish.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import structlog
from temporalio.client import Client
from temporalio.worker import Worker

from activities.call_records import CallRecordActivities
from activities.opt_outs import OptOutActivities
from activities.policy_loader import PolicyActivities
from activities.sms_providers import make_provider
from activities.sms_providers.base import SmsProvider
from activities.texts import TextActivities
from callerloop.agency_config import AgencyConfig, load_agencies
from callerloop.db import Database
from callerloop.logging import configure_logging
from callerloop.settings import Settings, get_settings
from callerloop.temporal import connect
from workflows.call_for_service import CallForServiceWorkflow

log = structlog.get_logger("callerloop.worker")
GRACEFUL_SHUTDOWN = timedelta(seconds=20)
ACTIVITY_THREADS = 32


def build_activities(
    db: Database,
    agencies: Mapping[str, AgencyConfig],
    provider: SmsProvider,
    settings: Settings,
) -> list[Callable[..., Any]]:
    policies = PolicyActivities(agencies, settings.time_scale)
    opt_outs = OptOutActivities(db)
    records = CallRecordActivities(db)
    texts = TextActivities(db, agencies, provider, settings.public_base_url)
    return [
        policies.load_agency_policy,
        opt_outs.check_opt_out,
        records.record_call,
        records.purge_personal_data,
        texts.send_text,
    ]


def build_worker(
    client: Client,
    settings: Settings,
    db: Database,
    agencies: Mapping[str, AgencyConfig],
    provider: SmsProvider,
    executor: ThreadPoolExecutor,
    max_concurrent_activities: int = ACTIVITY_THREADS,
) -> Worker:
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[CallForServiceWorkflow],
        activities=build_activities(db, agencies, provider, settings),
        activity_executor=executor,
        max_concurrent_activities=max_concurrent_activities,
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
    )


async def run_worker(settings: Settings) -> None:
    agencies = load_agencies(settings.agencies_dir)
    db = Database(settings.database_url)
    db.create_schema()
    client = await connect(settings)
    with ThreadPoolExecutor(ACTIVITY_THREADS, thread_name_prefix="activity") as executor:
        worker = build_worker(
            client, settings, db, agencies, make_provider(settings.sms_provider), executor
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        log.info(
            "worker started",
            task_queue=settings.task_queue,
            temporal=settings.temporal_address,
            agencies=sorted(agencies),
            time_scale=settings.time_scale,
            sms_provider=settings.sms_provider,
        )
        async with worker:
            await stop.wait()
            log.info("worker stopping: letting activities in flight finish")
    db.dispose()
    log.info("worker stopped")


def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    asyncio.run(run_worker(settings))


if __name__ == "__main__":
    main()
