"""The phone simulator's reply box (`/dev/phone`, as `make run` serves it): a reply goes to
the real inbound webhook, signed as Twilio signs with the auth token, and the thread shows
the resident's text and the agency's answer; what the resident said changes what the call
texts next. The app runs under uvicorn on a real port (the simulator posts to the webhook
over HTTP, as Twilio does) beside a worker on the time-skipping server."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from callerloop.core.agency_config import AgencyConfig
from callerloop.core.db import Database
from callerloop.core.settings import Settings
from callerloop.messaging.messages import MessageContext, render_message
from callerloop.messaging.opt_outs import is_opted_out
from devtools.conversation_log import ConversationLog
from devtools.inbound_texts import InboundTexts
from devtools.phone_simulator import PHONE_PATH, REPLY_PATH, phone_simulator_router
from devtools.twilio_standin import DEFAULT_ACCOUNT_SID
from tests.conftest import TEST_CONVERTER, start_harness
from tests.factories import (
    RecordingProvider,
    cad_event,
    eligible_call,
    new_incident_id,
)
from tests.harness import Harness
from tests.web.serving import free_port, serving
from web.app import create_app
from web.i18n import PageRenderer
from web.page_security import PAGE_HEADERS
from workflows.model import CadEventType, TextingState

CALLER = "+17035550142"  # eligible_call's
AUTH_TOKEN = secrets.token_hex(16)


@dataclass
class Thread:
    """One conversation as the page shows it: each bubble's classes and text, in order."""

    number: str
    bubbles: list[tuple[str, str]] = field(default_factory=list)
    has_reply_box: bool = False

    def texts(self, css_class: str) -> list[str]:
        return [text for classes, text in self.bubbles if css_class in classes.split()]


class _ThreadReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.threads: dict[str, Thread] = {}
        self._current: Thread | None = None
        self._bubble: tuple[str, list[str]] | None = None
        self._in_heading = False
        self._in_meta = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        classes = attributes.get("class") or ""
        if tag == "section" and "conversation" in classes:
            self._current = Thread("")
        elif tag == "h2" and self._current is not None:
            self._in_heading = True
        elif tag == "li" and self._current is not None:
            self._bubble = (classes, [])
        elif tag == "form" and self._current is not None:
            self._current.has_reply_box = attributes.get("action") == REPLY_PATH
        if self._bubble is not None and "meta" in classes.split():
            self._in_meta += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "h2":
            self._in_heading = False
        elif tag == "p" and self._in_meta:
            self._in_meta -= 1
        elif tag == "li" and self._bubble is not None and self._current is not None:
            classes, parts = self._bubble
            self._current.bubbles.append((classes, "".join(parts).strip()))
            self._bubble = None
        elif tag == "section" and self._current is not None:
            self.threads[self._current.number] = self._current
            self._current = None

    def handle_data(self, data: str) -> None:
        if self._in_heading and self._current is not None:
            self._current.number += data.strip()
        elif self._bubble is not None and not self._in_meta:
            self._bubble[1].append(data)


def threads(html: str) -> dict[str, Thread]:
    reader = _ThreadReader()
    reader.feed(html)
    return reader.threads


def simulator(
    agencies: Mapping[str, AgencyConfig], texts: InboundTexts, log: ConversationLog
) -> object:
    """The simulator as `devtools.web_app` mounts it, for agencies not in a folder."""

    def extend(app: FastAPI, settings: Settings, db: Database, renderer: PageRenderer) -> None:
        app.include_router(phone_simulator_router(db, renderer, agencies, texts, log))

    return extend


def simulator_app(
    database: Database,
    agency: AgencyConfig,
    url: str,
    data_dir: Path,
    *,
    webhook_token: str = AUTH_TOKEN,
    signing_token: str = AUTH_TOKEN,
    temporal_target: str | None = None,
) -> FastAPI:
    async def connect() -> Client:
        if temporal_target is None:
            raise AssertionError("this test's replies signal no call")
        return await Client.connect(temporal_target, data_converter=TEST_CONVERTER)

    settings = Settings(
        database_url=database.url,
        public_base_url=url,
        twilio_auth_token=SecretStr(webhook_token),
        data_dir=data_dir,
    )
    texts = InboundTexts(url, DEFAULT_ACCOUNT_SID, signing_token)
    extension = simulator({agency.id: agency}, texts, ConversationLog.in_folder(data_dir))
    return create_app(
        settings,
        database,
        {agency.id: agency},
        connect,
        extensions=(extension,),  # type: ignore[arg-type]
    )


