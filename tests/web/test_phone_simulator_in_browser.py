"""A person replies as a resident in `make run`'s phone simulator, in a real browser
(Debian's Chromium, headless, driven by Playwright), against the stack `make run` starts
(`python -m devtools`: the Temporal dev server, the worker, the web app, the Twilio
stand-in, at the default 720x). The test's own call comes in through the CAD ingest API
as a CAD would send it; the resident answers HELP, STOP, START and (once the keyword is
there) ESPAÑOL in the simulator, sees each answer in the thread, and sees what it changed:
nothing is texted after STOP, texts resume after START, and after ESPAÑOL they are in
Spanish. The staff pages of the stack say its residents are simulated.

Time is the stack's: the call's events are sent when the test needs them, and each wait
polls the workflow (its `state` query) or the page until a deadline.

SLOW: about a minute (the stack's start and stop, and the call's steps).
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from playwright.async_api import Browser, Locator, Page, expect
from sqlmodel import col, select
from temporalio.client import Client, WorkflowHandle

from callerloop.cad.replay import column_names
from callerloop.cad.synthetic_day import synthetic_day, write_csv
from callerloop.core.agency_config import AgencyConfig, load_agencies
from callerloop.core.db import Database, OutboxMessage, utcnow
from callerloop.core.settings import PROJECT_ROOT, Settings
from callerloop.core.temporal import connect, with_local_stack_keys
from callerloop.messaging.messages import MessageContext, render_message
from callerloop.messaging.sms_keywords import InboundIntent, classify_inbound
from callerloop.staff.api_keys import create_key
from callerloop.staff.users import add_user
from tests.devstack_process import running_devstack
from tests.starter.test_devstack import free_port
from tests.web.browser import SCREENSHOTS
from workflows.call_for_service import CallForServiceWorkflow, workflow_id_for
from workflows.model import CallOutcome, CallState, TextingState

pytestmark = pytest.mark.slow

STACK_START_SECONDS = 120
STEP_SECONDS = 30.0  # how long one step may take: a text sent, an event applied
RESIDENT = "+17035550177"
INCIDENT = "26-BROWSER-1"
USER, PASSWORD = "sgt.lee", "correct horse battery staple"
LANGUAGE_KEYWORD = "ESPAÑOL"
T = TypeVar("T")


@dataclass
class Stack:
    web_url: str
    temporal_address: str
    data_dir: Path
    database_url: str
    agency: AgencyConfig
    log: Path


def write_one_call_day(path: Path) -> None:
    """A CAD export of one noise complaint, closed within minutes of CAD time (a synthetic
    row in the example agency's columns, its times and type set): replayed in a second."""
    agency = load_agencies(PROJECT_ROOT / "agencies")["example"]
    names = column_names(agency)
    [row] = synthetic_day(agency, date(2025, 9, 12), calls=1)
    times = {"created": "10:00:00", "dispatched": "10:00:10", "first_closed": "10:01:00"}
    times["final_closed"] = times["first_closed"]
    row |= {names[key]: f"2025-09-12 {at}.000" for key, at in times.items()}
    row |= {names["enroute"]: "NULL", names["on_scene"]: "NULL", names["reopened"]: "0"}
    row |= {names["call_type"]: "NOISE COMPLAINT DELAY", names["priority"]: "4"}
    row |= {names["source"]: "Phone", names["disposition"]: "GOA-Gone on Arrival"}
    write_csv([row], path)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """`python -m devtools` as `make run` runs it (default provider and speed), replaying
    a one-call day, then following; its ports and folder are the test's."""
    tmp = tmp_path_factory.mktemp("phone")
    ports = {name: free_port() for name in ("temporal", "ui", "web")}
    data = tmp / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CALLERLOOP_", "TEMPORAL_"))}
    env |= {
        "CALLERLOOP_DATA_DIR": str(data),
        "CALLERLOOP_DATABASE_URL": f"sqlite:///{data / 'callerloop.db'}",
        "CALLERLOOP_DEMO_CSV": str(tmp / "demo.csv"),
        "CALLERLOOP_TEMPORAL_PORT": str(ports["temporal"]),
        "CALLERLOOP_TEMPORAL_UI_PORT": str(ports["ui"]),
        "CALLERLOOP_WEB_PORT": str(ports["web"]),
    }
    write_one_call_day(tmp / "demo.csv")
    output = tmp / "dev.out"
    with running_devstack(env, output, ports["web"], STACK_START_SECONDS):
        yield Stack(
            f"http://localhost:{ports['web']}",
            f"127.0.0.1:{ports['temporal']}",
            data,
            env["CALLERLOOP_DATABASE_URL"],
            load_agencies(PROJECT_ROOT / "agencies")["example"],
            output,
        )


@pytest.fixture
async def temporal(stack: Stack) -> Client:
    """A client beside the stack, as `callerloop calls show` is: the stack's keys."""
    settings = with_local_stack_keys(
        Settings(temporal_address=stack.temporal_address, data_dir=stack.data_dir)
    )
    return await connect(settings)


async def until(what: str, check: Callable[[], Awaitable[T | None]]) -> T:
    deadline = time.monotonic() + STEP_SECONDS
    while True:
        found = await check()
        if found is not None and found is not False:
            return found
        assert time.monotonic() < deadline, f"not within {STEP_SECONDS:.0f} s: {what}"
        await asyncio.sleep(0.3)


class Call:
    """The test's call: its events through the ingest API, its state and texts."""

    def __init__(self, stack: Stack, temporal: Client, key: str) -> None:
        self.stack = stack
        self.workflow_id = workflow_id_for("example", INCIDENT)
        self.handle: WorkflowHandle[CallForServiceWorkflow, CallOutcome] = (
            temporal.get_workflow_handle_for(CallForServiceWorkflow.run, self.workflow_id)
        )
        self.headers = {"Authorization": f"Bearer {key}"}
        self.sent = 0

    async def event(self, event_type: str, **fields: object) -> None:
        event = {
            "agency": "example",
            "incident_id": INCIDENT,
            "event_type": event_type,
            "occurred_at": datetime.now(UTC).isoformat(),
            "event_id": f"{INCIDENT}-{self.sent}",
            **fields,
        }
        async with httpx.AsyncClient(base_url=self.stack.web_url) as cad:
            answer = await cad.post("/v1/cad/events", json=event, headers=self.headers)
        assert answer.status_code < 300, answer.text
        self.sent += 1
        await self.applied()

    async def state(self) -> CallState:
        state: CallState = await self.handle.query(CallForServiceWorkflow.state)
        return state

    async def applied(self) -> CallState:
        """Once every event sent is applied and the call has nothing in flight."""

        async def settled() -> CallState | None:
            state = await self.state()
            done = state.events_applied + state.events_ignored >= self.sent and state.idle
            return state if done else None

        return await until(f"{self.sent} events applied", settled)

    async def texting(self, wanted: TextingState) -> None:
        async def reached() -> bool:
            return (await self.state()).texting_state == wanted

        await until(f"texting state {wanted}", reached)

    def texts(self) -> list[OutboxMessage]:
        db = Database(self.stack.database_url)
        try:
            with db.session() as session:
                return list(
                    session.exec(
                        select(OutboxMessage)
                        .where(col(OutboxMessage.workflow_id) == self.workflow_id)
                        .order_by(col(OutboxMessage.id))
                    )
                )
        finally:
            db.dispose()


def conversation(page: Page) -> Locator:
    return page.locator(f"#phone-{RESIDENT.removeprefix('+')}")


async def thread_shows(page: Page, text: str) -> Locator:
    """The simulator, reloaded until the resident's conversation shows `text` (a text that
    arrives later than the page was drawn)."""

    async def shown() -> Locator | None:
        await page.reload()
        found = conversation(page).locator(".bubble", has_text=text)
        return found if await found.count() else None

    return await until(f"the thread shows {text!r}", shown)


async def reply(page: Page, body: str, *, quick: bool) -> Locator:
    """Send `body` from the resident's conversation; the bubble after the resident's: the
    agency's answer, or a note on what became of the text."""
    thread = conversation(page)
    before = await thread.locator(".bubble").count()
    if quick:
        await thread.get_by_role("button", name=body, exact=True).click()
    else:
        await thread.get_by_label(f"Reply as {RESIDENT}").fill(body)
        await thread.get_by_role("button", name="Send").click()
    await expect(page).to_have_url(re.compile(f"/dev/phone#phone-{RESIDENT.removeprefix('+')}$"))
    bubbles = conversation(page).locator(".bubble")
    await expect(bubbles.nth(before)).to_have_class(re.compile(r"\bresident\b"))
    await expect(bubbles.nth(before).locator("p").first).to_have_text(body)
    return bubbles.nth(before + 1)


def said(bubble: Locator) -> Locator:
    return bubble.locator("p").first


def template(agency: AgencyConfig, kind: str, language: str = "en", case: str = "") -> str:
    return render_message(agency, kind, language, MessageContext(case_number=case))


async def test_a_person_replies_as_the_resident_and_sees_each_answer_and_its_effect(
    stack: Stack, temporal: Client, browser: Browser
) -> None:
    db = Database(stack.database_url)
    try:
        key = create_key(db, "example", "phone simulator test")[1]
        add_user(db, USER, PASSWORD)
    finally:
        db.dispose()
    call = Call(stack, temporal, key)
    agency = stack.agency
    context = await browser.new_context(viewport={"width": 420, "height": 900})
    page = await context.new_page()
    await page.goto(f"{stack.web_url}/dev/phone")

    await call.event(
        "created",
        priority=4,
        call_type="NOISE COMPLAINT DELAY",
        source="phone",
        caller_phone=RESIDENT,
        caller_line_type="mobile",
        caller_language="en",
        case_number=INCIDENT,
    )
    await thread_shows(page, "we received your call")

    answer = await reply(page, "HELP", quick=True)
    await expect(said(answer)).to_have_text(template(agency, "help", case=INCIDENT))

    answer = await reply(page, "STOP", quick=True)
    await expect(said(answer)).to_have_text(template(agency, "opt_out"))
    stopped_at = utcnow()
    await call.texting(TextingState.OPTED_OUT)
    await call.event("assigned")
    late = [t.kind for t in call.texts() if t.created_at > stopped_at]
    assert late == [], f"texted after STOP: {late}"
    assert "assigned" not in [t.kind for t in call.texts()]

    answer = await reply(page, "START", quick=False)  # typed, this time
    await expect(said(answer)).to_have_text(template(agency, "opt_in"))
    await call.texting(TextingState.ACTIVE)

    language = "en"
    if classify_inbound(LANGUAGE_KEYWORD).intent == getattr(InboundIntent, "LANGUAGE", None):
        answer = await reply(page, LANGUAGE_KEYWORD, quick=False)
        await expect(answer).not_to_have_class(re.compile(r"\bnote\b"))  # answered
        language = "es"
    await call.event("cleared", disposition="GOA-Gone on Arrival")
    closing = template(agency, "cleared", language, INCIDENT)
    await thread_shows(page, closing)
    [cleared] = [t for t in call.texts() if t.kind == "cleared"]
    assert cleared.language == language

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=SCREENSHOTS / "phone-simulator-replies.png", full_page=True)

    # The staff see that this stack's residents are simulated.
    await page.goto(f"{stack.web_url}/dashboard")
    await page.get_by_label("Username").fill(USER)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    banner = page.get_by_role("note").filter(has_text="simulates its residents")
    await expect(banner).to_be_visible()
    await context.close()
