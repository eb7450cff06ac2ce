"""The CAD ingest API against a real worker: keys, validation, dead letters, rate limit,
Temporal being away, and the HTTP client over a real socket."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import col, select
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from typer.testing import CliRunner

from callerloop.cad import dead_letters
from callerloop.cad.delivery import (
    EIDO_PATH,
    EVENTS_PATH,
    SignalWithStart,
    body_delivery,
    temporal_signal_with_start,
)
from callerloop.cad.eido import eido_mapping_for, events_to_eido
from callerloop.cad.http_client import HttpCadClient, IngestRefused, Retrying, event_json
from callerloop.cad.replay import ReplayCall
from callerloop.core.db import DeadLetter, SendRevocation
from callerloop.staff.api_keys import create_key, revoke_key
from starter.cli import app as cli_app
from tests.factories import (
    RecordingProvider,
    cad_event,
    eligible_call,
    make_agency,
    new_incident_id,
)
from tests.harness import Harness
from tests.web.serving import free_port, serving
from web.cad_ingest import RateLimit, cad_ingest_router
from workflows.call_for_service import workflow_id_for
from workflows.model import CadEvent, CadEventType, CallState, LineType


def signal_with_start_of(harness: Harness) -> SignalWithStart:
    async def client() -> Client:
        return harness.env.client

    return temporal_signal_with_start(client, harness.settings.task_queue)


def ingest_app(
    harness: Harness, signal_with_start: SignalWithStart | None = None, **options: Any
) -> FastAPI:
    app = FastAPI()
    app.include_router(
        cad_ingest_router(
            harness.db,
            harness.agencies,
            signal_with_start or signal_with_start_of(harness),
            **options,
        )
    )
    return app


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


@pytest.fixture
def key(harness: Harness) -> str:
    return create_key(harness.db, "testville", "test CAD")[1]


@pytest.fixture
async def web(harness: Harness) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(ingest_app(harness)) as client:
        yield client


def track(harness: Harness, incident: str) -> None:
    """Started over HTTP: let the harness terminate the call when the test ends."""
    harness.handles.setdefault(
        incident, harness.env.client.get_workflow_handle(workflow_id_for("testville", incident))
    )


async def post(
    web: httpx.AsyncClient, body: object, key: str | None, **headers: str
) -> httpx.Response:
    if key is not None:
        headers.setdefault("Authorization", f"Bearer {key}")
    content = body if isinstance(body, str | bytes) else json.dumps(body)
    return await web.post(EVENTS_PATH, content=content, headers=headers)


def kept(harness: Harness) -> list[DeadLetter]:
    with harness.db.session() as session:
        return list(session.exec(select(DeadLetter)))


async def applied(harness: Harness, incident: str, count: int) -> CallState:
    return await harness.settle(incident, lambda s: s.events_applied + s.events_ignored >= count)


async def test_events_start_and_advance_the_call(
    harness: Harness, web: httpx.AsyncClient, key: str
) -> None:
    incident = new_incident_id()
    response = await post(web, event_json(eligible_call(incident)), key)
    assert response.status_code == 202, response.text
    assert response.json() == {
        "workflow_ids": [workflow_id_for("testville", incident)],
        "finished": [],
    }
    track(harness, incident)
    await applied(harness, incident, 1)
    assigned = cad_event(incident, CadEventType.ASSIGNED, minutes=5)
    response = await post(web, [event_json(assigned)], None, **{"X-API-Key": key})
    assert response.status_code == 202, response.text
    state = await applied(harness, incident, 2)
    assert state.events_applied == 2
    assert harness.kinds(incident) == ["confirmation", "assigned"]
    assert kept(harness) == []


@pytest.mark.parametrize("presented", [None, "clk_not-a-key", "revoked"])
async def test_a_missing_unknown_or_revoked_key_is_unauthorized(
    harness: Harness, web: httpx.AsyncClient, presented: str | None
) -> None:
    if presented == "revoked":
        key_id, presented = create_key(harness.db, "testville", "old CAD")
        revoke_key(harness.db, key_id)
    response = await post(web, event_json(eligible_call(new_incident_id())), presented)
    assert response.status_code == 401
    assert kept(harness) == []


async def test_a_key_sends_only_for_its_own_agency(
    harness: Harness, web: httpx.AsyncClient, key: str
) -> None:
    harness.agencies["otherville"] = make_agency("otherville")
    events = [eligible_call(new_incident_id()), eligible_call("X-1", agency="otherville")]
    response = await post(web, [event_json(e) for e in events], key)
    assert response.status_code == 403
    assert "otherville" in response.json()["detail"]


async def test_invalid_json_is_refused_and_kept(
    harness: Harness, web: httpx.AsyncClient, key: str
) -> None:
    response = await post(web, '{"agency": "testville",', key)
    assert response.status_code == 422
    [detail] = response.json()["detail"]
    assert detail["loc"] == ["body"]
    assert "not valid JSON" in detail["msg"]
    [letter] = kept(harness)
    assert (letter.body, letter.agency, letter.status) == (
        '{"agency": "testville",',
        "testville",
        "open",
    )


async def test_a_bad_field_is_named_by_its_path_and_kept(
    harness: Harness, web: httpx.AsyncClient, key: str
) -> None:
    good = event_json(eligible_call(new_incident_id()))
    bad = {**event_json(eligible_call(new_incident_id())), "priority": "urgent"}
    response = await post(web, [good, bad], key)
    assert response.status_code == 422
    [detail] = response.json()["detail"]
    assert detail["loc"] == ["body", 1, "priority"]
    assert "integer" in detail["msg"]
    [letter] = kept(harness)
    assert json.loads(letter.body) == [good, bad]
    assert "body[1].priority" in letter.reason
    assert response.json()["dead_letter_id"] == letter.id


async def assert_never_started(harness: Harness, incident: str) -> None:
    with pytest.raises(RPCError) as raised:
        await harness.handle(incident).describe()
    assert raised.value.status == RPCStatusCode.NOT_FOUND


async def test_a_priority_beyond_int64_is_refused_at_ingest_naming_the_field(
    harness: Harness, web: httpx.AsyncClient, key: str
) -> None:
    """Once accepted with 202: the workflow then failed every task on the CallPriority
    search attribute and the call's later events were not applied (issue 20, finding 5)."""
    incident = new_incident_id()
    body = [{**event_json(eligible_call(incident)), "priority": 9223372036854775808}]
    response = await post(web, body, key)
    assert response.status_code == 422, response.text
    [detail] = response.json()["detail"]
    assert detail["loc"] == ["body", 0, "priority"]
    assert detail["msg"] == "outside the signed 64-bit range of the CallPriority search attribute"
    [letter] = kept(harness)
    assert json.loads(letter.body) == body and "body[0].priority" in letter.reason
    await assert_never_started(harness, incident)


