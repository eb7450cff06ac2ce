"""The staff dashboard in a real browser (Debian's Chromium, headless, driven by
Playwright) against the real app under uvicorn: anonymous visitors and wrong passwords
are turned away, a supervisor signs in and reads every chart, a data table and the
comments inbox on a laptop and on a phone; every page is scanned with axe-core and
photographed into .data/screenshots/ (the docs' picture is one of them)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from datetime import date
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, ViewportSize, expect

from callerloop.cad.synthetic_day import synthetic_day, to_csv_lines
from callerloop.core.db import Database
from callerloop.staff.users import add_user
from tests.factories import make_agency, program_history
from tests.web.browser import SCREENSHOTS, serious_violations
from tests.web.pages import pages_app
from tests.web.serving import free_port, serving

USER, PASSWORD = "sgt.lee", "correct horse battery staple"
LAPTOP: ViewportSize = {"width": 1280, "height": 900}
PHONE: ViewportSize = {"width": 375, "height": 812}
CHARTS = 16
CHART_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One app and four weeks of history for both tests (both only read)."""
    database = Database(f"sqlite:///{tmp_path_factory.mktemp('dashboard') / 'callerloop.db'}")
    database.create_schema()
    agency = make_agency(
        survey={
            "call_type_groups": {
                "disorder": [r"\bNOISE"],
                "property": ["LARCENY"],
                "traffic": [r"^MVC\b"],
            }
        }
    )
    add_user(database, USER, PASSWORD)
    program_history(database, days=28)
    port = free_port()
    with serving(pages_app(database, {agency.id: agency}, f"http://127.0.0.1:{port}"), port) as url:
        yield url
    database.dispose()


async def new_context(browser: Browser, viewport: ViewportSize) -> BrowserContext:
    # bypass_csp: the pages forbid scripts; the test injects axe-core all the same.
    return await browser.new_context(viewport=viewport, bypass_csp=True, device_scale_factor=1)


@pytest.fixture
async def laptop(browser: Browser) -> AsyncIterator[BrowserContext]:
    context = await new_context(browser, LAPTOP)
    yield context
    await context.close()


@pytest.fixture
async def phone(browser: Browser) -> AsyncIterator[BrowserContext]:
    context = await new_context(browser, PHONE)
    yield context
    await context.close()


async def check_and_photograph(page: Page, axe_script: str, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)
    problems = await serious_violations(page, axe_script)
    assert not problems, f"axe-core on {name}:\n" + "\n".join(problems)


async def sign_in(page: Page, password: str = PASSWORD) -> int:
    await page.get_by_label("Username").fill(USER)
    await page.get_by_label("Password").fill(password)
    async with page.expect_response(lambda r: r.request.method == "POST") as posted:
        await page.get_by_role("button", name="Sign in").click()
    return (await posted.value).status


async def all_charts_drawn(page: Page) -> None:
    images = page.locator(".chart img")
    await expect(images).to_have_count(CHARTS)
    for index in range(CHARTS):
        image = images.nth(index)
        await image.scroll_into_view_if_needed()
        # Generous: the charts are drawn one after another on a busy two-core machine.
        await expect(image).to_have_js_property("complete", True, timeout=CHART_TIMEOUT_MS)
        assert await image.evaluate("i => i.naturalWidth") > 0, await image.get_attribute("src")


async def overflow(page: Page) -> int:
    width: int = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    return width


