"""An operator in the Temporal Web UI, in headless Chromium: the dev server started exactly
as `make run` starts it (its command line, codec endpoint included), a worker, and the web
app's codec server. The operator finds the call by IncidentId and reads its summary, its
current details and its decrypted input. With the UI started without the codec endpoint,
the same page shows encrypted payloads only. Screenshots go to .data/screenshots/."""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from urllib.parse import quote

from playwright.async_api import Browser, Page, async_playwright, expect
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from callerloop.core.codec import codec_from_spec, data_converter
from callerloop.core.db import Database
from callerloop.core.settings import PROJECT_ROOT, Settings
from devtools.devstack import StackPaths, dev_server_command
from tests.conftest import TEST_ENCRYPTION_KEYS, start_harness
from tests.factories import RecordingProvider, eligible_call, make_agency
from tests.requirements import CHROMIUM_ARGS, chromium_executable
from tests.web.serving import free_port, serving
from web.app import create_app
from workflows.call_for_service import workflow_id_for

SCREENSHOTS = PROJECT_ROOT / ".data" / "screenshots"
INCIDENT = "25-UI0001"
UI_TIMEOUT_MS = 30_000


def stack_settings(data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        temporal_port=free_port(),
        temporal_ui_port=free_port(),
        web_port=free_port(),
        encryption_keys=SecretStr(TEST_ENCRYPTION_KEYS),
    )


@contextmanager
def dev_server(settings: Settings, with_codec: bool) -> Iterator[None]:
    """`make run`'s own dev server command; without the codec flag for the second look."""
    command = dev_server_command(settings, StackPaths(settings.data_dir))
    if not with_codec:
        flag = command.index("--ui-codec-endpoint")
        del command[flag : flag + 2]
    log = (settings.data_dir / "temporal.log").open("a")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield
    finally:
        process.terminate()
        process.wait(30)
        log.close()


async def connected(settings: Settings) -> Client:
    for _ in range(150):
        try:
            return await Client.connect(
                f"127.0.0.1:{settings.temporal_port}",
                data_converter=data_converter(codec_from_spec(TEST_ENCRYPTION_KEYS)),
            )
        except RuntimeError:
            await asyncio.sleep(0.2)
    raise AssertionError("the dev server never answered")


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    executable = chromium_executable()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(executable), args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


async def open_call(page: Page, settings: Settings) -> None:
    """Find the call by IncidentId in the workflow list and open it, as an operator would."""
    ui = f"http://localhost:{settings.temporal_ui_port}"
    query = quote(f'IncidentId = "{INCIDENT}"')
    await page.goto(f"{ui}/namespaces/default/workflows?query={query}")
    link = page.locator(f"a[href*='{quote(workflow_id_for('testville', INCIDENT), safe='')}']")
    await expect(link.first).to_be_visible(timeout=UI_TIMEOUT_MS)
    await link.first.click()
    await expect(page.get_by_text("CallForServiceWorkflow").first).to_be_visible(
        timeout=UI_TIMEOUT_MS
    )


async def shown(page: Page, text: str, wait_seconds: float = UI_TIMEOUT_MS / 1000) -> bool:
    """Whether `text` appears on the page or in one of its frames (the UI renders summary
    and details as Markdown in sandboxed iframes), waiting up to `wait_seconds`."""
    deadline = asyncio.get_running_loop().time() + wait_seconds
    while True:
        for frame in page.frames:
            if await frame.get_by_text(text).count():
                return True
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.25)


async def test_an_operator_reads_the_call_decrypted_and_nobody_else_does(
    tmp_path: Path,
) -> None:
    settings = stack_settings(tmp_path)
    database = Database(f"sqlite:///{tmp_path / 'callerloop.db'}")
    database.create_schema()
    agency = make_agency()
    ui_origin = f"http://localhost:{settings.temporal_ui_port}"
    app = create_app(
        settings.model_copy(update={"codec_cors_origins": [ui_origin]}),
        database,
        {agency.id: agency},
        lambda: connected(settings),
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with serving(app, settings.web_port), dev_server(settings, with_codec=True):
        client = await connected(settings)
        environment = WorkflowEnvironment.from_client(client)
        async for harness in start_harness(
            environment, database, {agency.id: agency}, RecordingProvider()
        ):
            await harness.send(eligible_call(INCIDENT, priority=3))
            async with chromium() as browser:
                page = await browser.new_page(viewport={"width": 1400, "height": 1000})
                await open_call(page, settings)
                # Input and Results, decrypted by the codec server.
                await expect(page.get_by_text(f'"incident_id": "{INCIDENT}"')).to_be_visible(
                    timeout=UI_TIMEOUT_MS
                )
                await page.screenshot(path=SCREENSHOTS / "temporal-ui-call.png", full_page=True)
                await page.get_by_text("User Metadata").first.click()
                assert await shown(page, f"testville · incident {INCIDENT} · priority 3")
                assert await shown(page, "texting the caller")
                await page.screenshot(
                    path=SCREENSHOTS / "temporal-ui-call-details.png", full_page=True
                )
            await harness.terminate_running()

    # The same server and history, the UI without the codec endpoint.
    with dev_server(settings, with_codec=False):
        await connected(settings)
        async with chromium() as browser:
            page = await browser.new_page(viewport={"width": 1400, "height": 1000})
            await open_call(page, settings)
            # The input is there, as ciphertext: base64 of the sealed payload, nothing more.
            ciphertext = page.get_by_text(re.compile(r'^"[A-Za-z0-9+/]{64,}={0,2}"$'))
            await expect(ciphertext.first).to_be_visible(timeout=UI_TIMEOUT_MS)
            await page.screenshot(path=SCREENSHOTS / "temporal-ui-encrypted.png", full_page=True)
            text = await page.inner_text("body")
            assert "incident_id" not in text
            await page.get_by_text("User Metadata").first.click()
            assert not await shown(page, f"testville · incident {INCIDENT}", wait_seconds=3)
    database.dispose()