def _days_from_now(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("priority", 10, "not on this agency's priority scale (0 to 9)"),
        ("priority", -(2**63) - 1, "outside the signed 64-bit range"),
        ("agency", "testville\u0000", "contains a control character"),
        ("incident_id", "I" * 129, "longer than 128 characters (129)"),
        ("case_number", "C-1\n", "contains a control character"),
        ("event_id", "e" * 201, "longer than 200 characters (201)"),
        ("call_type", "NOISE\u0000COMPLAINT", "contains a control character"),
        ("disposition", "D" * 201, "longer than 200 characters (201)"),
        ("caller_phone", "7" * 41, "longer than 40 characters (41)"),
        ("occurred_at", "1999-12-31T23:59:59Z", "before 2000-01-01"),
        pytest.param(  # an id without the clock's time: the same in every xdist worker
            "occurred_at",
            _days_from_now(3),
            "more than 2 days ahead of the clock",
            id="occurred_at-3-days-ahead",
        ),
    ],
)
async def test_a_value_a_call_cannot_apply_is_refused_at_ingest_naming_the_field(
    harness: Harness, web: httpx.AsyncClient, key: str, field: str, value: object, message: str
) -> None:
    body = [{**event_json(eligible_call(new_incident_id())), field: value}]
    response = await post(web, body, key)
    assert response.status_code == 422, response.text
    [detail] = response.json()["detail"]
    assert detail["loc"] == ["body", 0, field]
    assert detail["msg"].startswith(message), detail["msg"]
    assert len(kept(harness)) == 1


