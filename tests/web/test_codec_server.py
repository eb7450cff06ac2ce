"""The codec server the Temporal UI calls to show decrypted payloads to operators."""

from __future__ import annotations

import httpx
import pytest
from google.protobuf import json_format
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.client import Client

from callerloop.core.codec import codec_from_spec, new_key_spec
from callerloop.core.db import Database
from callerloop.core.settings import Settings
from tests.factories import make_agency
from web.app import create_app

KEYS = new_key_spec("ops")
UI = "http://localhost:8233"
PHONE = Payload(metadata={"encoding": b"json/plain"}, data=b'"+17035550142"')


def codec_client(
    database: Database, *, keys: str = KEYS, tokens: str = "", client_host: str = "127.0.0.1"
) -> httpx.AsyncClient:
    settings = Settings(
        encryption_keys=SecretStr(keys),
        codec_access_tokens=SecretStr(tokens),
        codec_cors_origins=[UI],
    )

    async def no_temporal() -> Client:
        raise AssertionError("the codec server never talks to Temporal")

    agency = make_agency()
    app = create_app(settings, database, {agency.id: agency}, no_temporal)
    transport = httpx.ASGITransport(app=app, client=(client_host, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def as_json(*payloads: Payload) -> str:
    return json_format.MessageToJson(Payloads(payloads=payloads))


def payloads_of(response: httpx.Response) -> list[Payload]:
    return list(json_format.ParseDict(response.json(), Payloads()).payloads)


async def test_the_ui_gets_payloads_decrypted(database: Database) -> None:
    [sealed] = await codec_from_spec(KEYS).encode([PHONE])
    async with codec_client(database) as web:
        response = await web.post(
            "/codec/decode", content=as_json(sealed), headers={"X-Namespace": "default"}
        )
        assert response.status_code == 200, response.text
        assert payloads_of(response) == [PHONE]
        encoded = await web.post("/codec/encode", content=as_json(PHONE))
    [resealed] = payloads_of(encoded)
    assert resealed.metadata["encoding"] == b"binary/encrypted"
    assert await codec_from_spec(KEYS).decode([resealed]) == [PHONE]


async def test_only_the_ui_origin_may_call_it_from_a_browser(database: Database) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-namespace",
    }
    async with codec_client(database) as web:
        allowed = await web.options("/codec/decode", headers={**preflight, "Origin": UI})
        refused = await web.options(
            "/codec/decode", headers={**preflight, "Origin": "https://evil.example"}
        )
    assert allowed.headers["access-control-allow-origin"] == UI
    assert "access-control-allow-origin" not in refused.headers


async def test_with_tokens_configured_a_token_is_required(database: Database) -> None:
    [sealed] = await codec_from_spec(KEYS).encode([PHONE])
    async with codec_client(database, tokens="t0ken-1,t0ken-2", client_host="10.0.0.5") as web:
        missing = await web.post("/codec/decode", content=as_json(sealed))
        wrong = await web.post(
            "/codec/decode", content=as_json(sealed), headers={"Authorization": "Bearer nope"}
        )
        right = await web.post(
            "/codec/decode", content=as_json(sealed), headers={"Authorization": "Bearer t0ken-2"}
        )
    assert (missing.status_code, wrong.status_code, right.status_code) == (401, 401, 200)
    assert payloads_of(right) == [PHONE]


async def test_without_tokens_only_this_machine_may_decrypt(database: Database) -> None:
    [sealed] = await codec_from_spec(KEYS).encode([PHONE])
    async with codec_client(database, client_host="203.0.113.9") as web:
        response = await web.post("/codec/decode", content=as_json(sealed))
    assert response.status_code == 403
    assert "+17035550142" not in response.text


@pytest.mark.parametrize(
    ("body", "message"),
    [("not json", "expected Temporal Payloads JSON"), ('{"payloads": 3}', "expected")],
)
async def test_a_bad_body_is_a_clear_422(database: Database, body: str, message: str) -> None:
    async with codec_client(database) as web:
        response = await web.post("/codec/decode", content=body)
    assert response.status_code == 422
    assert message in response.json()["detail"]


async def test_a_payload_under_an_unknown_key_is_named(database: Database) -> None:
    [sealed] = await codec_from_spec(new_key_spec("retired")).encode([PHONE])
    async with codec_client(database) as web:
        response = await web.post("/codec/decode", content=as_json(sealed))
    assert response.status_code == 422
    assert "'retired', which is not configured" in response.json()["detail"]


async def test_without_encryption_keys_there_is_no_codec_server(database: Database) -> None:
    async with codec_client(database, keys="") as web:
        response = await web.post("/codec/decode", content=as_json(PHONE))
    assert response.status_code == 404
