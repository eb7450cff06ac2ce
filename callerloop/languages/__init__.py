"""The languages callerloop speaks: one `<code>.toml` file here per language.

A language is supported when it has a file here; it also needs its texts (a `[<code>]`
section of callerloop/core/default_templates.toml) and its page catalog
(web/locales/<code>/LC_MESSAGES/messages.po): `callerloop languages check` says what is
missing. Its name and text direction come from Babel (CLDR), not from these files.

A language marked `draft = true` works like the others but awaits a native speaker's
review at the agency: `languages check` lists it, loading an agency that offers it warns,
and the resident pages never pick it from a browser's preferences alone.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Annotated, Literal

from babel import Locale, UnknownLocaleError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

LANGUAGES_DIR = Path(__file__).resolve().parent
CODE_PATTERN = r"^[a-z]{2,3}$"  # ISO 639-1 (or -2/3 where there is no two-letter code)

Word = Annotated[str, Field(min_length=1)]


class LanguageDataError(ValueError):
    """A language file is invalid; the message names the file, the key and the problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Keywords(_Strict):
    """The words a resident's reply is read by (callerloop/messaging/sms_keywords.py).
    Written naturally: matching ignores case, accents and punctuation."""

    opt_out: tuple[Word, ...] = ()  # the whole reply: STOP in this language
    leading_opt_out: tuple[Word, ...] = ()  # unambiguous stop words that may lead a reply
    leading_exceptions: tuple[Word, ...] = ()  # "stop by": a stop word that means visit
    opt_out_phrases: tuple[Word, ...] = ()  # anywhere in a reply: "stop texting me"
    opt_in: tuple[Word, ...] = ()
    help: tuple[Word, ...] = ()
    filler: tuple[Word, ...] = ()  # "please", "thanks": set aside around a keyword
    # Followed by a language's code or name, switches the call to it ("IDIOMA en").
    language: tuple[Word, ...] = ()
    # How this language says "in <language>"; {name} is a language's name in it (Babel).
    switch_forms: tuple[Word, ...] = ("{name}",)
    # More names for languages than Babel's, by code ("CASTELLANO" for es).
    names: dict[str, tuple[Word, ...]] = {}

    @field_validator("switch_forms")
    @classmethod
    def _name_in_each(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        lacking = [form for form in value if "{name}" not in form]
        if lacking:
            raise ValueError(f"each form must contain {{name}}: {lacking}")
        return value


class WatchList(_Strict):
    """Call-type words worth a second look before go-live (callerloop/golive/watch_list.py)."""

    words: tuple[Word, ...] = ()
    whole_words: tuple[Word, ...] = ()  # matched as whole words only ("DV", not "DVD")
    # word_start: where a word starts; anywhere: for scripts that join words (Chinese) or
    # attach articles and prepositions to them (Arabic).
    match: Literal["word_start", "anywhere"] = "word_start"


class LanguageFile(_Strict):
    draft: bool = False
    review: str = ""  # for a draft: who wrote it and what review it awaits
    tag: str | None = None  # BCP 47 for the pages' lang attribute ("zh-Hans"); default: code
    # What its texts are meant to be sent in: GSM-7 (the languages GSM-7's alphabet covers,
    # 160 characters a segment) or UCS-2 (any script, 70 a segment).
    sms_encoding: Literal["GSM-7", "UCS-2"] = "GSM-7"
    keywords: Keywords
    watch_list: WatchList = WatchList()


@dataclass(frozen=True)
class Language:
    code: str
    data: LanguageFile

    @property
    def draft(self) -> bool:
        return self.data.draft

    @property
    def keywords(self) -> Keywords:
        return self.data.keywords

    @cached_property
    def locale(self) -> Locale:
        return Locale.parse(self.data.tag or self.code, sep="-")

    @property
    def tag(self) -> str:
        return self.data.tag or self.code

    @cached_property
    def name(self) -> str:
        """Its name in itself, as a language switch shows it: "Español", "中文"."""
        return capitalised(self.name_in(self.code))

    @property
    def english_name(self) -> str:
        return self.name_in("en")

    @cached_property
    def direction(self) -> Literal["ltr", "rtl"]:
        return "rtl" if self.locale.text_direction == "rtl" else "ltr"

    def name_in(self, language: str) -> str:
        """Its name in another language ("inglés" for en in es), from Babel."""
        name = Locale.parse(self.code).get_display_name(language)
        return name or self.code


def capitalised(name: str) -> str:
    return name[:1].upper() + name[1:]


def load_language(path: Path) -> Language:
    """One language file; its name (without .toml) is the language's code."""
    code = path.stem
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise LanguageDataError(f"{path}: not valid TOML: {error}") from None
    except OSError as error:
        raise LanguageDataError(f"{path}: cannot read: {error.strerror}") from None
    try:
        Locale.parse(code)
    except (UnknownLocaleError, ValueError):
        raise LanguageDataError(
            f"{path}: {code!r} is not a language code Babel knows (use ISO 639, like 'es')"
        ) from None
    try:
        language = Language(code, LanguageFile.model_validate(data))
        language.locale  # noqa: B018  (a tag Babel cannot read fails here, not on a page)
    except ValidationError as error:
        raise LanguageDataError(f"{path}: {_describe(error)}") from None
    except (UnknownLocaleError, ValueError) as error:
        raise LanguageDataError(f"{path}: tag: {error}") from None
    return language


def load_languages(directory: Path = LANGUAGES_DIR) -> dict[str, Language]:
    """Every language file of the folder by code, in code order; or a LanguageDataError
    naming each bad file."""
    languages: dict[str, Language] = {}
    errors: list[str] = []
    for path in sorted(directory.glob("*.toml")):
        if not re.fullmatch(CODE_PATTERN, path.stem):
            errors.append(f"{path}: the file name must be a language code like 'es.toml'")
            continue
        try:
            languages[path.stem] = load_language(path)
        except LanguageDataError as error:
            errors.append(str(error))
    if errors:
        raise LanguageDataError("\n".join(errors))
    if not languages:
        raise LanguageDataError(f"{directory}: no language files (*.toml) found")
    return languages


def _describe(error: ValidationError) -> str:
    parts = []
    for detail in error.errors():
        where = ".".join(str(part) for part in detail["loc"]) or "(top level)"
        parts.append(f"{where}: {detail['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


@cache
def shipped_languages() -> dict[str, Language]:
    """The languages of this installation."""
    return load_languages()


SUPPORTED_LANGUAGES: tuple[str, ...] = tuple(shipped_languages())
DRAFT_LANGUAGES: tuple[str, ...] = tuple(
    code for code, language in shipped_languages().items() if language.draft
)
RELEASED_LANGUAGES: tuple[str, ...] = tuple(
    c for c in SUPPORTED_LANGUAGES if c not in DRAFT_LANGUAGES
)


def drafts_among(languages: Iterable[str]) -> list[str]:
    """The draft languages in `languages` (an agency's), in its order."""
    return [code for code in languages if code in DRAFT_LANGUAGES]
