"""The resident pages' catalogs are complete: every string in the templates and web code
is in each catalog, translated, not fuzzy, with the same placeholders, and no catalog
keeps strings the pages no longer use. To fix a failure, see web/i18n.py."""

from __future__ import annotations

import io
import re
from functools import cache

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from callerloop.core.agency_config import BUILT_IN_QUESTIONS, SUPPORTED_LANGUAGES
from web.i18n import LANGUAGE_NAMES, WEB_DIR, PageRenderer, catalog_path
from web.survey import QUESTION_TEXTS

METHOD_MAP = [("**.py", "python"), ("templates/**.html", "jinja2")]


@cache
def strings_in_pages() -> dict[str, list[str]]:
    """Every translatable string in web/ (templates and code), with where it is."""
    found: dict[str, list[str]] = {}
    for filename, line, message, _comments, _context in extract_from_dir(
        str(WEB_DIR), METHOD_MAP, {"templates/**.html": {"extensions": "jinja2.ext.i18n"}}
    ):
        assert isinstance(message, str), f"{filename}:{line}: plural forms are not used here"
        found.setdefault(message, []).append(f"{filename}:{line}")
    return found


def catalog(language: str) -> Catalog:
    with catalog_path(language).open("rb") as po:
        return read_po(po, locale=language)


def test_the_extractor_finds_the_pages_strings() -> None:
    """Guards the tests below against an extraction that silently finds nothing."""
    strings = strings_in_pages()
    assert "Status of your call" in strings  # a template
    assert "Officer assigned" in strings  # code
    assert len(strings) > 40


def placeholders(text: str) -> set[str]:
    return set(re.findall(r"%\((\w+)\)s", text))


def catalog_problems(messages: Catalog, strings: dict[str, list[str]]) -> list[str]:
    problems: list[str] = []
    if messages.fuzzy:
        problems.append("the catalog header is marked fuzzy")
    for message_id, places in strings.items():
        message = messages.get(message_id)
        if message is None:
            problems.append(f"missing: {message_id!r} ({', '.join(places)})")
        elif message.fuzzy:
            problems.append(f"fuzzy: {message_id!r}")
        elif not message.string:
            problems.append(f"untranslated: {message_id!r}")
        elif placeholders(message_id) != placeholders(str(message.string)):
            problems.append(f"placeholders differ: {message_id!r} -> {message.string!r}")
    for message, errors in messages.check():
        problems.extend(f"{message.id!r}: {error}" for error in errors)  # placeholders
    stale = [m.id for m in messages if m.id and m.id not in strings]
    problems.extend(f"no longer used: {message_id!r}" for message_id in stale)
    return problems


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


@pytest.mark.parametrize("language", ["es", "fr"])
def test_pages_render_translated(language: str) -> None:
    renderer = PageRenderer()
    english = PageRenderer().render("not_found.html", "en", agency=None)
    html = renderer.render("not_found.html", language, agency=None)
    assert f'<html lang="{language}">' in html
    assert "Page not found" in english and "Page not found" not in html
    assert LANGUAGE_NAMES[language] in html
