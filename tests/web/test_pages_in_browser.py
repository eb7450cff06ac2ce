"""The resident pages in a real browser: Debian's Chromium, headless, driven by Playwright,
on a phone-sized viewport (375 x 812), against the real app served by uvicorn, opened from
the links the real workflow texted. Every page is scanned with axe-core in each language
and photographed into .data/screenshots/."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    Page,
    ViewportSize,
    expect,
)
from sqlmodel import select
from temporalio.testing import WorkflowEnvironment

from callerloop.core.agency_config import AgencyConfig
from callerloop.core.db import Database, SurveyComment, SurveyResponse
from callerloop.core.settings import PROJECT_ROOT
from tests.conftest import start_harness
from tests.factories import (
    RecordingProvider,
    cad_event,
    eligible_call,
    make_agency,
    new_incident_id,
)
from tests.harness import Harness, skip_time
from tests.web.browser import SCREENSHOTS, serious_violations
from tests.web.pages import link_in_text, pages_app
from tests.web.serving import free_port, serving
from workflows.model import CadEventType, TextKind

PHONE_VIEWPORT: ViewportSize = {"width": 375, "height": 812}
LANGUAGES = {"en": "English", "es": "Español", "fr": "Français"}
HEADINGS = {
    "status": {
        "en": "Status of your call",
        "es": "Estado de su llamada",
        "fr": "État de votre appel",
    },
    "survey": {
        "en": "How did we do?",
        "es": "Su opinión sobre nuestro servicio",
        "fr": "Votre avis sur notre service",
    },
}


@pytest.fixture
async def site(
    env: WorkflowEnvironment, database: Database, provider: RecordingProvider
) -> AsyncIterator[tuple[Harness, str]]:
    """The web app on a real port and a worker whose texts link to it."""
    agency: AgencyConfig = make_agency()
    port = free_port()
    app = pages_app(database, {agency.id: agency}, f"http://127.0.0.1:{port}")
    with serving(app, port) as url:
        async for harness in start_harness(
            env, database, {agency.id: agency}, provider, public_base_url=url
        ):
            yield harness, url


@pytest.fixture
async def phone(browser: Browser) -> AsyncIterator[BrowserContext]:
    # bypass_csp: the pages forbid scripts; the test injects axe-core all the same.
    context = await browser.new_context(
        viewport=PHONE_VIEWPORT, locale="en-US", bypass_csp=True, device_scale_factor=1
    )
    yield context
    await context.close()


async def check_and_photograph(page: Page, axe_script: str, name: str) -> None:
    language = await page.locator("html").get_attribute("lang")
    assert language is not None
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=SCREENSHOTS / f"{name}-{language}.png", full_page=True)
    problems = await serious_violations(page, axe_script)
    assert not problems, f"axe-core on {name} ({language}):\n" + "\n".join(problems)


async def test_a_resident_follows_the_call_and_answers_the_survey(
    site: tuple[Harness, str], phone: BrowserContext, axe_script: str, database: Database
) -> None:
    harness, url = site
    incident = new_incident_id()
    await harness.send(eligible_call(incident, caller_language="es"))
    status_link = link_in_text(harness, incident, "confirmation")
    assert status_link.startswith(f"{url}/s/")

    # As in `make run`: the phone simulator shows the text; the resident taps its link.
    page = await phone.new_page()
    await page.goto(f"{url}/dev/phone")
    await check_and_photograph(page, axe_script, "phone-simulator")
    await page.get_by_role("link", name=status_link).click()
    await expect(page).to_have_url(status_link)
    # The caller spoke Spanish: the page opens in Spanish, whatever the browser prefers.
    await expect(page.locator("html")).to_have_attribute("lang", "es")
    await expect(page.get_by_role("heading", level=1)).to_have_text(HEADINGS["status"]["es"])
    await expect(page.locator(".case")).to_have_text(f"C{incident}")
    await expect(page.locator(".status")).to_have_text("Recibida")
    for language in ("es", "en", "fr"):
        await page.get_by_role("link", name=LANGUAGES[language]).click()
        await expect(page.locator("html")).to_have_attribute("lang", language)
        await expect(page.get_by_role("heading", level=1)).to_have_text(
            HEADINGS["status"][language]
        )
        await check_and_photograph(page, axe_script, "status")

    await harness.send(cad_event(incident, CadEventType.ASSIGNED, minutes=5))
    await page.goto(f"{status_link}?lang=en")
    await expect(page.locator(".status")).to_have_text("Officer assigned")
    await harness.send(cad_event(incident, CadEventType.CLEARED, minutes=50))
    await skip_time(harness.env, timedelta(hours=25))
    await harness.settle(incident, lambda s: s.sent(TextKind.SURVEY))
    survey_link = link_in_text(harness, incident, "survey")

    await page.goto(survey_link)
    await expect(page.locator("html")).to_have_attribute("lang", "es")
    for language in ("es", "fr", "en"):
        await page.get_by_role("link", name=LANGUAGES[language]).click()
        await expect(page.get_by_role("heading", level=1)).to_have_text(
            HEADINGS["survey"][language]
        )
        await check_and_photograph(page, axe_script, "survey")

    # The same survey open in a second tab, to be sent after the first: rejected.
    second_tab = await phone.new_page()
    await second_tab.goto(f"{survey_link}?lang=en")

    # Sent with one answer missing: the page says what, accessibly, and keeps the rest.
    officer = page.get_by_role("group", name="How satisfied were you with the officer who came?")
    await officer.get_by_label("Satisfied", exact=True).check()
    await page.get_by_role("button", name="Send my answers").click()
    await expect(page.get_by_role("heading", name="Please check your answers")).to_be_visible()
    await check_and_photograph(page, axe_script, "survey-errors")
    await expect(officer.get_by_label("Satisfied", exact=True)).to_be_checked()

    await (
        page.get_by_role(
            "group", name="How satisfied were you with the person who answered your call?"
        )
        .get_by_label("Very satisfied")
        .check()
    )
    await (
        page.get_by_role(
            "group", name="Overall, how satisfied were you with how we handled your call?"
        )
        .get_by_label("Satisfied", exact=True)
        .check()
    )
    await (
        page.get_by_role("group", name="I was treated with respect.")
        .get_by_label("Strongly agree")
        .check()
    )
    await page.get_by_label("Is there anything else you would like to tell us?").fill(
        "The officer explained everything."
    )
    await page.get_by_role("button", name="Send my answers").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Thank you")
    await check_and_photograph(page, axe_script, "survey-thanks")
    for language in ("es", "fr"):
        await page.get_by_role("link", name=LANGUAGES[language]).click()
        await expect(page.locator("html")).to_have_attribute("lang", language)
        await check_and_photograph(page, axe_script, "survey-thanks")

    # The second time: refused, from the other tab and from the link.
    await second_tab.get_by_label("No officer came").check()
    for question in ("call_taker", "overall", "respect"):
        await second_tab.locator(f"input[name=q_{question}][value='1']").check()
    async with second_tab.expect_response(lambda r: r.request.method == "POST") as posted:
        await second_tab.get_by_role("button", name="Send my answers").click()
    rejection = await posted.value
    assert rejection.status == 409
    await expect(second_tab.get_by_role("heading", level=1)).to_have_text("Survey already answered")
    await page.goto(survey_link)
    await expect(page.get_by_role("heading", level=1)).to_have_text("Encuesta ya respondida")
    await expect(page.locator("form")).to_have_count(0)
    for language in ("es", "en", "fr"):
        await page.goto(f"{survey_link}?lang={language}")
        await check_and_photograph(page, axe_script, "survey-answered")

    with database.session() as session:
        [response] = session.exec(select(SurveyResponse)).all()
        [comment] = session.exec(select(SurveyComment)).all()
    assert response.comment is None
    assert comment.comment == "The officer explained everything."
    assert comment.case_number == f"C{incident}"
    assert (response.language, response.page_language) == ("es", "en")


FOCUSED_STYLE = """() => {
    const element = document.activeElement, style = getComputedStyle(element);
    return [element.tagName, style.outlineStyle, style.outlineWidth];
}"""


async def test_pages_fit_a_narrow_screen_with_large_text(
    site: tuple[Harness, str], browser: Browser
) -> None:
    """320 px wide with text at 200 %: nothing scrolls sideways; keyboard focus is visible
    on links and on the survey's radio buttons."""
    harness, _ = site
    incident = new_incident_id()
    await harness.send(eligible_call(incident))
    await harness.send(cad_event(incident, CadEventType.CLEARED, minutes=30))
    await skip_time(harness.env, timedelta(hours=25))
    await harness.settle(incident, lambda s: s.sent(TextKind.SURVEY))
    links = {
        "status": link_in_text(harness, incident, "confirmation"),
        "survey": link_in_text(harness, incident, "survey"),
    }
    context = await browser.new_context(viewport={"width": 320, "height": 640})
    page = await context.new_page()
    try:
        for name, link in links.items():
            for language in ("en", "es", "fr"):
                await page.goto(f"{link}?lang={language}")
                await page.evaluate("document.documentElement.style.fontSize = '200%'")
                overflow = await page.evaluate(
                    "document.documentElement.scrollWidth - document.documentElement.clientWidth"
                )
                assert overflow <= 0, f"{name} page ({language}) scrolls sideways by {overflow} px"
        await page.keyboard.press("Tab")
        tag, outline_style, outline_width = await page.evaluate(FOCUSED_STYLE)
        assert tag == "A" and outline_style != "none" and outline_width != "0px"
        for _ in range(10):  # past the language links, to the first answer
            await page.keyboard.press("Tab")
            tag, outline_style, outline_width = await page.evaluate(FOCUSED_STYLE)
            if tag == "INPUT":
                break
        assert tag == "INPUT" and outline_style != "none" and outline_width != "0px"
    finally:
        await context.close()


async def test_unknown_link_is_a_plain_page(
    site: tuple[Harness, str], phone: BrowserContext, axe_script: str
) -> None:
    _, url = site
    page = await phone.new_page()
    response = await page.goto(f"{url}/s/{'A' * 22}")
    assert response is not None and response.status == 404
    await expect(page.get_by_role("heading", level=1)).to_have_text("Page not found")
    await check_and_photograph(page, axe_script, "not-found")
    for language in ("es", "fr"):
        await page.get_by_role("link", name=LANGUAGES[language]).click()
        await expect(page.locator("html")).to_have_attribute("lang", language)
        await check_and_photograph(page, axe_script, "not-found")


def test_screenshot_folder_is_ignored_by_git() -> None:
    gitignore = (PROJECT_ROOT / ".gitignore").read_text()
    assert re.search(r"^\.data/$", gitignore, re.MULTILINE)
    assert Path(SCREENSHOTS).is_relative_to(PROJECT_ROOT / ".data")