async def test_an_unknown_agency_error_names_no_other_agency(
    harness: Harness, web: httpx.AsyncClient, key: str
) -> None:
    """Once `422 … unknown agency 'gotham'; configured: ['otherville', 'testville']` to any
    key holder (issue 20, finding 12). Now an agency not the key's is refused alike,
    configured or not, so the answer cannot tell which agencies exist either."""
    harness.agencies["otherville"] = make_agency("otherville")

    async def refusal(named: str) -> httpx.Response:
        return await post(web, [event_json(eligible_call(new_incident_id(), agency=named))], key)

    unknown = await refusal("gotham")
    assert "otherville" not in unknown.text
    assert unknown.status_code == 403
    assert unknown.json()["detail"].startswith(
        "body[0].agency: this API key belongs to agency 'testville', not to 'gotham'; "
        "kept as dead letter "
    )
    [letter] = kept(harness)
    assert "otherville" not in letter.reason

    configured = await refusal("otherville")
    assert configured.status_code == unknown.status_code
    assert configured.json()["detail"].startswith(
        "body[0].agency: this API key belongs to agency 'testville', not to 'otherville'; "
    )


async def test_a_body_too_large_or_with_too_many_events_is_refused(
    harness: Harness, key: str
) -> None:
    async with client_for(ingest_app(harness, max_body_bytes=2000, max_events=2)) as web:
        response = await post(web, " " * 2001, key)
        assert response.status_code == 413

        async def chunks() -> AsyncIterator[bytes]:  # streamed: no Content-Length
            for _ in range(3):
                yield b" " * 1000

        headers = {"Authorization": f"Bearer {key}"}
        response = await web.post(EVENTS_PATH, content=chunks(), headers=headers)
        assert response.status_code == 413
        events = [event_json(eligible_call(new_incident_id())) for _ in range(3)]
        response = await post(web, events, key)
        assert response.status_code == 413
        assert "at most 2" in response.json()["detail"]


async def test_requests_over_the_rate_are_refused_with_retry_after(
    harness: Harness, key: str
) -> None:
    slow = RateLimit(per_second=0.5, burst=2)
    async with client_for(ingest_app(harness, rate_limit=slow)) as web:
        statuses = [(await post(web, "[]", key)).status_code for _ in range(3)]
        assert statuses == [202, 202, 429]
        response = await post(web, "[]", key)
        assert response.status_code == 429
        assert 1 <= int(response.headers["Retry-After"]) <= 2
        other_key = create_key(harness.db, "testville", "second CAD")[1]
        assert (await post(web, "[]", other_key)).status_code == 202


async def unreachable(event: CadEvent) -> str:
    raise RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b"")


async def test_temporal_away_keeps_the_body_and_retry_delivers_it_once(
    harness: Harness, key: str
) -> None:
    incident = new_incident_id()
    events = [eligible_call(incident), cad_event(incident, CadEventType.ASSIGNED, minutes=5)]
    async with client_for(ingest_app(harness, unreachable)) as web:
        response = await post(web, [event_json(e) for e in events], key)
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    [letter] = kept(harness)
    assert letter.reason.startswith("temporal unavailable: ")
    assert letter.id is not None and response.json()["dead_letter_id"] == letter.id

    away = body_delivery(harness.agencies, unreachable)
    still_open = await dead_letters.retry(harness.db, letter.id, away)
    assert (still_open.status, still_open.reason) == ("open", letter.reason)

    deliver = body_delivery(harness.agencies, signal_with_start_of(harness))
    delivered = await dead_letters.retry(harness.db, letter.id, deliver)
    assert delivered.status == "delivered" and delivered.resolved_at is not None
    track(harness, incident)
    state = await applied(harness, incident, 2)
    assert (state.events_applied, state.events_ignored) == (2, 0)
    assert harness.kinds(incident) == ["confirmation", "assigned"]
    with pytest.raises(dead_letters.DeadLetterNotOpen):
        await dead_letters.retry(harness.db, letter.id, deliver)


