"""Helpers for the browser tests: axe-core's serious findings on a page."""

from __future__ import annotations

from typing import Any

from playwright.async_api import Page

from callerloop.core.settings import PROJECT_ROOT

SCREENSHOTS = PROJECT_ROOT / ".data" / "screenshots"


async def serious_violations(page: Page, axe_script: str) -> list[str]:
    await page.add_script_tag(content=axe_script)
    violations: list[dict[str, Any]] = await page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']]}"
        for v in violations
        if v["impact"] in ("serious", "critical")
    ]
