"""`callerloop calls show/suppress/language` against a real dev server and worker."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator

import pytest
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner, Result

from callerloop.core.codec import codec_from_spec, parse_keys
from callerloop.core.db import Database
from callerloop.core.settings import get_settings
from starter.cli import app
from tests.conftest import TEST_ENCRYPTION_KEYS, start_harness
from tests.factories import (
    RecordingProvider,
    cad_event,
    eligible_call,
    make_agency,
    new_incident_id,
)
from tests.harness import Harness
from workflows.model import CadEventType, TextingState


@pytest.fixture
async def operated(
    dev_server: WorkflowEnvironment, database: Database, provider: RecordingProvider
) -> AsyncIterator[Harness]:
    agency = make_agency()
    async for running in start_harness(dev_server, database, {agency.id: agency}, provider):
        yield running


@pytest.fixture
def cli_env(operated: Harness, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    target = operated.env.client.service_client.config.target_host
    monkeypatch.setenv("CALLERLOOP_TEMPORAL_ADDRESS", target)
    monkeypatch.setenv("CALLERLOOP_ENCRYPTION_KEYS", TEST_ENCRYPTION_KEYS)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


async def run(*args: str) -> Result:
    return await asyncio.to_thread(CliRunner().invoke, app, list(args))


@pytest.mark.usefixtures("cli_env")
async def test_an_operator_shows_and_suppresses_a_call(operated: Harness) -> None:
    incident = new_incident_id()
    await operated.send(eligible_call(incident))

    shown = await run("calls", "show", incident, "--agency", "testville")
    assert shown.exit_code == 0, shown.output
    state = json.loads(shown.output)
    assert state["texting_state"] == "active"
    assert state["caller_phone"] == "+1703…42"  # masked
    assert "7035550142" not in shown.output

    refused = await run(
        "calls", "suppress", incident, "--agency", "testville", "--by", "sgt.lee", "--reason", " "
    )
    assert refused.exit_code == 2 and "refused: say why" in refused.output

    done = await run(
        "calls", "suppress", incident, "--agency", "testville",
        "--by", "sgt.lee", "--reason", "caller asked for no texts by phone",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "no more texts will be sent" in done.output
    state_after = await operated.send(cad_event(incident, CadEventType.ASSIGNED, minutes=4))
    assert state_after.texting_state == TextingState.BLOCKED
    assert operated.kinds(incident) == ["confirmation"]

    missing = await run("calls", "show", "NO-SUCH-CALL", "--agency", "testville")
    assert missing.exit_code == 2 and "no call 'NO-SUCH-CALL'" in missing.output


@pytest.mark.usefixtures("cli_env")
async def test_an_operator_marks_the_callers_language(operated: Harness) -> None:
    incident = new_incident_id()
    await operated.send(eligible_call(incident))
    result = await run(
        "calls", "language", incident, "fr", "--agency", "testville",
        "--by", "dispatcher 7", "--reason", "caller speaks French",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    await operated.send(cad_event(incident, CadEventType.ASSIGNED, minutes=4))
    assert [row.language for row in operated.outbox(incident)] == ["en", "fr"]


def test_a_new_encryption_key_is_ready_for_the_setting() -> None:
    result = CliRunner().invoke(app, ["encryption", "new-key", "2026-11"])
    assert result.exit_code == 0
    keys, primary = parse_keys(result.output.strip())
    assert primary == "2026-11" and len(keys["2026-11"]) == 32
    assert codec_from_spec(result.output.strip()).primary == "2026-11"
