"""The containers' commands, run outside containers: `callerloop worker` and `callerloop web`
as the image's ENTRYPOINT + the compose `command:`, with the compose file's environment
(its `${…}` filled in as docker/.env would), against a real Temporal dev server and SQLite
in place of the compose network's Temporal and PostgreSQL.

One call goes through: the CAD event posted to the web app's ingest API is texted by the
worker, and both /metrics show it. Then Temporal stops and both /readyz answer 503."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import select

from callerloop.core.codec import new_key_spec
from callerloop.core.db import Database, OutboxMessage
from callerloop.core.settings import PROJECT_ROOT
from callerloop.staff.api_keys import create_key
from tests.conftest import start_dev_server
from tests.docker.files import (
    callerloop_services,
    dockerfile,
    dockerfile_env,
    environment,
    interpolate,
)
from tests.web.serving import free_port

START_TIMEOUT = 90.0
STOP_TIMEOUT = 40.0


def entrypoint() -> list[str]:
    [line] = [i.arguments for i in dockerfile() if i.keyword == "ENTRYPOINT"]
    words: list[str] = json.loads(line)
    return words


def callerloop_binary() -> str:
    return str(Path(sys.executable).parent / entrypoint()[0])


def dot_env(tmp_path: Path) -> dict[str, str]:
    """What an operator puts in docker/.env (the secrets the compose file requires)."""
    return {
        "APP_DB_PASSWORD": "app-password",
        "TEMPORAL_DB_PASSWORD": "temporal-password",
        "CALLERLOOP_PUBLIC_BASE_URL": "https://callerloop.test",
        "CALLERLOOP_ENCRYPTION_KEYS": new_key_spec("compose"),
        "CALLERLOOP_PSEUDONYM_KEY": "pseudonym-key-for-the-compose-test",
        "CALLERLOOP_PAGES_SECRET": "pages-secret-for-the-compose-test",
        # The dev server's one namespace, instead of the compose default `callerloop`.
        "CALLERLOOP_TEMPORAL_NAMESPACE": "default",
    }


def service_environment(
    service: str, dot: Mapping[str, str], local: Mapping[str, str]
) -> dict[str, str]:
    """The image's ENV, then the service's compose environment, then what differs outside
    containers (addresses on this machine instead of the compose network's)."""
    compose_env = environment(callerloop_services()[service])
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CALLERLOOP_", "TEMPORAL_"))
    }
    env.update(dockerfile_env())
    env.pop("PATH", None)
    env["PATH"] = os.environ["PATH"]
    env.update({key: interpolate(value, dict(dot)) for key, value in compose_env.items()})
    env.update(local)
    return env


@contextmanager
def running(name: str, command: list[str], env: dict[str, str], logs: Path) -> Iterator[Child]:
    log = logs / f"{name}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            env=env,
            cwd=logs,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    child = Child(name, process, log)
    try:
        yield child
    finally:
        child.stop()


class Child:
    def __init__(self, name: str, process: subprocess.Popen[bytes], log: Path) -> None:
        self.name, self.process, self.log = name, process, log

    def tail(self) -> str:
        lines = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(lines[-30:])

    def stop(self) -> int | None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
                return None
        return self.process.returncode


async def wait_until_ready(http: httpx.AsyncClient, url: str, child: Child) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    last = "no answer"
    while time.monotonic() < deadline:
        if child.process.poll() is not None:
            raise AssertionError(
                f"{child.name} exited ({child.process.returncode}):\n{child.tail()}"
            )
        try:
            answer = await http.get(url)
            if answer.status_code == 200:
                return
            last = f"{answer.status_code} {answer.text}"
        except httpx.TransportError as error:
            last = repr(error)
        await asyncio.sleep(0.5)
    raise AssertionError(f"{child.name} not ready at {url}: {last}\n{child.tail()}")


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float:
    """The sum of `name` over the samples that have these labels."""
    return sum(
        v
        for (sample, have), v in samples(text).items()
        if sample == name and set(labels.items()) <= have
    )


async def wait_for_text(db: Database, incident_id: str, child: Child) -> OutboxMessage:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        with db.session() as session:
            row = session.exec(
                select(OutboxMessage).where(OutboxMessage.incident_id == incident_id)
            ).first()
        if row is not None and row.status == "sent":
            return row
        await asyncio.sleep(0.3)
    raise AssertionError(f"no text sent for {incident_id}:\n{child.tail()}")


