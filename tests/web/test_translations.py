"""The resident pages' catalogs are complete: every string in the templates and web code
is in each catalog, translated, not fuzzy, with the same placeholders, and no catalog
keeps strings the pages no longer use. To fix a failure, see web/i18n.py."""

from __future__ import annotations

import io

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

from callerloop.core.agency_config import BUILT_IN_QUESTIONS, SUPPORTED_LANGUAGES
from callerloop.languages import DRAFT_LANGUAGES, shipped_languages
from web.catalogs import catalog_languages, catalog_problems, strings_in_pages
from web.i18n import LANGUAGE_NAMES, PageRenderer, catalog_path, choose_language
from web.survey import QUESTION_TEXTS


def catalog(language: str) -> Catalog:
    with catalog_path(language).open("rb") as po:
        return read_po(po, locale=language)


def test_the_extractor_finds_the_pages_strings() -> None:
    """Guards the tests below against an extraction that silently finds nothing."""
    strings = strings_in_pages()
    assert "Status of your call" in strings  # a template
    assert "Officer assigned" in strings  # code
    assert len(strings) > 40


def test_every_catalog_is_a_shipped_language() -> None:
    assert catalog_languages() == sorted(SUPPORTED_LANGUAGES)


@pytest.mark.parametrize("language", SUPPORTED_LANGUAGES)
def test_catalog_is_complete(language: str) -> None:
    problems = catalog_problems(catalog(language), strings_in_pages())
    assert not problems, f"{catalog_path(language)}:\n" + "\n".join(problems)


def test_incomplete_catalogs_are_caught() -> None:
    """What the completeness test must catch: an empty, a fuzzy, a missing and a stale
    entry, and a translation that lost its placeholder."""
    text = catalog_path("es").read_text(encoding="utf-8")
    for old, new in [
        ('msgstr "Recibida"', 'msgstr ""'),
        ('msgid "Closed"', '#, fuzzy\nmsgid "Closed"'),
        ('msgid "Delayed"\nmsgstr "Demorada"', 'msgid "Gone"\nmsgstr "Ido"'),
        ("%(max)s caracteres como", "mil caracteres como"),
    ]:
        assert old in text
        text = text.replace(old, new)
    broken = read_po(io.BytesIO(text.encode()), locale="es")
    problems = catalog_problems(broken, strings_in_pages())
    assert "untranslated: 'Received'" in problems
    assert "fuzzy: 'Closed'" in problems
    assert any(p.startswith("missing: 'Delayed'") for p in problems)
    assert "no longer used: 'Gone'" in problems
    assert any(p.startswith("placeholders differ: 'Your comment is too long") for p in problems)


def test_every_built_in_question_has_a_text() -> None:
    assert set(QUESTION_TEXTS) == set(BUILT_IN_QUESTIONS)


@pytest.mark.parametrize("language", ["es", "fr", "zh", "ar"])
def test_pages_render_translated(language: str) -> None:
    renderer = PageRenderer()
    english = PageRenderer().render("not_found.html", "en", agency=None)
    html = renderer.render("not_found.html", language, agency=None)
    tag = shipped_languages()[language].tag
    assert f'<html lang="{tag}"' in html
    assert "Page not found" in english and "Page not found" not in html
    assert LANGUAGE_NAMES[language] in html


def test_a_right_to_left_language_sets_the_pages_direction() -> None:
    renderer = PageRenderer()
    assert '<html lang="ar" dir="rtl">' in renderer.render("not_found.html", "ar", agency=None)
    assert '<html lang="zh-Hans">' in renderer.render("not_found.html", "zh", agency=None)
    assert '<html lang="en">' in renderer.render("not_found.html", "en", agency=None)


def test_language_names_and_directions_come_from_babel() -> None:
    assert LANGUAGE_NAMES == {
        "ar": "العربية",
        "en": "English",
        "es": "Español",
        "fr": "Français",
        "zh": "中文",
    }
    directions = {code: language.direction for code, language in shipped_languages().items()}
    assert directions == {"ar": "rtl", "en": "ltr", "es": "ltr", "fr": "ltr", "zh": "ltr"}


def test_a_draft_language_is_never_picked_from_the_browser_alone() -> None:
    assert set(DRAFT_LANGUAGES) == {"zh", "ar"}
    assert choose_language(None, None, "zh-CN, zh;q=0.9") == "en"
    assert choose_language(None, None, "ar, es;q=0.5") == "es"
    assert choose_language("ar", None, "en") == "ar"  # asked for
    assert choose_language(None, "zh", "en") == "zh"  # the call's language


def test_the_switch_offers_the_agencys_languages_and_the_pages_own() -> None:
    class Agency:
        name = "Testville PD"
        non_emergency_phone = "703-555-0100"
        languages = ["en", "ar"]

    renderer = PageRenderer()
    own = renderer.render("not_found.html", "en", agency=Agency())
    assert 'hreflang="ar"' in own and "العربية" in own and 'hreflang="es"' not in own
    released = renderer.render("not_found.html", "zh", agency=None)
    links = [link.code for link in renderer.switch_languages("zh", None)]
    assert links == ["en", "es", "fr", "zh"]  # the released ones, and the page's own
    assert 'hreflang="zh-Hans"' in released
