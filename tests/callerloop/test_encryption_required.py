"""Encryption is not optional: nothing talks to Temporal without keys unless development
asks for clear payloads out loud, and nothing reads a payload that was not encrypted
unless a migration allows it. Commands run beside `make run` find its keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from google.protobuf import json_format
from pydantic import SecretStr
from structlog.testing import capture_logs
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.client import Client
from typer.testing import CliRunner

from callerloop.core.codec import new_key_spec
from callerloop.core.db import Database
from callerloop.core.settings import Settings, get_settings
from callerloop.core.temporal import (
    FAIL_FAST,
    UnencryptedPayloadsRefused,
    _warn_unencrypted,
    connect,
    local_stack_keys_file,
    required_payload_codec,
    with_local_stack_keys,
)
from devtools.devstack import StackPaths, with_local_secrets
from starter.cli import app
from tests.factories import make_agency
from web.app import create_app

UNREACHABLE = "127.0.0.1:1"  # nothing listens: a refusal must come before any connection
PLAIN = Payload(metadata={"encoding": b"json/plain"}, data=b'"+17035550142"')


@pytest.fixture
def no_keys(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """An environment without keys or opt-outs, and a data folder without a local stack."""
    for name in (
        "CALLERLOOP_ENCRYPTION_KEYS",
        "CALLERLOOP_ALLOW_UNENCRYPTED_PAYLOADS",
        "CALLERLOOP_ACCEPT_PLAINTEXT_PAYLOADS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CALLERLOOP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CALLERLOOP_TEMPORAL_ADDRESS", UNREACHABLE)
    monkeypatch.setenv("CALLERLOOP_DATABASE_URL", f"sqlite:///{tmp_path / 'callerloop.db'}")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("no_keys")
async def test_without_encryption_keys_nothing_connects_to_temporal() -> None:
    with pytest.raises(UnencryptedPayloadsRefused) as refused:
        await connect(Settings(), FAIL_FAST)
    message = str(refused.value)
    assert "CALLERLOOP_ENCRYPTION_KEYS is not set" in message
    assert UNREACHABLE in message  # names where the numbers would have gone
    assert "callerloop encryption new-key" in message  # and how to fix it
    assert "CALLERLOOP_ALLOW_UNENCRYPTED_PAYLOADS=1" in message


@pytest.mark.usefixtures("no_keys")
@pytest.mark.parametrize("command", [["worker"], ["web"]])
def test_the_worker_and_the_web_app_refuse_to_start_without_encryption_keys(
    command: list[str], tmp_path: Path
) -> None:
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 2, result.output
    assert "CALLERLOOP_ENCRYPTION_KEYS is not set" in result.output
    assert not (tmp_path / "callerloop.db").exists()  # refused before touching anything


@pytest.mark.usefixtures("no_keys")
def test_a_cli_command_refuses_too() -> None:
    result = CliRunner().invoke(app, ["calls", "show", "25-071089", "--agency", "example"])
    assert result.exit_code == 2, result.output
    assert "CALLERLOOP_ENCRYPTION_KEYS is not set" in result.output


@pytest.mark.usefixtures("no_keys")
def test_clear_payloads_only_when_development_asks_for_them_loudly() -> None:
    _warn_unencrypted.cache_clear()
    with capture_logs() as logs:
        codec = required_payload_codec(Settings(allow_unencrypted_payloads=True))
    assert codec is None
    [warning] = logs
    assert warning["log_level"] == "warning"
    assert "NOT encrypted" in warning["event"]


@pytest.mark.usefixtures("no_keys")
def test_a_command_beside_make_run_finds_the_local_stacks_keys(tmp_path: Path) -> None:
    settings = Settings()
    assert with_local_stack_keys(settings) is settings  # no local stack: nothing made
    assert not local_stack_keys_file(settings.data_dir).exists()

    settings.data_dir.mkdir()
    stack = with_local_secrets(settings, StackPaths(settings.data_dir))  # what `make run` does
    found = with_local_stack_keys(Settings())
    assert found.encryption_keys.get_secret_value() == stack.encryption_keys.get_secret_value()
    configured = new_key_spec("prod")
    assert with_local_stack_keys(Settings(encryption_keys=SecretStr(configured))) == Settings(
        encryption_keys=SecretStr(configured)
    )  # configured keys win


def codec_server(database: Database, **settings: object) -> httpx.AsyncClient:
    async def no_temporal() -> Client:
        raise AssertionError("the codec server never talks to Temporal")

    agency = make_agency()
    configured = Settings(encryption_keys=SecretStr(new_key_spec("ops")), **settings)  # type: ignore[arg-type]
    app = create_app(configured, database, {agency.id: agency}, no_temporal)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_the_codec_server_refuses_plaintext_unless_migrating(database: Database) -> None:
    """A plaintext payload in history was written without the keys: the UI says so."""
    body = json_format.MessageToJson(Payloads(payloads=[PLAIN]))
    async with codec_server(database) as web:
        refused = await web.post("/codec/decode", content=body)
    assert refused.status_code == 422
    assert "not encrypted" in refused.json()["detail"]
    assert "CALLERLOOP_ACCEPT_PLAINTEXT_PAYLOADS=1" in refused.json()["detail"]

    async with codec_server(database, accept_plaintext_payloads=True) as web:
        migrating = await web.post("/codec/decode", content=body)
    assert migrating.status_code == 200
    assert json_format.ParseDict(migrating.json(), Payloads()).payloads == [PLAIN]
