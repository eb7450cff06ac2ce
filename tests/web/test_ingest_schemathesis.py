"""Schemathesis against the running ingest API, from the project's own OpenAPI document:
no 5xx, every response as documented, bad input refused, missing or wrong keys refused,
and every refused body kept as a dead letter, exactly as it was sent (a NUL character,
which PostgreSQL text cannot hold, as U+FFFD).

The app runs on a real socket against its own Temporal dev server (no worker: accepted
events start workflows that simply wait)."""

from __future__ import annotations

import collections
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from callerloop.core.agency_config import load_agency_file
from callerloop.core.db import Database, DeadLetter
from callerloop.core.settings import PROJECT_ROOT, Settings
from callerloop.core.temporal import FAIL_FAST
from callerloop.staff.api_keys import create_key
from tests.conftest import TEST_CONVERTER, start_dev_server
from tests.factories import make_agency
from tests.web.serving import serving
from web.app import create_app

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
]
# Refusals that keep nothing, by design: no valid key (the body is a stranger's), or over
# the key's rate (the sender is told to retry). Every other refusal keeps the body.
NOT_KEPT = {401, 429}
EXAMPLES = 200


@dataclass
class IngestApi:
    url: str
    key: str
    db: Database


@pytest.fixture(scope="module")
async def ingest_temporal() -> AsyncIterator[WorkflowEnvironment]:
    environment = await start_dev_server()
    yield environment
    await environment.shutdown()


@pytest.fixture(scope="module")
def ingest_api(
    ingest_temporal: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IngestApi]:
    """The key is the example agency's; events may name it, another configured agency
    (403) or any string (422)."""
    db_file: Path = tmp_path_factory.mktemp("schemathesis") / "callerloop.db"
    database = Database(f"sqlite:///{db_file}")
    database.create_schema()
    example = load_agency_file(PROJECT_ROOT / "agencies" / "example.toml")
    other = make_agency()
    target = ingest_temporal.client.service_client.config.target_host
    settings_ = Settings(
        task_queue="schemathesis",
        public_base_url="https://callerloop.test",
        ingest_rate_per_second=10_000,  # the rate limit has its own test
        ingest_burst=10_000,
    )

    async def connect() -> Client:
        return await Client.connect(target, retry_config=FAIL_FAST, data_converter=TEST_CONVERTER)

    app = create_app(settings_, database, {example.id: example, other.id: other}, connect)
    with serving(app) as url:
        yield IngestApi(url, create_key(database, example.id, "schemathesis")[1], database)
    database.dispose()


@pytest.fixture(scope="module")
def ingest_schema(ingest_api: IngestApi) -> Any:
    schema = schemathesis.openapi.from_url(f"{ingest_api.url}/openapi.json").include(
        path_regex="^/v1/cad/"
    )

    @schema.hook
    def flatmap_body(context: Any, body: Any) -> st.SearchStrategy[Any]:
        """Most generated agencies are unknown strings; often name configured ones too,
        so acceptance (202) and the other agency's refusal (403) are exercised."""
        return st.sampled_from(["example", "testville", None]).map(
            lambda agency: with_agency(body, agency)
        )

    return schema


def with_agency(body: Any, agency: str | None) -> Any:
    if agency is None:
        return body
    if isinstance(body, dict) and "agency" in body:
        return {**body, "agency": agency}
    if isinstance(body, list):
        return [with_agency(item, agency) for item in body]
    return body


def test_the_ingest_api_keeps_its_openapi_promises(
    ingest_schema: Any, ingest_api: IngestApi
) -> None:
    """Schema-valid and schema-breaking requests to both endpoints (the pytest plugin's
    lazy loader does not run under pytest 9, so the cases come from a plain strategy)."""
    statuses: collections.Counter[int] = collections.Counter()
    cases = st.one_of(
        ingest_schema.as_strategy(GenerationMode.POSITIVE, hooks=ingest_schema.hooks),
        ingest_schema.as_strategy(GenerationMode.NEGATIVE, hooks=ingest_schema.hooks),
    )

    @given(case=cases)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,  # a CI failure reproduces locally
        database=None,
    )
    def keeps_its_promises(case: Case[Any]) -> None:
        headers = {"Authorization": f"Bearer {ingest_api.key}"}
        response = case.call(headers=headers)
        statuses[response.status_code] += 1
        case.validate_response(response, checks=CHECKS, headers=headers)
        if 400 <= response.status_code < 500 and response.status_code not in NOT_KEPT:
            letter = kept(ingest_api.db, response.json()["dead_letter_id"])
            assert letter is not None, f"refused with {response.status_code} but not kept"
            assert letter.body == sent_text(response.request.body)

    keeps_its_promises()
    # Both outcomes were exercised: accepted events, and bodies refused and kept.
    assert statuses[202] > 0 and statuses[422] > 0 and statuses[403] > 0, statuses


def kept(db: Database, dead_letter_id: int) -> DeadLetter | None:
    with db.session() as session:
        return session.get(DeadLetter, dead_letter_id)


def sent_text(body: object) -> str:
    """The request body as the server decoded and kept it (bytes, or nothing for an empty
    body; a NUL character, which PostgreSQL text cannot hold, kept as U+FFFD)."""
    if isinstance(body, bytes):
        text = body.decode("utf-8-sig", errors="replace")
    else:
        text = body if isinstance(body, str) else ""
    return text.replace("\x00", "\ufffd")


def test_the_schema_covers_both_ingest_endpoints(ingest_api: IngestApi) -> None:
    """Guards the test above against silently generating nothing."""
    import httpx

    spec = httpx.get(f"{ingest_api.url}/openapi.json").json()
    assert {"/v1/cad/events", "/v1/cad/eido"} <= set(spec["paths"])
    schemes = spec["components"]["securitySchemes"]
    assert {"HTTPBearer", "APIKeyHeader"} <= set(schemes)
    assert json.dumps(spec).count('"dead_letter_id"') >= 2
