"""Browser fixtures shared by the page tests: one headless Chromium (Debian's, driven by
Playwright) per session, and axe-core for accessibility scans."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, async_playwright

from tests.requirements import CHROMIUM_ARGS, axe_core_script, chromium_executable


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    executable = chromium_executable()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(executable), args=CHROMIUM_ARGS
        )
        yield launched
        await launched.close()


@pytest.fixture(scope="session")
def axe_script() -> str:
    return axe_core_script()
