"""Whether a page catalog is complete: every string of the resident pages (templates and
web code) in it, translated, not fuzzy, with the same placeholders, and none the pages no
longer use. `callerloop languages check` and tests/web/test_translations.py ask here; to
fix a catalog, see web/i18n.py."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from web.i18n import LOCALES_DIR, WEB_DIR

METHOD_MAP = [("**.py", "python"), ("templates/**.html", "jinja2")]


@cache
def strings_in_pages(web_dir: Path = WEB_DIR) -> dict[str, tuple[str, ...]]:
    """Every translatable string in web/ (templates and code), with where it is."""
    found: dict[str, list[str]] = {}
    for filename, line, message, _comments, _context in extract_from_dir(
        str(web_dir), METHOD_MAP, {"templates/**.html": {"extensions": "jinja2.ext.i18n"}}
    ):
        if not isinstance(message, str):
            raise ValueError(f"{filename}:{line}: plural forms are not used in the pages")
        found.setdefault(message, []).append(f"{filename}:{line}")
    return {message: tuple(places) for message, places in found.items()}


def catalog_file(language: str, locales_dir: Path = LOCALES_DIR) -> Path:
    return locales_dir / language / "LC_MESSAGES" / "messages.po"


def read_catalog(path: Path, language: str) -> Catalog:
    with path.open("rb") as po:
        return read_po(po, locale=language)


def placeholders(text: str) -> set[str]:
    return set(re.findall(r"%\((\w+)\)s", text))


def catalog_problems(messages: Catalog, strings: dict[str, tuple[str, ...]]) -> list[str]:
    """What the catalog lacks or keeps for nothing, one line each."""
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


def language_catalog_problems(
    language: str, locales_dir: Path = LOCALES_DIR, web_dir: Path = WEB_DIR
) -> list[str]:
    """The language's catalog's problems, or that it has none (or an unreadable one)."""
    path = catalog_file(language, locales_dir)
    if not path.is_file():
        return [f"no page catalog at {path}"]
    try:
        messages = read_catalog(path, language)
    except (OSError, ValueError) as error:
        return [f"{path}: cannot read: {error}"]
    return [
        f"{path}: {problem}" for problem in catalog_problems(messages, strings_in_pages(web_dir))
    ]


def catalog_languages(locales_dir: Path = LOCALES_DIR) -> list[str]:
    """The languages that have a catalog folder."""
    return sorted(p.name for p in locales_dir.iterdir() if (p / "LC_MESSAGES").is_dir())