async def test_a_fixed_body_is_validated_before_it_is_delivered(
    harness: Harness, web: httpx.AsyncClient, key: str
) -> None:
    incident = new_incident_id()
    bad = {**event_json(eligible_call(incident)), "caller_phone": "not a phone"}
    letter_id = (await post(web, bad, key)).json()["dead_letter_id"]
    deliver = body_delivery(harness.agencies, signal_with_start_of(harness))
    again = await dead_letters.retry(harness.db, letter_id, deliver, fixed_body=json.dumps(bad))
    assert again.status == "open" and "body.caller_phone" in again.reason
    fixed = json.dumps(event_json(eligible_call(incident)))
    done = await dead_letters.retry(harness.db, letter_id, deliver, fixed_body=fixed)
    assert (done.status, done.body) == ("delivered", fixed)
    track(harness, incident)
    assert (await applied(harness, incident, 1)).events_applied == 1


async def test_events_of_a_finished_call_are_reported_not_kept(
    harness: Harness, web: httpx.AsyncClient, key: str
) -> None:
    incident = new_incident_id()
    await harness.send(eligible_call(incident, priority=1))  # not eligible: ends at once
    await harness.finish(incident)
    late = cad_event(incident, CadEventType.CLEARED, minutes=60)
    response = await post(web, event_json(late), key)
    assert response.status_code == 202
    [finished] = response.json()["finished"]
    assert finished["event_id"] == late.event_id
    assert response.json()["workflow_ids"] == []
    assert kept(harness) == []


async def test_the_endpoint_is_documented_with_an_example(harness: Harness) -> None:
    async with client_for(ingest_app(harness)) as web:
        spec = (await web.get("/openapi.json")).json()
    operation = spec["paths"][EVENTS_PATH]["post"]
    content = operation["requestBody"]["content"]["application/json"]
    event_schema, list_schema = content["schema"]["oneOf"]
    assert "incident_id" in event_schema["required"]
    assert list_schema["maxItems"] == 500
    assert content["examples"]["one event"]["value"]["event_type"] == "created"
    assert {"202", "401", "403", "413", "422", "429", "503"} <= set(operation["responses"])
    # The bounds JSON Schema can state are stated (the agency's priority scale cannot be).
    properties = event_schema["properties"]
    assert properties["incident_id"]["maxLength"] == 128
    assert {"type": "string", "maxLength": 200} in properties["call_type"]["anyOf"]
    assert "priority scale" in properties["priority"]["description"]


# --- the HTTP client over a real socket ---------------------------------------------------


@pytest.fixture
def served(harness: Harness) -> Iterator[str]:
    with serving(ingest_app(harness)) as url:
        yield url


async def test_the_http_client_publishes_events(harness: Harness, served: str, key: str) -> None:
    incident = new_incident_id()
    client = HttpCadClient(served, key)
    assert await client.publish(eligible_call(incident)) == [workflow_id_for("testville", incident)]
    track(harness, incident)
    assigned = cad_event(incident, CadEventType.ASSIGNED, minutes=5)
    assert await client.publish([assigned]) == [workflow_id_for("testville", incident)]
    await applied(harness, incident, 2)