@pytest.fixture
async def site(
    env: WorkflowEnvironment,
    database: Database,
    provider: RecordingProvider,
    agency: AgencyConfig,
    tmp_path: Path,
) -> AsyncIterator[tuple[Harness, str]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    target = env.client.service_client.config.target_host
    app = simulator_app(database, agency, url, tmp_path, temporal_target=target)
    with serving(app, port):
        async for harness in start_harness(
            env, database, {agency.id: agency}, provider, public_base_url=url
        ):
            yield harness, url


async def reply(phone: httpx.AsyncClient, url: str, body: str, *, quick: bool = False) -> Thread:
    """Send `body` from the caller's reply box (as a quick reply, or typed) and read the
    thread the post/redirect/get lands on."""
    form = {"number": CALLER, "agency": "testville", ("quick" if quick else "body"): body}
    posted = await phone.post(REPLY_PATH, data=form, headers={"Origin": url})
    assert posted.status_code == 303, posted.text
    assert posted.headers["location"] == f"{PHONE_PATH}#phone-17035550142"
    page = await phone.get(posted.headers["location"])
    assert page.status_code == 200
    return threads(page.text)[CALLER]


def template(agency: AgencyConfig, kind: str, case_number: str = "") -> str:
    return render_message(agency, kind, "en", MessageContext(case_number=case_number))


async def test_a_reply_goes_through_the_signed_webhook_and_changes_what_the_call_texts(
    site: tuple[Harness, str], agency: AgencyConfig, database: Database
) -> None:
    harness, url = site
    incident = new_incident_id()
    await harness.send(eligible_call(incident))
    async with httpx.AsyncClient(base_url=url) as phone:
        page = await phone.get(PHONE_PATH)
        assert page.status_code == 200
        for header, value in PAGE_HEADERS.items():  # the resident pages' headers: no script
            assert page.headers[header] == value
        [confirmation] = threads(page.text)[CALLER].texts("bubble")
        assert f"case number is C{incident}" in confirmation
        assert threads(page.text)[CALLER].has_reply_box

        thread = await reply(phone, url, "HELP", quick=True)
        assert thread.texts("resident") == ["HELP"]
        assert thread.bubbles[-1] == ("bubble", template(agency, "help", f"C{incident}"))

        thread = await reply(phone, url, "STOP", quick=True)
        assert thread.bubbles[-1] == ("bubble", template(agency, "opt_out"))
        state = await harness.settle(incident, lambda s: s.texting_state == TextingState.OPTED_OUT)
        assert state.texting_state == TextingState.OPTED_OUT
        await harness.send(cad_event(incident, CadEventType.ASSIGNED, minutes=5))
        assert harness.kinds(incident) == ["confirmation"], "nothing after STOP"
        thread = await reply(phone, url, "stop")  # typed, again: the FCC allows one answer
        assert thread.texts("resident")[-1] == "stop"
        assert thread.bubbles[-1][1] == "No answer (the agency stays silent)."

        thread = await reply(phone, url, "START", quick=True)
        assert thread.bubbles[-1] == ("bubble", template(agency, "opt_in"))
        await harness.settle(incident, lambda s: s.texting_state == TextingState.ACTIVE)
        await harness.send(cad_event(incident, CadEventType.CLEARED, minutes=50))
        assert harness.kinds(incident) == ["confirmation", "cleared"], "texts resume"

        thread = await reply(phone, url, "Is anyone coming? Arrêt du bruit?")
        assert thread.bubbles[-1] == ("bubble", template(agency, "not_monitored"))
        # The thread as the resident saw it: texts and replies in the order they came.
        assert thread.texts("resident") == [
            "HELP",
            "STOP",
            "stop",
            "START",
            "Is anyone coming? Arrêt du bruit?",
        ]
        assert "has been closed" in thread.texts("bubble")[-3]


async def test_a_reply_not_signed_with_the_accounts_token_is_refused_and_the_thread_says_so(
    database: Database, agency: AgencyConfig, tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = simulator_app(database, agency, url, tmp_path, signing_token="not-the-token")
    with serving(app, port):
        async with httpx.AsyncClient(base_url=url) as phone:
            thread = await reply(phone, url, "STOP", quick=True)
    assert thread.texts("resident") == ["STOP"]
    assert thread.bubbles[-1][1].startswith("Not delivered:")
    assert "HTTP 403" in thread.bubbles[-1][1]
    assert not is_opted_out(database, agency.id, CALLER), "a forged STOP changes nothing"


async def test_the_simulator_answers_only_this_machine_and_takes_replies_only_from_its_page(
    database: Database, agency: AgencyConfig, tmp_path: Path
) -> None:
    app = simulator_app(database, agency, "http://localhost:8000", tmp_path)
    form = {"number": CALLER, "agency": agency.id, "quick": "STOP"}
    remote = httpx.ASGITransport(app=app, client=("203.0.113.9", 50000))
    async with httpx.AsyncClient(transport=remote, base_url="http://localhost:8000") as other:
        assert (await other.get(PHONE_PATH)).status_code == 404
        assert (await other.post(REPLY_PATH, data=form)).status_code == 404
    local = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=local, base_url="http://localhost:8000") as here:
        cross_site = {"Origin": "https://elsewhere.example"}
        refused = await here.post(REPLY_PATH, data=form, headers=cross_site)
        assert refused.status_code == 403
        fetched = {"Sec-Fetch-Site": "cross-site"}
        assert (await here.post(REPLY_PATH, data=form, headers=fetched)).status_code == 403
        bad_number = {**form, "number": "0142"}
        answer = await here.post(
            REPLY_PATH, data=bad_number, headers={"Origin": "http://localhost:8000"}
        )
        assert answer.status_code == 400
        assert "E.164" in answer.text
        unknown = {**form, "agency": "nowhere"}
        answer = await here.post(
            REPLY_PATH, data=unknown, headers={"Origin": "http://localhost:8000"}
        )
        assert answer.status_code == 400
        assert "testville" in answer.text
    assert ConversationLog.in_folder(tmp_path).entries() == [], "nothing was sent"
