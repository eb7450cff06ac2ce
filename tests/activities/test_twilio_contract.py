"""Contract: the requests the `twilio` provider makes are valid for Twilio's own OpenAPI
specs (../shared/reference/twilio-oai), as judged by Stoplight Prism in mock mode: it
answers 401 without basic auth and 422 for a request the spec does not allow.

Prism serves one spec per process and takes a few seconds to start, so both start once per
module, side by side. It cannot return Twilio's error bodies: error paths are tested
against the stand-in (test_twilio_provider.py), whose resources are checked here against
the same specs.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from activities.sms_providers.base import OutgoingText, PermanentProviderError
from activities.sms_providers.twilio import TwilioProvider
from devtools.twilio_standin import TwilioStandIn, lookup_resource
from tests.requirements import prism_cli, twilio_spec
from workflows.model import LineType

API_SPEC, LOOKUPS_SPEC = "twilio_api_v2010.json", "twilio_lookups_v2.json"
ACCOUNT_SID, AUTH_TOKEN = "AC" + "a" * 32, "contract-token"
START_TIMEOUT_SECONDS = 90


@dataclass
class Prism:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, lines: int = 15) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class PrismPair:
    api: Prism
    lookups: Prism

    def provider(self) -> TwilioProvider:
        return TwilioProvider(
            ACCOUNT_SID, AUTH_TOKEN, api_base_url=self.api.url, lookups_base_url=self.lookups.url
        )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def start_prism(binary: Path, spec: Path, log: Path) -> Prism:
    port = free_port()
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(binary), "mock", "-h", "127.0.0.1", "-p", str(port), str(spec)],
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so stop_prism gets all of it
        )
    return Prism(f"http://127.0.0.1:{port}", process, log)


def wait_until_listening(prism: Prism, deadline: float) -> None:
    port = int(prism.url.rsplit(":", 1)[1])
    while time.monotonic() < deadline:
        if prism.process.poll() is not None:
            pytest.fail(f"Prism exited with {prism.process.returncode}:\n{prism.log_tail()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"Prism did not listen within {START_TIMEOUT_SECONDS} s:\n{prism.log_tail()}")


def stop_prism(prism: Prism) -> None:
    if prism.process.poll() is None:
        os.killpg(prism.process.pid, signal.SIGTERM)
        try:
            prism.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(prism.process.pid, signal.SIGKILL)
            prism.process.wait()


@pytest.fixture(scope="module")
def prism(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrismPair]:
    api_spec, lookups_spec = twilio_spec(API_SPEC), twilio_spec(LOOKUPS_SPEC)
    binary = prism_cli()
    logs = tmp_path_factory.mktemp("prism")
    pair = PrismPair(
        api=start_prism(binary, api_spec, logs / "api.log"),
        lookups=start_prism(binary, lookups_spec, logs / "lookups.log"),
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        wait_until_listening(pair.api, deadline)
        wait_until_listening(pair.lookups, deadline)
        yield pair
    finally:
        stop_prism(pair.api)
        stop_prism(pair.lookups)


def text(**overrides: Any) -> OutgoingText:
    fields: dict[str, Any] = {
        "to": "+17035550142",
        "body": "Testville PD: we received your call. Reply STOP to opt out.",
        "sender_number": "+17035550100",
        "messaging_service_sid": None,
        "validity_seconds": 900,
        "reference": "call/testville/T-1/confirmation",
        "status_callback": "https://callerloop.test/twilio/status",
    }
    return OutgoingText(**(fields | overrides))


def send_or_explain(prism: PrismPair, outgoing: OutgoingText) -> str:
    try:
        return prism.provider().send(outgoing).provider_id
    except PermanentProviderError as error:
        pytest.fail(f"Prism refused the send ({error}):\n{prism.api.log_tail()}")


def spec_properties(name: str, schema: str) -> set[str]:
    document = json.loads(twilio_spec(name).read_text())
    return set(document["components"]["schemas"][schema]["properties"])


# Requests callerloop makes


def test_send_from_a_sender_number_is_valid(prism: PrismPair) -> None:
    assert send_or_explain(prism, text()).startswith("SM")


def test_send_through_a_messaging_service_is_valid(prism: PrismPair) -> None:
    outgoing = text(sender_number=None, messaging_service_sid="MG" + "0123456789abcdef" * 2)
    assert send_or_explain(prism, outgoing).startswith("SM")


def test_line_type_lookup_is_valid(prism: PrismPair, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="activities.sms_providers.twilio"):
        line_type = prism.provider().lookup_line_type("+17035550142")

    # A 401 would raise and a 422 would log a warning; Prism's example has no line type.
    assert caplog.records == [], prism.lookups.log_tail()
    assert line_type == LineType.UNKNOWN


def test_message_records_lookup_is_valid(prism: PrismPair) -> None:
    """Reconciling a cut-off send lists Messages by To and From (a 401 or 422 would raise)."""
    since = datetime.now(UTC) - timedelta(minutes=5)
    assert prism.provider().find_sent(text(), since) is None  # Prism's example is older


def test_prism_does_reject_what_the_spec_does_not_allow(prism: PrismPair) -> None:
    """Controls: the checks above would notice a bad request."""
    with pytest.raises(PermanentProviderError) as raised:
        prism.provider().send(text(messaging_service_sid="MG-not-a-sid"))
    assert raised.value.code == "422"

    unauthenticated = requests.post(
        f"{prism.api.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
        data={"To": "+17035550142", "From": "+17035550100", "Body": "hi"},
        timeout=10,
    )
    assert unauthenticated.status_code == 401


# The stand-in's resources, against the same specs


def test_standin_message_resource_has_the_spec_properties() -> None:
    with TwilioStandIn() as standin:
        provider = TwilioProvider(
            standin.account_sid, standin.auth_token, api_base_url=standin.base_url
        )
        provider.send(text())
        resource = standin.message_resource(standin.messages[0])
    assert set(resource) == spec_properties(API_SPEC, "api.v2010.account.message")


def test_standin_message_list_has_the_spec_properties() -> None:
    with TwilioStandIn() as standin:
        TwilioProvider(standin.account_sid, standin.auth_token, api_base_url=standin.base_url).send(
            text()
        )
        response = requests.get(
            f"{standin.base_url}/2010-04-01/Accounts/{standin.account_sid}/Messages.json",
            params={"To": "+17035550142", "PageSize": "20"},
            auth=(standin.account_sid, standin.auth_token),
            timeout=10,
        )
    page = response.json()
    document = json.loads(twilio_spec(API_SPEC).read_text())
    listing = document["paths"]["/2010-04-01/Accounts/{AccountSid}/Messages.json"]["get"]
    schema = listing["responses"]["200"]["content"]["application/json"]["schema"]
    assert set(page) == set(schema["properties"])
    [message] = page["messages"]
    assert set(message) == spec_properties(API_SPEC, "api.v2010.account.message")


def test_standin_lookup_resource_has_the_spec_properties() -> None:
    resource = lookup_resource("+17035550142", True, {})
    assert set(resource) == spec_properties(LOOKUPS_SPEC, "LookupResponse")
    with TwilioStandIn() as standin:
        response = requests.get(
            f"{standin.base_url}/v2/PhoneNumbers/+17035550142",
            params={"Fields": "line_type_intelligence"},
            auth=(standin.account_sid, standin.auth_token),
            timeout=10,
        )
    intelligence = response.json()["line_type_intelligence"]
    assert set(intelligence) == spec_properties(LOOKUPS_SPEC, "LineTypeIntelligenceInfo")
