"""Answering a survey page as a resident's browser does: open the link from the text, read
the form the page serves (its hidden anti-forgery fields, its questions and their
choices), fill it in and post it back with the page's cookie and the browser's Origin, then
follow the redirect to the thank-you page. Nothing is assumed that the page does not say.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import httpx

TIMEOUT_SECONDS = 15.0


class SurveyPageError(Exception):
    """The survey page could not be answered; the message says what the page did."""


@dataclass
class SurveyForm:
    """The first form of a page, as a browser would submit it."""

    action: str = ""
    hidden: dict[str, str] = field(default_factory=dict)
    choices: dict[str, list[str]] = field(default_factory=dict)  # radio name -> values
    text_fields: list[str] = field(default_factory=list)  # textarea names


class _FormReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.form: SurveyForm | None = None
        self._done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._done:
            return
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form" and self.form is None:
            self.form = SurveyForm(action=attributes.get("action", ""))
            return
        if self.form is None:
            return
        name = attributes.get("name")
        if not name:
            return
        if tag == "textarea":
            self.form.text_fields.append(name)
        elif tag == "input" and attributes.get("type") == "hidden":
            self.form.hidden[name] = attributes.get("value", "")
        elif tag == "input" and attributes.get("type") == "radio":
            self.form.choices.setdefault(name, []).append(attributes.get("value", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self.form is not None:
            self._done = True


def read_form(html: str) -> SurveyForm:
    reader = _FormReader()
    reader.feed(html)
    if reader.form is None:
        raise SurveyPageError("the page has no form")
    return reader.form


# Picks the answer to one question: (field name, the values the page offers) -> value,
# "" to leave it unanswered.
ChooseAnswer = Callable[[str, list[str]], str]


@dataclass(frozen=True)
class PageAnswer:
    thanks_url: str  # where the post led (the thank-you page)
    answered: Mapping[str, str]  # field -> value sent, hidden fields left out


async def answer_survey_page(
    client: httpx.AsyncClient,
    link: str,
    choose: ChooseAnswer,
    comment: Callable[[str], str],
) -> PageAnswer:
    """Open `link`, answer each choice with `choose` and each text field with `comment`
    (field name -> text, "" for none), post it, and return where it led."""
    page = await client.get(link, timeout=TIMEOUT_SECONDS)
    if page.status_code != 200:
        raise SurveyPageError(f"GET {link} answered HTTP {page.status_code}")
    form = read_form(page.text)
    answers = {name: choose(name, values) for name, values in form.choices.items()}
    answers |= {name: comment(name) for name in form.text_fields}
    answered = {name: value for name, value in answers.items() if value}
    target = urljoin(str(page.url), form.action)  # action="" posts back to the page
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(str(page.url)))
    posted = await client.post(
        target,
        data={**form.hidden, **answered},
        headers={"Origin": origin, "Referer": str(page.url)},
        follow_redirects=True,
        timeout=TIMEOUT_SECONDS,
    )
    if posted.status_code != 200 or not posted.history:
        detail = posted.text[:200]
        raise SurveyPageError(f"POST {target} answered HTTP {posted.status_code}: {detail!r}")
    return PageAnswer(str(posted.url), answered)
