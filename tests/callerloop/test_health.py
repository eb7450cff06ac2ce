"""/healthz, /readyz and /metrics of the worker's HealthServer and of the web app, against a
real Temporal dev server and a real SQLite database (and unusable ones)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from callerloop.core.agency_config import AgencyConfig
from callerloop.core.db import Database
from callerloop.core.health import (
    AddressError,
    HealthServer,
    check_readiness,
    parse_address,
    temporal_runtime,
)
from callerloop.core.settings import Settings
from callerloop.core.temporal import FAIL_FAST, connect
from tests.conftest import TEST_ENCRYPTION_KEYS
from tests.web.serving import free_port, serving
from web.app import create_app


def unusable_database(tmp_path: Path) -> Database:
    """A SQLite 'file' that is a directory: every connection fails."""
    (tmp_path / "not-a-file.db").mkdir()
    return Database(f"sqlite:///{tmp_path / 'not-a-file.db'}")


async def unreachable() -> Client:
    return await connect(Settings(temporal_address="127.0.0.1:1"), FAIL_FAST)


@pytest.fixture
async def health_url(
    dev_server: WorkflowEnvironment, database: Database
) -> AsyncIterator[tuple[HealthServer, str]]:
    port = free_port()
    server = HealthServer(lambda: _same(dev_server.client), database, 2.0)
    await server.start(f"127.0.0.1:{port}")
    yield server, f"http://127.0.0.1:{port}"
    await server.close()


async def _same(client: Client) -> Client:
    return client


async def test_ready_when_temporal_and_the_database_answer(
    health_url: tuple[HealthServer, str],
) -> None:
    _, url = health_url
    async with httpx.AsyncClient(base_url=url) as http:
        ready = await http.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.text == "temporal: ok\ndatabase: ok\n"
        assert (await http.get("/healthz")).text == "ok\n"
        metrics = await http.get("/metrics")
        assert metrics.status_code == 200
        assert metrics.headers["content-type"].startswith("text/plain; version=")
        assert "# HELP callerloop_texts_total" in metrics.text
        assert (await http.get("/nope")).status_code == 404
        assert (await http.post("/readyz")).status_code == 405


async def test_not_ready_when_the_database_is_unusable(
    dev_server: WorkflowEnvironment, tmp_path: Path
) -> None:
    readiness = await check_readiness(
        lambda: _same(dev_server.client), unusable_database(tmp_path), 2.0
    )
    assert not readiness.ready
    assert readiness.checks["temporal"] == "ok"
    assert readiness.checks["database"].startswith("unavailable: OperationalError")


async def test_not_ready_when_temporal_is_unreachable(database: Database) -> None:
    readiness = await check_readiness(unreachable, database, 3.0)
    assert not readiness.ready
    assert readiness.checks["database"] == "ok"
    assert "unavailable" in readiness.checks["temporal"]
    assert "127.0.0.1:1" in readiness.checks["temporal"]


async def test_health_server_answers_503_naming_what_is_down(tmp_path: Path) -> None:
    port = free_port()
    server = HealthServer(unreachable, unusable_database(tmp_path), 3.0)
    await server.start(f"127.0.0.1:{port}")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            answer = await http.get("/readyz")
            assert answer.status_code == 503
            assert "temporal: unavailable" in answer.text
            assert "database: unavailable" in answer.text
            assert (await http.get("/healthz")).status_code == 200  # alive all the same
    finally:
        await server.close()


async def test_a_busy_port_is_named(health_url: tuple[HealthServer, str]) -> None:
    _, url = health_url
    taken = url.removeprefix("http://")
    second = HealthServer(unreachable, Database("sqlite://"), 1.0)
    with pytest.raises(OSError, match=f"CALLERLOOP_WORKER_HTTP_ADDRESS={taken}: cannot listen"):
        await second.start(taken)


def test_addresses_are_checked() -> None:
    assert parse_address("0.0.0.0:9000", "X") == ("0.0.0.0", 9000)
    assert parse_address("[::]:9464", "X") == ("::", 9464)
    for bad in ("9000", "host:", "host:port", ":9000", "host:70000"):
        with pytest.raises(AddressError, match=f"SETTING={bad!r}"):
            parse_address(bad, "SETTING")


def test_no_metrics_address_no_runtime() -> None:
    assert temporal_runtime("") is None


async def test_web_app_readiness_follows_temporal_and_the_database(
    dev_server: WorkflowEnvironment, database: Database, agency: AgencyConfig, tmp_path: Path
) -> None:
    settings = Settings(database_url=database.url, encryption_keys=SecretStr(TEST_ENCRYPTION_KEYS))
    agencies = {agency.id: agency}
    good = create_app(settings, database, agencies, lambda: _same(dev_server.client))
    broken = create_app(settings, unusable_database(tmp_path), agencies, unreachable)
    with serving(good) as good_url, serving(broken) as broken_url:
        async with httpx.AsyncClient(timeout=10) as http:
            ready = await http.get(f"{good_url}/readyz")
            assert (ready.status_code, ready.text) == (200, "temporal: ok\ndatabase: ok\n")
            down = await http.get(f"{broken_url}/readyz")
            assert down.status_code == 503
            assert "temporal: unavailable" in down.text and "database: unavailable" in down.text
            assert (await http.get(f"{broken_url}/healthz")).status_code == 200
            metrics = await http.get(f"{good_url}/metrics")
            assert "# HELP callerloop_webhook_errors_total" in metrics.text


async def test_web_app_counts_webhook_errors(database: Database, agency: AgencyConfig) -> None:
    from prometheus_client import REGISTRY

    def errors(endpoint: str, status: str) -> float:
        labels = {"endpoint": endpoint, "status": status}
        return REGISTRY.get_sample_value("callerloop_webhook_errors_total", labels) or 0.0

    settings = Settings(database_url=database.url, twilio_auth_token=SecretStr("secret"))
    app = create_app(settings, database, {agency.id: agency}, unreachable)
    before_twilio = errors("/twilio/inbound", "403")
    before_cad = errors("/v1/cad/events", "401")
    with serving(app) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            unsigned = await http.post("/twilio/inbound", data={"From": "+1", "Body": "STOP"})
            bad_key = await http.post("/v1/cad/events", json={}, headers={"X-API-Key": "not-a-key"})
            page = await http.get("/s/not-a-token")  # a resident's page: not a webhook
    assert (unsigned.status_code, bad_key.status_code) == (403, 401)
    assert page.status_code == 404
    assert errors("/twilio/inbound", "403") == before_twilio + 1
    assert errors("/v1/cad/events", "401") == before_cad + 1
    assert errors("/s/not-a-token", "404") == 0


async def test_the_image_healthcheck_finds_the_worker(
    health_url: tuple[HealthServer, str],
) -> None:
    """`python -m callerloop.core.healthcheck` (the Dockerfile's HEALTHCHECK): healthy when the
    worker answers even though no web app listens, unhealthy when nothing does."""
    _, url = health_url
    nothing = str(free_port())
    worker_env = {
        **os.environ,
        "CALLERLOOP_WEB_PORT": nothing,
        "CALLERLOOP_WORKER_HTTP_ADDRESS": url.removeprefix("http://").replace(
            "127.0.0.1", "0.0.0.0"
        ),
    }
    check = [sys.executable, "-m", "callerloop.core.healthcheck"]
    healthy = await asyncio.to_thread(
        subprocess.run, check, env=worker_env, capture_output=True, text=True, check=False
    )
    assert healthy.returncode == 0, healthy.stderr
    nobody = {**os.environ, "CALLERLOOP_WEB_PORT": nothing, "CALLERLOOP_WORKER_HTTP_ADDRESS": ""}
    unhealthy = await asyncio.to_thread(
        subprocess.run, check, env=nobody, capture_output=True, text=True, check=False
    )
    assert unhealthy.returncode == 1
    assert f"unhealthy: no answer from http://127.0.0.1:{nothing}/healthz" in unhealthy.stderr


async def test_a_garbled_request_does_not_stop_the_health_server(
    health_url: tuple[HealthServer, str],
) -> None:
    _, url = health_url
    host, port = url.removeprefix("http://").split(":")
    for garbage in (b"G" * 100_000 + b"\r\n\r\n", b"\r\n\r\n", b""):
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(garbage)
        await writer.drain()
        writer.write_eof()
        await reader.read()
        writer.close()
    async with httpx.AsyncClient(base_url=url) as http:
        assert (await http.get("/healthz")).status_code == 200
