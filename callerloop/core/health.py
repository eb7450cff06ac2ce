"""Health, readiness and metrics of the worker and the web app.

- `/healthz`: the process is up and its event loop answers (a liveness probe).
- `/readyz`: Temporal answers for the namespace and the database answers `SELECT 1`, each
  within `CALLERLOOP_READINESS_TIMEOUT`; 503 with the failing check named otherwise.
- `/metrics`: callerloop's Prometheus metrics (`callerloop.metrics`).

The worker serves them on CALLERLOOP_WORKER_HTTP_ADDRESS with `HealthServer` (a few lines of
HTTP on the worker's own event loop); the web app adds the same routes to its FastAPI app.
The Temporal SDK's own metrics (workflow task latency, schedule-to-start, polls, …) come
from its Rust core on CALLERLOOP_TEMPORAL_METRICS_ADDRESS (`temporal_runtime`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from callerloop.core.db import Database

log = structlog.get_logger("callerloop.health")

ClientFactory = Callable[[], Awaitable[Client]]
REQUEST_TIMEOUT = 10.0
MAX_REQUEST_LINE = 8192


class AddressError(ValueError):
    """A host:port setting that is not one."""


def parse_address(value: str, setting: str) -> tuple[str, int]:
    """`host:port` (IPv6 as `[::]:9000`) → (host, port); the error names the setting."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise AddressError(f"{setting}={value!r}: expected host:port, e.g. 0.0.0.0:9000")
    return host.strip("[]"), int(port)


def temporal_runtime(metrics_address: str) -> Runtime | None:
    """A Temporal runtime whose Rust core serves Prometheus metrics on `metrics_address`
    (host:port), or None (the SDK's default runtime, no metrics) when it is empty."""
    if not metrics_address:
        return None
    host, port = parse_address(metrics_address, "CALLERLOOP_TEMPORAL_METRICS_ADDRESS")
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=bind)))


@dataclass(frozen=True)
class Readiness:
    checks: dict[str, str]  # check name → "ok" or what failed

    @property
    def ready(self) -> bool:
        return all(result == "ok" for result in self.checks.values())

    def body(self) -> str:
        return "".join(f"{name}: {result}\n" for name, result in self.checks.items())


async def check_readiness(client: ClientFactory, db: Database, seconds: float) -> Readiness:
    """Both checks at once, each bounded by `seconds`."""
    temporal, database = await asyncio.gather(
        _check_temporal(client, seconds), _check_database(db, seconds)
    )
    return Readiness({"temporal": temporal, "database": database})


async def _check_temporal(client_factory: ClientFactory, seconds: float) -> str:
    try:
        client = await asyncio.wait_for(client_factory(), seconds)
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=client.namespace),
            retry=False,
            timeout=timedelta(seconds=seconds),
        )
    except Exception as error:
        return f"unavailable: {_short(error)}"
    return "ok"


async def _check_database(db: Database, seconds: float) -> str:
    def select_one() -> None:
        with db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    try:
        await asyncio.wait_for(asyncio.to_thread(select_one), seconds)
    except Exception as error:
        return f"unavailable: {_short(error)}"
    return "ok"


def _short(error: BaseException) -> str:
    message = str(error).strip().splitlines()
    return f"{type(error).__name__}: {message[0]}" if message else type(error).__name__


def metrics_body() -> bytes:
    return generate_latest()


class HealthServer:
    """/healthz, /readyz and /metrics over plain HTTP/1.1 (GET, one request per
    connection), on the running event loop."""

    def __init__(self, client: ClientFactory, db: Database, timeout: float) -> None:
        self._client = client
        self._db = db
        self._timeout = timeout
        self._server: asyncio.Server | None = None

    async def start(self, address: str) -> None:
        host, port = parse_address(address, "CALLERLOOP_WORKER_HTTP_ADDRESS")
        try:
            self._server = await asyncio.start_server(self._handle, host, port)
        except OSError as error:
            raise OSError(
                f"CALLERLOOP_WORKER_HTTP_ADDRESS={address}: cannot listen: {error.strerror}"
            ) from error
        log.info("worker health and metrics", url=f"http://{address}/readyz")

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), REQUEST_TIMEOUT)
            while (await asyncio.wait_for(reader.readline(), REQUEST_TIMEOUT)).strip():
                pass  # headers: none matter here
            status, content_type, body = await self._answer(request[:MAX_REQUEST_LINE])
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (TimeoutError, ConnectionError, ValueError):
            pass  # a silent, vanished or oversized request (ValueError: past the line limit)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, request_line: bytes) -> tuple[str, str, bytes]:
        parts = request_line.decode("latin-1").split()
        if len(parts) < 2 or parts[0] != "GET":
            return "405 Method Not Allowed", "text/plain", b"GET only\n"
        path = parts[1].split("?", 1)[0]
        if path == "/healthz":
            return "200 OK", "text/plain", b"ok\n"
        if path == "/readyz":
            readiness = await check_readiness(self._client, self._db, self._timeout)
            status = "200 OK" if readiness.ready else "503 Service Unavailable"
            return status, "text/plain", readiness.body().encode()
        if path == "/metrics":
            return "200 OK", CONTENT_TYPE_LATEST, metrics_body()
        return "404 Not Found", "text/plain", b"/healthz, /readyz or /metrics\n"
