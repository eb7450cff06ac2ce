"""The local stack the chaos run breaks: the Temporal dev server on a SQLite file, the
worker and the web app as processes of their own, the Twilio stand-in in this process.
Each piece can be killed and started again on the same ports and files."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from callerloop.core.settings import Settings
from devtools.devstack import (
    SERVER_STOP_GRACE,
    Child,
    StackError,
    StackPaths,
    dev_server_command,
    spawn,
    wait_for_server,
    web_app_command,
    web_url,
    worker_environment,
)
from devtools.twilio_standin import TwilioStandIn

WORKER = "worker"
WEB = "web app"
SERVER = "Temporal dev server"
READY_TIMEOUT = 90.0
WORKER_STARTED = "worker started"  # worker.py's log line once its workers are built


@dataclass
class ChaosStack:
    settings: Settings
    paths: StackPaths
    database_url: str
    time_scale: float
    standin: TwilioStandIn
    console: Console
    client: Client = field(init=False)  # to the server now running (a restart replaces it)

    def __post_init__(self) -> None:
        self.children: dict[str, Child] = {}
        self.restarts: dict[str, int] = {WORKER: 0, WEB: 0, SERVER: 0}

    # --- starting -------------------------------------------------------------------

    def environment(self) -> dict[str, str]:
        twilio = {
            "CALLERLOOP_SMS_PROVIDER": "twilio",
            "CALLERLOOP_TWILIO_ACCOUNT_SID": self.standin.account_sid,
            "CALLERLOOP_TWILIO_AUTH_TOKEN": self.standin.auth_token,
            "CALLERLOOP_TWILIO_API_BASE_URL": self.standin.base_url,
            "CALLERLOOP_TWILIO_LOOKUPS_BASE_URL": self.standin.base_url,
        }
        environment = worker_environment(self.settings, self.database_url, self.time_scale, twilio)
        # Restarts start from compiled bytecode: `spawn` keeps a cache (with_bytecode_cache).
        return environment

    async def start_server(self) -> Client:
        self.children[SERVER] = spawn(
            SERVER,
            dev_server_command(self.settings, self.paths),
            self._log(SERVER),
            env=os.environ,
            stop_signal=signal.SIGTERM,
            grace=SERVER_STOP_GRACE,
        )
        self.client = await wait_for_server(self.settings, self.children[SERVER])
        return self.client

    def start_worker(self) -> None:
        self.children[WORKER] = spawn(
            WORKER,
            # `python -m worker` runs what `callerloop worker` runs, without the CLI's
            # imports (the web app's ingest models, typer): seconds off every restart.
            [sys.executable, "-m", "worker"],
            self._log(WORKER),
            env=self.environment(),
            stop_signal=signal.SIGINT,
            grace=5.0,
        )

    async def worker_started(self) -> None:
        """Until the worker says it started (its imports take seconds on a busy machine):
        a fault then hits a working worker, not one still loading its modules."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT
        child = self.children[WORKER]
        while loop.time() < deadline:
            if child.exit_code() is not None:
                raise StackError(child.obituary())
            if WORKER_STARTED in child.log.read_text(encoding="utf-8", errors="replace"):
                return
            await asyncio.sleep(0.2)
        raise StackError(f"the worker did not start within {READY_TIMEOUT:.0f} s: {child.log}")

    async def wait_for_worker(self, workflow_queue: str, activity_queue: str) -> None:
        """Until the worker polls both task queues (it imports for a while first)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT
        waiting = [
            (workflow_queue, TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW),
            (activity_queue, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY),
        ]
        while waiting and loop.time() < deadline:
            child = self.children[WORKER]
            if child.exit_code() is not None:
                raise StackError(child.obituary())
            answer = await self.client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace=self.settings.temporal_namespace,
                    task_queue=TaskQueue(name=waiting[0][0]),
                    task_queue_type=waiting[0][1],
                )
            )
            if answer.pollers:
                waiting.pop(0)
            else:
                await asyncio.sleep(0.2)
        if waiting:
            raise StackError(f"the worker did not poll {waiting} within {READY_TIMEOUT:.0f} s")

    async def start_web(self) -> None:
        self.children[WEB] = spawn(
            WEB,
            web_app_command(self.settings),
            self._log(WEB),
            env=self.environment(),
            stop_signal=signal.SIGINT,
            grace=5.0,
        )
        await self._wait_for_web()

    def _log(self, name: str) -> Path:
        """One log per start, so a restarted process's log does not replace the last one."""
        stem = name.split()[-1] if name != SERVER else "temporal"
        return self.paths.data_dir / f"{stem}-{self.restarts[name]}.log"

    async def _wait_for_web(self) -> None:
        import httpx

        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT
        async with httpx.AsyncClient(base_url=web_url(self.settings), timeout=2) as client:
            while loop.time() < deadline:
                child = self.children[WEB]
                if child.exit_code() is not None:
                    raise StackError(child.obituary())
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get("/healthz")).status_code == 200:
                        return
                await asyncio.sleep(0.2)
        raise StackError(f"the web app did not answer within {READY_TIMEOUT:.0f} s")

    # --- breaking -------------------------------------------------------------------

    def kill(self, name: str) -> None:
        """SIGKILL the process and everything in its session: no clean-up, no goodbye."""
        child = self.children[name]
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.process.pid, signal.SIGKILL)
        child.process.wait()

    async def restart(self, name: str, *, kill: bool = True) -> None:
        """Kill (or stop politely) and start again on the same ports and files."""
        if kill:
            self.kill(name)
        else:
            await asyncio.to_thread(self.children[name].stop, self.console, lambda: False)
        self.restarts[name] += 1
        if name == WORKER:
            self.start_worker()
        elif name == WEB:
            await self.start_web()
        else:
            await self.start_server()

    def dead_children(self) -> list[Child]:
        return [child for child in self.children.values() if child.exit_code() is not None]

    def stop(self) -> None:
        for name in (WORKER, WEB, SERVER):  # the worker first: it needs the server
            if name in self.children:
                self.children[name].stop(self.console, lambda: False)
        self.children.clear()