async def test_the_dashboard_refuses_strangers_and_shows_a_supervisor_everything(
    site: str, laptop: BrowserContext, axe_script: str
) -> None:
    page = await laptop.new_page()
    await page.goto(f"{site}/dashboard?agency=testville")
    await expect(page).to_have_url(re.compile(r"/dashboard/login\?next=%2Fdashboard"))
    await expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    await check_and_photograph(page, axe_script, "staff-sign-in")
    chart = await laptop.request.get(f"{site}/dashboard/charts/texts.svg")
    assert chart.status == 401

    assert await sign_in(page, "not the password, sorry") == 401
    await expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")
    await check_and_photograph(page, axe_script, "staff-sign-in-refused")
    await page.goto(f"{site}/dashboard")
    await expect(page).to_have_url(re.compile(r"/dashboard/login"))

    assert await sign_in(page) == 303
    await expect(page).to_have_url(f"{site}/dashboard")
    await expect(page.get_by_role("heading", level=1)).to_have_text("How the program is doing")
    await all_charts_drawn(page)
    await check_and_photograph(page, axe_script, "dashboard-laptop")

    await page.get_by_label("Agency", exact=True).select_option("testville")
    await page.get_by_label("From", exact=True).fill("2025-08-25")
    await page.get_by_label("To", exact=True).fill("2025-09-21")
    await page.get_by_role("button", name="Apply").click()
    await expect(page).to_have_url(re.compile(r"agency=testville&from=2025-08-25&to=2025-09-21"))
    filtered = page.locator(".chart img").first
    await expect(filtered).to_have_attribute("src", re.compile(r"agency=testville&from=2025-08-25"))
    await expect(filtered).to_have_js_property("complete", True, timeout=CHART_TIMEOUT_MS)
    assert await filtered.evaluate("i => i.naturalWidth") > 0

    await page.get_by_role("link", name=re.compile("^Data table.*Calls not texted")).click()
    await expect(page.get_by_role("table", name="Calls not texted, and why")).to_be_visible()
    await expect(page.get_by_role("rowheader", name="call type excluded")).to_be_visible()
    await check_and_photograph(page, axe_script, "dashboard-table")

    await page.get_by_role("link", name="Comments").click()
    await page.get_by_label(re.compile("Low scores only")).check()
    await page.get_by_role("button", name="Apply").click()
    comments = page.locator(".comment")
    assert await comments.count() > 0
    for index in range(await comments.count()):
        score = await comments.nth(index).locator("dd").nth(1).inner_text()
        assert float(score.split(" / ")[0]) <= 2
    await expect(comments.first.locator(".case")).to_have_text(re.compile(r"^CH-\d{5}$"))
    await check_and_photograph(page, axe_script, "dashboard-comments")

    await page.get_by_role("button", name=f"Sign out {USER}").click()
    await expect(page).to_have_url(re.compile(r"/dashboard/login"))
    await page.goto(f"{site}/dashboard")
    await expect(page).to_have_url(re.compile(r"/dashboard/login"))


async def test_the_dashboard_reads_on_a_phone(
    site: str, phone: BrowserContext, axe_script: str
) -> None:
    page = await phone.new_page()
    await page.goto(f"{site}/dashboard")
    assert await sign_in(page) == 303
    await all_charts_drawn(page)
    assert await overflow(page) <= 0, "the dashboard scrolls sideways on a phone"
    # Each chart fills the width of the screen, less the margins.
    width = await page.locator(".chart img").first.evaluate("i => i.clientWidth")
    assert width >= 300
    await check_and_photograph(page, axe_script, "dashboard-phone")
    await page.goto(f"{site}/dashboard/comments")
    assert await overflow(page) <= 0
    await check_and_photograph(page, axe_script, "dashboard-comments-phone")


async def test_a_supervisor_uploads_an_export_and_reads_the_dry_run(
    site: str, laptop: BrowserContext, axe_script: str, tmp_path: Path
) -> None:
    export = tmp_path / "cad-export.csv"
    export.write_text("".join(to_csv_lines(synthetic_day(make_agency(), date(2025, 9, 3)))))
    page = await laptop.new_page()
    await page.goto(f"{site}/dashboard/dryrun")
    assert await sign_in(page) == 303
    await expect(page).to_have_url(f"{site}/dashboard/dryrun")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Go-live dry run")
    await page.get_by_label("Agency").select_option("testville")
    await page.get_by_label("CAD export (CSV)").set_input_files(export)
    await page.get_by_label("Price per SMS segment").fill("0.01")
    await page.get_by_role("button", name="Run").click()

    await expect(page.get_by_role("heading", level=1)).to_have_text("Go-live dry run: Testville PD")
    headline = page.locator("table.headline")
    await expect(headline.get_by_role("row", name=re.compile(r"^calls 149$"))).to_be_visible()
    texted = await headline.get_by_role("row", name=re.compile("^texted calls")).inner_text()
    assert 0 < int(texted.split()[-1]) < 149
    await expect(page.get_by_role("heading", name="Why calls would not be texted")).to_be_visible()
    await expect(page.get_by_role("cell", name="officer_initiated").first).to_be_visible()
    await check_and_photograph(page, axe_script, "dashboard-dry-run")

    await page.get_by_label("CAD export (CSV)").set_input_files(
        {"name": "wrong.csv", "mimeType": "text/csv", "buffer": b"Incident,Type\n1,NOISE\n"}
    )
    await page.get_by_role("button", name="Run").click()
    await expect(page.get_by_role("alert")).to_contain_text("lacks required column(s)")