async def test_the_http_client_raises_the_servers_message(
    harness: Harness, served: str, key: str
) -> None:
    bad = eligible_call(new_incident_id(), caller_language="spanish")
    with pytest.raises(
        IngestRefused, match=r"HTTP 422: body\.caller_language: expected"
    ) as refused:
        await HttpCadClient(served, key).publish(bad)
    assert refused.value.status_code == 422
    with pytest.raises(IngestRefused, match="HTTP 401: unknown or revoked"):
        await HttpCadClient(served, "clk_wrong").publish(bad)
    # Refusals that sending again cannot mend are not sent again.
    patient = HttpCadClient(served, key, retrying=Retrying())
    with pytest.raises(IngestRefused, match="HTTP 422"):
        await patient.publish(bad)
    assert patient.retries == 0


async def test_the_http_client_waits_out_the_rate_limit_and_delivers(
    harness: Harness, key: str
) -> None:
    first, second = new_incident_id(), new_incident_id()
    one_a_second = ingest_app(harness, rate_limit=RateLimit(per_second=1, burst=1))
    with serving(one_a_second) as url:
        async with HttpCadClient(url, key, retrying=Retrying()) as client:
            await client.publish(eligible_call(first))
            # Over the rate: 429 with Retry-After 1; sent again a second later.
            assert await client.publish(eligible_call(second)) == [
                workflow_id_for("testville", second)
            ]
    assert client.retries == 1
    for incident in (first, second):
        track(harness, incident)
        assert (await applied(harness, incident, 1)).events_applied == 1
    assert kept(harness) == []  # a 429 keeps nothing: the event was never taken


async def test_the_http_client_sends_again_after_a_503_and_the_event_is_applied_once(
    harness: Harness, key: str
) -> None:
    through = signal_with_start_of(harness)
    refusals = [unreachable]  # Temporal is away for the first post only

    async def away_once(event: CadEvent) -> str:
        return await (refusals.pop() if refusals else through)(event)

    incident = new_incident_id()
    events = [eligible_call(incident), cad_event(incident, CadEventType.ASSIGNED, minutes=5)]
    with serving(ingest_app(harness, away_once)) as url:
        # Retry-After says 30 s; the policy's max_pause caps the wait.
        client = HttpCadClient(url, key, retrying=Retrying(max_pause=0.05))
        assert await client.publish(events) == [workflow_id_for("testville", incident)] * 2
    assert client.retries == 1
    track(harness, incident)
    state = await applied(harness, incident, 2)
    assert (state.events_applied, state.events_ignored) == (2, 0)
    # The refused post was kept; retrying that letter later is harmless (idempotent ids).
    assert [letter.reason for letter in kept(harness)] == [
        "temporal unavailable: connection refused"
    ]


async def test_the_http_client_gives_up_after_its_attempts(harness: Harness, key: str) -> None:
    with serving(ingest_app(harness, unreachable)) as url:
        client = HttpCadClient(url, key, retrying=Retrying(attempts=3, max_pause=0.01))
        with pytest.raises(IngestRefused, match="HTTP 503: temporal unavailable") as refused:
            await client.publish(eligible_call(new_incident_id()))
    assert refused.value.status_code == 503
    assert client.retries == 2
    assert len(kept(harness)) == 3  # each refused post kept whole


async def test_the_http_client_retries_an_unreachable_server_then_says_so() -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    client = HttpCadClient(nobody, "clk_any", retrying=Retrying(attempts=2, first_pause=0.01))
    with pytest.raises(httpx.ConnectError):
        await client.publish(eligible_call(new_incident_id()))
    assert client.retries == 1


def test_the_retry_pause_follows_retry_after_and_doubles_without_it() -> None:
    policy = Retrying(first_pause=0.5, max_pause=10)
    assert [policy.pause(retry, None) for retry in (1, 2, 3, 6)] == [0.5, 1.0, 2.0, 10]
    assert policy.pause(1, "3") == 3.0
    assert policy.pause(1, "120") == 10  # never longer than max_pause
    assert policy.pause(2, "Wed, 21 Oct 2026 07:28:00 GMT") == 1.0  # a date: backoff
    with pytest.raises(ValueError, match="attempts must be at least 1"):
        Retrying(attempts=0)