async def test_worker_and_web_commands_of_the_compose_file(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("temporal", "web", "worker", "worker_sdk", "web_sdk")}
    database = Database(f"sqlite:///{tmp_path / 'callerloop.db'}")
    database.create_schema()
    key = create_key(database, "example", "compose test")[1]
    dot = dot_env(tmp_path)
    shared = {
        "CALLERLOOP_DATABASE_URL": database.url,
        "CALLERLOOP_TEMPORAL_ADDRESS": f"127.0.0.1:{ports['temporal']}",
        "CALLERLOOP_AGENCIES_DIR": str(PROJECT_ROOT / "agencies"),
        "CALLERLOOP_TASK_QUEUE": f"compose-{ports['temporal']}",
    }
    worker_env = service_environment(
        "worker",
        dot,
        shared
        | {
            "CALLERLOOP_WORKER_HTTP_ADDRESS": f"127.0.0.1:{ports['worker']}",
            "CALLERLOOP_TEMPORAL_METRICS_ADDRESS": f"127.0.0.1:{ports['worker_sdk']}",
        },
    )
    web_env = service_environment(
        "web",
        dot,
        shared
        | {
            "CALLERLOOP_WEB_HOST": "127.0.0.1",
            "CALLERLOOP_WEB_PORT": str(ports["web"]),
            "CALLERLOOP_WORKER_HTTP_ADDRESS": "",
            "CALLERLOOP_TEMPORAL_METRICS_ADDRESS": f"127.0.0.1:{ports['web_sdk']}",
        },
    )
    services = callerloop_services()
    worker_command = [callerloop_binary(), *services["worker"]["command"]]
    web_command = [callerloop_binary(), *services["web"]["command"]]
    assert (worker_command[1:], web_command[1:]) == (["worker"], ["web"])

    temporal = await start_dev_server(ports["temporal"])
    stopped = False
    worker_url = f"http://127.0.0.1:{ports['worker']}"
    web_url = f"http://127.0.0.1:{ports['web']}"
    try:
        with (
            running("worker", worker_command, worker_env, tmp_path) as worker,
            running("web", web_command, web_env, tmp_path) as web,
        ):
            async with httpx.AsyncClient(timeout=15) as http:
                await wait_until_ready(http, f"{worker_url}/readyz", worker)
                await wait_until_ready(http, f"{web_url}/readyz", web)

                event = {
                    "agency": "example",
                    "incident_id": "25-777001",
                    "event_type": "created",
                    "occurred_at": "2025-09-01T10:00:00-04:00",
                    "event_id": "compose-1",
                    "priority": 4,
                    "call_type": "NOISE COMPLAINT DELAY",
                    "source": "phone",
                    "caller_phone": "+17035550142",
                    "caller_line_type": "mobile",
                    "caller_language": "en",
                }
                accepted = await http.post(
                    f"{web_url}/v1/cad/events", json=event, headers={"X-API-Key": key}
                )
                assert accepted.status_code == 202, accepted.text
                refused = await http.post(
                    f"{web_url}/v1/cad/events", json=event, headers={"X-API-Key": "wrong"}
                )
                assert refused.status_code == 401
                text = await wait_for_text(database, "25-777001", worker)
                assert text.kind == "confirmation"

                worker_metrics = (await http.get(f"{worker_url}/metrics")).text
                labels = {"agency": "example", "kind": "confirmation"}
                assert value(worker_metrics, "callerloop_texts_total", **labels, status="sent") == 1
                assert (
                    value(
                        worker_metrics,
                        "callerloop_cad_events_total",
                        event_type="created",
                        applied="true",
                    )
                    == 1
                )
                assert (
                    value(worker_metrics, "callerloop_eligibility_decisions_total", eligible="true")
                    >= 1
                )
                assert (
                    value(worker_metrics, "callerloop_cad_event_to_handoff_seconds_count", **labels)
                    == 1
                )
                web_metrics = (await http.get(f"{web_url}/metrics")).text
                assert (
                    value(
                        web_metrics,
                        "callerloop_cad_events_accepted_total",
                        agency="example",
                        event_type="created",
                    )
                    == 1
                )
                assert (
                    value(
                        web_metrics,
                        "callerloop_webhook_errors_total",
                        endpoint="/v1/cad/events",
                        status="401",
                    )
                    == 1
                )
                for port in (ports["worker_sdk"], ports["web_sdk"]):
                    sdk = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
                    assert "temporal_request" in sdk, sdk[:500]

                await temporal.shutdown()
                stopped = True
                for url, child in ((worker_url, worker), (web_url, web)):
                    down = await http.get(f"{url}/readyz")
                    assert down.status_code == 503, f"{child.name}: {down.text}"
                    assert "temporal: unavailable" in down.text
                    assert "database: ok" in down.text
                    assert (await http.get(f"{url}/healthz")).status_code == 200

            # SIGTERM, as `docker stop` sends: both stop on their own. The worker exits 0;
            # uvicorn finishes its shutdown, then re-raises the signal it caught (by design).
            assert worker.stop() == 0, worker.tail()
            assert web.stop() in (0, -signal.SIGTERM), web.tail()
            assert "Application shutdown complete" in web.tail()
    finally:
        if not stopped:
            await temporal.shutdown()
        database.dispose()
