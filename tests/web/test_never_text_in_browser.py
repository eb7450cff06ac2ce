"""The "never text me" page in a real browser (Debian's Chromium via Playwright, on a
phone-sized viewport), in Arabic: right to left, and axe-core finds nothing serious on
the form, on its error and on its confirmation; the number is registered."""

from __future__ import annotations

from playwright.async_api import Browser, Page, expect

from callerloop.core.db import Database
from callerloop.messaging.opt_outs import is_opted_out
from tests.factories import make_agency
from tests.web.browser import SCREENSHOTS, serious_violations
from tests.web.pages import pages_app
from tests.web.serving import free_port, serving


async def check_and_photograph(page: Page, axe_script: str, name: str) -> None:
    await expect(page.locator("html")).to_have_attribute("dir", "rtl")
    assert await page.evaluate("getComputedStyle(document.body).direction") == "rtl"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=SCREENSHOTS / f"{name}-ar.png", full_page=True)
    problems = await serious_violations(page, axe_script)
    assert not problems, f"axe-core on {name} (ar):\n" + "\n".join(problems)


async def test_a_resident_registers_a_number_in_arabic(
    database: Database, browser: Browser, axe_script: str
) -> None:
    agency = make_agency(agency={"languages": ["en", "ar"]})
    port = free_port()
    with serving(pages_app(database, {agency.id: agency}, f"http://127.0.0.1:{port}"), port) as url:
        # bypass_csp: the pages forbid scripts; the test injects axe-core all the same.
        context = await browser.new_context(
            viewport={"width": 375, "height": 812}, locale="en-US", bypass_csp=True
        )
        page = await context.new_page()
        await page.goto(f"{url}/never-text/testville?lang=ar")
        await expect(page.get_by_role("heading", level=1)).to_have_text("لا ترسلوا لي رسائل أبدًا")
        await check_and_photograph(page, axe_script, "never-text")

        number = page.get_by_label("رقم الهاتف", exact=True)
        await number.fill("555")
        await page.get_by_role("button", name="لا ترسلوا رسائل إلى هذا الرقم أبدًا").click()
        await expect(page.get_by_role("alert")).to_contain_text("هذا ليس رقم هاتف صالحًا.")
        await expect(number).to_have_attribute("aria-invalid", "true")
        await check_and_photograph(page, axe_script, "never-text-error")

        await number.fill("(703) 555-0142")
        await page.get_by_role("button", name="لا ترسلوا رسائل إلى هذا الرقم أبدًا").click()
        await expect(page).to_have_url(f"{url}/never-text/testville/done?lang=ar")
        await expect(page.get_by_role("heading", level=1)).to_have_text(
            "لن تُرسل رسائل إلى هذا الرقم"
        )
        await check_and_photograph(page, axe_script, "never-text-done")
        await context.close()
    assert is_opted_out(database, agency.id, "+17035550142")
