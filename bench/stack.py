"""The local stack the bench measures, on embedded defaults: the Temporal dev server (the
venv's `temporal` binary, SQLite file), the callerloop worker and, for HTTP ingest, the web
app, each a child process, in a scratch folder with free ports, so a bench never meets
a `make run` (or another bench) on the same machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from callerloop.core.db import Database
from callerloop.core.settings import Settings
from callerloop.staff.api_keys import create_key
from devtools.devstack import (
    SERVER_STOP_GRACE,
    WORKER_STOP_GRACE,
    Child,
    StackPaths,
    dev_server_command,
    spawn,
    temporal_address,
    wait_for_server,
    web_app_command,
    with_local_secrets,
    worker_environment,
)
from worker import sms_task_queue

WEB_READY_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def summed_metrics(exposition: str) -> dict[str, float]:
    """Prometheus text, each metric summed over its labels, by the name it is exposed
    under (histograms as `_sum` and `_count`, their buckets left out)."""
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if not sample.name.endswith("_bucket"):
                # The parser names counters' samples `…_total`; the SDK does not.
                name = sample.name.removesuffix("_total")
                totals[name] = totals.get(name, 0.0) + sample.value
    return totals


@dataclass
class StackConfig:
    time_scale: float
    web: bool = False
    agencies_dir: Path | None = None
    extra_env: Mapping[str, str] = field(default_factory=dict)
    server_args: Sequence[str] = ()


class BenchStack:
    """`async with BenchStack(folder, config) as stack:` a fresh stack in `folder`."""

    def __init__(self, folder: Path, config: StackConfig, console: Console) -> None:
        self.folder = folder
        self.config = config
        self.console = console
        self.paths = StackPaths(folder)
        overrides: dict[str, object] = {
            "data_dir": folder,
            "temporal_port": free_port(),
            "temporal_ui_port": free_port(),
            "web_port": free_port(),
            "database_url": f"sqlite:///{self.paths.callerloop_db}",
            "log_format": "json",
        }
        if config.agencies_dir is not None:
            overrides["agencies_dir"] = config.agencies_dir
        self.settings = Settings(**overrides)  # type: ignore[arg-type]
        self.database_url = self.settings.database_url
        self.children: list[Child] = []
        self.worker: Child | None = None
        self.web: Child | None = None
        self.client: Client | None = None
        self.db: Database | None = None
        self.api_keys: list[str] = []
        self.worker_metrics_port = free_port()

    @property
    def address(self) -> str:
        return temporal_address(self.settings)

    @property
    def task_queue(self) -> str:
        return self.settings.task_queue

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.web_port}"

    def env(self) -> dict[str, str]:
        env = worker_environment(self.settings, self.database_url, self.config.time_scale, {})
        env["CALLERLOOP_LOG_FORMAT"] = "json"  # the default; devstack uses console
        env.update(self.config.extra_env)
        return env

    async def __aenter__(self) -> BenchStack:
        if self.folder.exists():
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True)
        # Encrypted payloads and pseudonyms, as in production (they cost CPU too).
        self.settings = with_local_secrets(self.settings, self.paths)
        self.db = Database(self.database_url)
        self.db.create_schema()
        try:
            server = spawn(
                "Temporal dev server",
                [
                    *dev_server_command(self.settings, self.paths),
                    "--headless",
                    *self.config.server_args,
                ],
                self.paths.server_log,
                env=os.environ,
                stop_signal=signal.SIGTERM,
                grace=SERVER_STOP_GRACE,
            )
            self.children.append(server)
            self.client = await wait_for_server(self.settings, server)
            self.start_worker()
            await self.wait_for_worker()
            if self.config.web:
                await self.start_web()
        except BaseException:
            self.stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start_worker(self) -> Child:
        self.worker = spawn(
            "worker",
            [sys.executable, "-m", "starter.cli", "worker"],
            self.paths.worker_log,
            # The SDK's own metrics (its workflow cache, task waits): where a replay's time
            # went. The worker's only: the web app would take the same port.
            env={
                **self.env(),
                "CALLERLOOP_TEMPORAL_METRICS_ADDRESS": f"127.0.0.1:{self.worker_metrics_port}",
            },
            stop_signal=signal.SIGINT,
            grace=WORKER_STOP_GRACE,
        )
        self.children.append(self.worker)
        return self.worker

    async def wait_for_worker(self) -> None:
        await self.wait_for_pollers(self.task_queue, TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW)
        sms = sms_task_queue(self.settings, self.settings.demo_agency)
        await self.wait_for_pollers(sms, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)

    async def wait_for_pollers(
        self, task_queue: str, kind: TaskQueueType.ValueType, limit: float = 60.0
    ) -> None:
        """Until a worker polls `task_queue` (a fresh worker takes seconds to import)."""
        assert self.client is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        request = DescribeTaskQueueRequest(
            namespace=self.settings.temporal_namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=kind,
        )
        while loop.time() < deadline:
            self.check_alive()
            answer = await self.client.workflow_service.describe_task_queue(request)
            if answer.pollers:
                return
            await asyncio.sleep(0.2)
        raise RuntimeError(f"no worker polls {task_queue} after {limit:.0f} s")

    def stop_worker(self) -> None:
        if self.worker is not None:
            self.worker.stop(Console(quiet=True), lambda: False)

    def spawn_child(self, name: str, command: list[str], log: str) -> Child:
        child = spawn(
            name,
            command,
            self.folder / log,
            env=self.env(),
            stop_signal=signal.SIGINT,
            grace=WORKER_STOP_GRACE,
        )
        self.children.append(child)
        return child

    async def start_web(self, keys: int = 8) -> None:
        """The web app, with `keys` ingest API keys (each has its own rate limit)."""
        assert self.db is not None
        agency = self.settings.demo_agency
        self.api_keys = [create_key(self.db, agency, f"bench {i}")[1] for i in range(keys)]
        self.web = self.spawn_child(
            "web app",
            [*web_app_command(self.settings), "--no-access-log"],
            "web.log",
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WEB_READY_TIMEOUT
        async with httpx.AsyncClient() as http:
            while loop.time() < deadline:
                if self.web.exit_code() is not None:
                    raise RuntimeError(self.web.obituary())
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{self.web_url}/healthz")).status_code == 200:
                        return
                await asyncio.sleep(0.2)
        raise RuntimeError(f"the web app did not answer within {WEB_READY_TIMEOUT:.0f} s")

    async def worker_metrics(self) -> dict[str, float]:
        """The worker's Temporal SDK metrics by the names it exposes them under, each
        summed over its labels (histograms as `_sum` and `_count`); empty when the worker
        does not answer."""
        url = f"http://127.0.0.1:{self.worker_metrics_port}/metrics"
        try:
            async with httpx.AsyncClient(timeout=10.0) as http:
                text = (await http.get(url)).text
        except httpx.HTTPError:
            return {}
        return summed_metrics(text)

    def check_alive(self) -> None:
        for child in self.children:
            if child.exit_code() is not None and child is not self.worker:
                raise RuntimeError(child.obituary())
        if self.worker is not None and self.worker.exit_code() not in (None, 0):
            raise RuntimeError(self.worker.obituary())

    def stop(self) -> None:
        quiet = Console(quiet=True)
        for child in reversed(self.children):
            child.stop(quiet, lambda: False)
        self.children.clear()
        if self.db is not None:
            self.db.dispose()
            self.db = None