async def test_eido_documents_start_and_advance_the_call(
    harness: Harness, web: httpx.AsyncClient, key: str, provider: RecordingProvider
) -> None:
    """EIDO documents generated from a replayed call drive the same workflow. EIDO has no
    class of service, so the number's line type comes from a lookup."""
    provider.line_types["+17035550142"] = LineType.MOBILE
    agency = harness.agencies["testville"]
    created = eligible_call("EIDO-1")
    assigned = cad_event("EIDO-1", CadEventType.ASSIGNED, minutes=4)
    call = ReplayCall("EIDO-1", created_at=created.occurred_at, events=[created, assigned])
    documents = events_to_eido(call, agency, eido_mapping_for(agency))
    track(harness, "EIDO-1")
    for count, document in enumerate(documents, start=1):
        response = await web.post(
            EIDO_PATH, content=json.dumps(document), headers={"X-API-Key": key}
        )
        assert response.status_code == 202, response.text
        assert response.json()["workflow_ids"] == [workflow_id_for("testville", "EIDO-1")]
        await applied(harness, "EIDO-1", count)
    assert harness.kinds("EIDO-1") == ["confirmation", "assigned"]


async def test_a_bad_eido_document_is_refused_with_its_path_and_kept(
    harness: Harness, web: httpx.AsyncClient, key: str
) -> None:
    body = json.dumps(
        {
            "lastUpdateTimeStamp": "2025-09-01T10:00:00-04:00",
            "incidentComponent": {
                "internalIncidentId": "EIDO-2",
                "incidentTypeCommonRegistryText": "NOISE",
                "incidentStatusCommonRegistryText": ["Dispatched"],
            },
        }
    )
    response = await web.post(EIDO_PATH, content=body, headers={"X-API-Key": key})
    assert response.status_code == 422
    assert "incidentStatusCommonRegistryText" in response.text
    [letter] = kept(harness)
    assert letter.endpoint == EIDO_PATH and letter.body == body


async def test_cad_send_posts_to_a_remote_callerloop(
    harness: Harness, served: str, key: str, tmp_path: Path
) -> None:
    """`callerloop cad send --url --key`: the CAD side needs no Temporal and no agency files."""
    incident = new_incident_id()
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(event_json(eligible_call(incident))))
    runner = CliRunner()
    command = ["cad", "send", str(event_file), "--url", served, "--key", key]
    result = await asyncio.to_thread(runner.invoke, cli_app, command)
    track(harness, incident)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == workflow_id_for("testville", incident)
    await applied(harness, incident, 1)
    bad = await asyncio.to_thread(
        runner.invoke, cli_app, ["cad", "send", str(event_file), "--url", served, "--key", "nope"]
    )
    assert bad.exit_code == 2 and "HTTP 401" in bad.output


async def test_a_sensitive_reclassification_withdraws_the_calls_sends_at_the_edge(
    harness: Harness, web: httpx.AsyncClient, key: str
) -> None:
    """Written before the event is signalled: a send on its way is refused at its hand-off
    even while the call's workflow has not seen the event (its worker restarting)."""
    incident = new_incident_id()
    assert (await post(web, [event_json(eligible_call(incident))], key)).status_code == 202
    assert revocations(harness, incident) == []
    update = cad_event(incident, CadEventType.UPDATED, minutes=2, call_type="DOMESTIC DISTURBANCE")
    assert (await post(web, [event_json(update)], key)).status_code == 202
    assert revocations(harness, incident) == ["CAD: call_type_sensitive"]


def revocations(harness: Harness, incident: str) -> list[str]:
    with harness.db.session() as session:
        rows = session.exec(
            select(SendRevocation).where(
                col(SendRevocation.workflow_id) == workflow_id_for("testville", incident)
            )
        )
        return [row.reason for row in rows]
