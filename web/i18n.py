"""The resident pages' languages: gettext catalogs (web/locales/<lang>/LC_MESSAGES/messages.po)
compiled in memory when the app starts, and one Jinja2 environment per language. The
languages are those callerloop ships (callerloop/languages/), named and given their text
direction by Babel; a draft language is shown when asked for (`?lang=`, the call's
language), never picked from a browser's preferences alone.

To update the catalogs after changing a page string (tests/web/test_translations.py fails
until they are complete):

    .venv/bin/pybabel extract -F web/locales/babel.cfg -o web/locales/messages.pot web
    .venv/bin/pybabel update -i web/locales/messages.pot -d web/locales --no-fuzzy-matching
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from babel import negotiate_locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from callerloop.languages import RELEASED_LANGUAGES, shipped_languages

WEB_DIR = Path(__file__).resolve().parent
LOCALES_DIR = WEB_DIR / "locales"
TEMPLATES_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"
# Each language named in itself, as the language switch shows it ("Español", "中文").
LANGUAGE_NAMES = {code: language.name for code, language in shipped_languages().items()}
FALLBACK_LANGUAGE = "en"


class LanguageLink(NamedTuple):
    """A language as the language switch links to it."""

    code: str  # ?lang=
    name: str
    tag: str  # the lang and hreflang attributes (BCP 47: "zh-Hans")


def N_(message: str) -> str:
    """Marks a string for the catalogs; it is translated where it is shown."""
    return message


def catalog_path(language: str) -> Path:
    return LOCALES_DIR / language / "LC_MESSAGES" / "messages.po"


def load_translations(language: str) -> Translations:
    """The language's .po file compiled in memory (no .mo files in the repository)."""
    with catalog_path(language).open("rb") as po:
        catalog = read_po(po, locale=language)
    compiled = io.BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return Translations(compiled)


def parse_accept_language(header: str | None) -> list[str]:
    """Language tags from an Accept-Language header, most preferred first."""
    weighted: list[tuple[float, int, str]] = []
    for position, part in enumerate((header or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                continue
        if tag and tag != "*" and quality > 0:
            weighted.append((-quality, position, tag.strip()))
    return [tag for _, _, tag in sorted(weighted)]


def choose_language(
    requested: str | None, call_language: str | None, accept_language: str | None
) -> str:
    """`?lang=`, then the caller's language, then the browser's; English if none fits."""
    for choice in (requested, call_language):
        if choice in LANGUAGE_NAMES:
            return choice
    preferred = parse_accept_language(accept_language)
    released = list(RELEASED_LANGUAGES)  # not a draft: nobody asked for it
    negotiated = negotiate_locale(preferred, released, sep="-")
    if negotiated not in released:  # Babel may answer in the header's own case
        # "es-MX" has no exact match among the bare languages: compare language parts.
        bases = [tag.split("-")[0].lower() for tag in preferred]
        negotiated = next((b for b in bases if b in released), None)
    return negotiated if negotiated in released else FALLBACK_LANGUAGE


def _direction_attribute(page_language: str) -> Callable[[str], Markup]:
    """` dir="ltr"` for a text in a language written the other way from the page's (an
    English question on an Arabic page), nothing otherwise."""
    page = shipped_languages()[page_language].direction

    def attribute(language: str) -> Markup:
        known = shipped_languages().get(language)
        direction = known.direction if known is not None else "ltr"
        return Markup(f' dir="{direction}"') if direction != page else Markup("")

    return attribute


class PageRenderer:
    """Renders a template in one of the page languages."""

    def __init__(self, languages: Sequence[str] = tuple(LANGUAGE_NAMES)) -> None:
        self._environments: dict[str, Environment] = {}
        self._translations: dict[str, Translations] = {}
        for language in languages:
            environment = Environment(
                loader=FileSystemLoader(TEMPLATES_DIR),
                autoescape=select_autoescape(["html"]),
                extensions=["jinja2.ext.i18n"],
                trim_blocks=True,
                lstrip_blocks=True,
            )
            translations = self._translations[language] = load_translations(language)
            environment.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
            environment.globals["language_names"] = LANGUAGE_NAMES
            environment.globals["other_direction"] = _direction_attribute(language)
            self._environments[language] = environment

    def gettext(self, language: str, message: str) -> str:
        return self._translations[language].gettext(message)

    def render(self, template: str, language: str, **context: Any) -> str:
        environment = self._environments[language]
        shipped = shipped_languages()[language]
        return environment.get_template(template).render(
            lang=language,
            lang_tag=shipped.tag,
            text_direction=shipped.direction,
            switch_languages=self.switch_languages(language, context.get("agency")),
            **context,
        )

    def switch_languages(self, language: str, agency: Any) -> list[LanguageLink]:
        """The languages the switch offers: the agency's (else every released one), and
        the page's own if it is none of those."""
        offered = list(getattr(agency, "languages", None) or RELEASED_LANGUAGES)
        if language not in offered:
            offered.append(language)
        languages = shipped_languages()
        return [
            LanguageLink(code, languages[code].name, languages[code].tag)
            for code in offered
            if code in self._environments
        ]
