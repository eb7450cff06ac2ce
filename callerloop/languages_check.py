"""Whether each language callerloop ships is complete (`callerloop languages check`).

A language is a file in callerloop/languages/, a section of default_templates.toml and a
page catalog. For each: its texts have every kind English has, only valid placeholders
and the words each must say (STOP, START); its keywords are there and read as meant (no
word taken by another intent or language); each text, as sent with realistic values, is
in the encoding the language is meant for (`sms_encoding`) and within a segment budget.
The page catalog is checked by the caller, which knows the pages (web.catalogs). Drafts
are reported as drafts.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callerloop.core.agency_config import (
    DEFAULT_TEMPLATES_FILE,
    REPLY_MUST_SAY,
    check_template,
)
from callerloop.core.sms_encoding import SmsSize, measure, outside_gsm7
from callerloop.languages import (
    CODE_PATTERN,
    LANGUAGES_DIR,
    Language,
    LanguageDataError,
    load_language,
)
from callerloop.messaging.links import STATUS, SURVEY, link_url
from callerloop.messaging.sms_keywords import (
    UNIVERSAL_OPT_OUT,
    InboundIntent,
    KeywordTables,
    normalise,
    reply_word,
)

REFERENCE_LANGUAGE = "en"  # every language has each text English has
DEFAULT_MAX_SEGMENTS = 5
# What a text looks like when it is sent: a real link's length, a typical name.
SAMPLE_BASE_URL = "https://callerloop.example.gov"
SAMPLE_TOKEN = "AbCdEfGhIjKlMnOpQrStUv"  # secrets.token_urlsafe(16) is 22 characters


class _Sample(dict[str, str]):
    """A placeholder this file does not know yet (a new TEMPLATE_FIELDS) gets a word."""

    def __missing__(self, key: str) -> str:
        return "Sample"


SAMPLE_VALUES = _Sample(
    agency_name="Example City Police",
    case_number="25-071089",
    status_url=link_url(SAMPLE_BASE_URL, STATUS, SAMPLE_TOKEN),
    survey_url=link_url(SAMPLE_BASE_URL, SURVEY, SAMPLE_TOKEN),
    non_emergency_phone="703-555-0100",
    officer="Officer R. Lee, unit 2A14",
)
MUST_SAY = {"confirmation": "STOP", **REPLY_MUST_SAY}
# The texts of the survey in the thread that go out with a question after them.
OPENINGS = ("survey_thread", "survey_thread_link")


@dataclass(frozen=True)
class Finding:
    where: str  # the file and key: "default_templates.toml [zh].confirmation"
    message: str
    error: bool = True  # False: a warning, which does not fail the check


@dataclass(frozen=True)
class SizedText:
    kind: str  # a template kind, or how the texts are put together ("survey_retry + …")
    body: str  # as sent, with SAMPLE_VALUES
    size: SmsSize


@dataclass
class LanguageReport:
    code: str
    language: Language | None  # None: its file could not be read
    findings: list[Finding] = field(default_factory=list)
    texts: list[SizedText] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.error]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if not f.error]

    @property
    def draft(self) -> bool:
        return self.language is not None and self.language.draft

    def error(self, where: str, message: str) -> None:
        self.findings.append(Finding(where, message))

    def warn(self, where: str, message: str) -> None:
        self.findings.append(Finding(where, message, error=False))


@dataclass(frozen=True)
class LanguageSources:
    """Where the languages are: the installed ones by default, or a translator's tree."""

    languages_dir: Path = LANGUAGES_DIR
    templates_file: Path = DEFAULT_TEMPLATES_FILE

    @classmethod
    def under(cls, root: Path) -> LanguageSources:
        """The layout of a callerloop checkout (or of the installed package)."""
        return cls(
            root / "callerloop" / "languages",
            root / "callerloop" / "core" / "default_templates.toml",
        )


PageCatalogProblems = Callable[[str], list[str]]


def check_languages(
    sources: LanguageSources = LanguageSources(),
    *,
    max_segments: int = DEFAULT_MAX_SEGMENTS,
    page_catalog_problems: PageCatalogProblems | None = None,
) -> list[LanguageReport]:
    """A report for each language (and for each text section without a language file)."""
    reports = _load(sources.languages_dir)
    languages = {r.code: r.language for r in reports if r.language is not None}
    templates, unreadable = _read_templates(sources.templates_file)
    where = sources.templates_file.name
    for code in sorted(set(templates) - {r.code for r in reports}):
        orphan = LanguageReport(code, None)
        orphan.error(f"{where} [{code}]", f"texts, but no language file {code}.toml")
        reports.append(orphan)
    tables = KeywordTables.of(languages)
    reference = templates.get(REFERENCE_LANGUAGE, {})
    for report in reports:
        if unreadable:
            report.error(where, unreadable)
        elif report.language is not None:
            section = templates.get(report.code)
            if _check_texts(report, where, section, reference):
                assert section is not None
                _measure_texts(report, section, languages, max_segments)
        if report.language is not None:
            _check_keywords(report, report.language, tables, sources.languages_dir, languages)
            _check_review(report, sources.languages_dir)
            for problem in page_catalog_problems(report.code) if page_catalog_problems else []:
                report.error("page catalog", problem)
    return sorted(reports, key=lambda r: r.code)


def _load(directory: Path) -> list[LanguageReport]:
    reports: list[LanguageReport] = []
    for path in sorted(directory.glob("*.toml")):
        report = LanguageReport(path.stem, None)
        if not re.fullmatch(CODE_PATTERN, path.stem):
            report.error(str(path), "the file name must be a language code like 'es.toml'")
        else:
            try:
                report.language = load_language(path)
            except LanguageDataError as error:
                report.error(str(path), str(error).removeprefix(f"{path}: "))
        reports.append(report)
    return reports


def _read_templates(path: Path) -> tuple[dict[str, dict[str, Any]], str]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        return {}, f"cannot read the texts: {error}"
    return {k: v for k, v in data.items() if isinstance(v, dict)}, ""


# --- the texts -----------------------------------------------------------------------------


def _check_texts(
    report: LanguageReport,
    file_name: str,
    section: dict[str, Any] | None,
    reference: Mapping[str, Any],
) -> bool:
    """Every kind English has, each a valid template saying what it must. True when the
    texts can be rendered."""
    where = f"{file_name} [{report.code}]"
    if section is None:
        report.error(where, "no texts: add the section, with every text [en] has")
        return False
    before = len(report.errors)
    for kind, english in reference.items():
        if isinstance(english, dict):
            own = section.get(kind)
            if not isinstance(own, dict):
                report.error(f"{where}.{kind}", f"missing: the table [{report.code}.{kind}]")
                continue
            for key in english:
                if not own.get(key):
                    report.error(f"{where}.{kind}.{key}", "missing (English has it)")
        elif not section.get(kind) and english:
            report.error(f"{where}.{kind}", "missing (English has it)")
    for kind, text in section.items():
        place = f"{where}.{kind}"
        if kind not in reference:
            report.error(place, "not a text English has (a misspelt kind?)")
        elif isinstance(text, dict):
            for key, value in text.items():
                _check_one(report, f"{place}.{key}", f"{kind}.{key}", value)
        else:
            _check_one(report, place, kind, text)
            keyword = MUST_SAY.get(kind)
            if isinstance(text, str) and keyword and keyword not in text.upper():
                report.error(place, f"must tell the resident to reply {keyword}")
    return len(report.errors) == before


def _check_one(report: LanguageReport, where: str, kind: str, text: object) -> None:
    if not isinstance(text, str):
        report.error(where, f"must be text, not {type(text).__name__}")
        return
    try:
        check_template(text, kind, where)
    except ValueError as error:
        report.error(where, str(error).removeprefix(f"{where}: "))


def _measure_texts(
    report: LanguageReport,
    section: Mapping[str, Any],
    languages: Mapping[str, Language],
    max_segments: int,
) -> None:
    """Each text as it is sent: alone, and put together as the survey in the thread and
    the answer to an unknown language put them (activities/texts.py, messaging/inbound.py)."""
    language = report.language
    assert language is not None
    rendered = {k: v.format_map(SAMPLE_VALUES) for k, v in section.items() if isinstance(v, str)}
    questions = [q.format_map(SAMPLE_VALUES) for q in section.get("questions", {}).values()]
    scales = {
        f"scales.{k}": v.format_map(SAMPLE_VALUES) for k, v in section.get("scales", {}).items()
    }
    released = [reply_word(lang) for lang in languages.values() if not lang.draft]
    texts = {
        **{kind: body for kind, body in rendered.items() if body},
        **{
            f"questions.{k}": v
            for k, v in zip(section.get("questions", {}), questions, strict=True)
        },
        **scales,
        **{
            f"{opening} + first question": f"{rendered[opening]} {questions[0]}"
            for opening in OPENINGS
            if opening in rendered and questions
        },
        **{
            f"survey_retry + questions.{key}": f"{rendered['survey_retry']} {question}"
            for key, question in zip(section.get("questions", {}), questions, strict=True)
            if "survey_retry" in rendered
        },
        "languages_offered + the released languages": " ".join(
            [rendered.get("languages_offered", ""), ", ".join(released)]
        ),
    }
    where = f"texts [{report.code}]"
    for kind, body in texts.items():
        size = measure(body)
        report.texts.append(SizedText(kind, body, size))
        if language.data.sms_encoding == "GSM-7" and size.encoding == "UCS-2":
            unknown = "".join(outside_gsm7(body))
            report.error(
                f"{where}.{kind}",
                f"{unknown!r} not in GSM-7: sent as UCS-2 in {size.segments} segment(s); "
                "word around them (the language's sms_encoding is GSM-7)",
            )
        if size.segments > max_segments:
            report.error(
                f"{where}.{kind}",
                f"{size.segments} segments ({size.units} {size.encoding} units), "
                f"more than {max_segments}",
            )


# --- the keywords --------------------------------------------------------------------------


def _check_keywords(
    report: LanguageReport,
    language: Language,
    tables: KeywordTables,
    directory: Path,
    languages: Mapping[str, Language],
) -> None:
    """Each word is there and, read by the classifier of every shipped language, means
    what its table says: no word is taken by another intent or another language."""
    keywords = language.keywords
    where = f"{directory / language.code}.toml keywords"
    for name, what in (
        ("opt_out", "how a resident says STOP"),
        ("help", "how a resident asks for HELP"),
        ("language", "the word that, before a code, asks for a language (LANG, IDIOMA)"),
    ):
        if not getattr(keywords, name):
            report.error(f"{where}.{name}", f"empty: give {what} in {language.english_name}")
    stop_words = {normalise(w) for w in (*UNIVERSAL_OPT_OUT, *keywords.opt_out)}
    for word in keywords.leading_opt_out:
        if normalise(word) not in stop_words:
            report.error(f"{where}.leading_opt_out", f"{word!r} is not in opt_out")
    expected = {
        "opt_out": InboundIntent.OPT_OUT,
        "opt_out_phrases": InboundIntent.OPT_OUT,
        "help": InboundIntent.HELP,
        "opt_in": InboundIntent.OPT_IN,
    }
    for name, intent in expected.items():
        for word in getattr(keywords, name):
            read = tables.classify(word)
            if read.intent != intent:
                report.error(f"{where}.{name}", f"{word!r} is read as {read.intent} {read.keyword}")
    for word in keywords.filler:
        if normalise(word) in tables.keywords:
            report.error(f"{where}.filler", f"{word!r} is a keyword too")
    asked = [reply_word(language), *(f"{prefix} {language.code}" for prefix in keywords.language)]
    for word in asked:
        read = tables.classify(word)
        if (read.intent, read.language) != (InboundIntent.LANGUAGE, language.code):
            report.error(
                f"{where}",
                f"{word!r} should ask for {language.code}, but is read as "
                f"{read.intent} {read.keyword} ({read.language})",
            )
    unknown = sorted(set(keywords.names) - set(languages))
    if unknown:
        report.warn(f"{where}.names", f"{unknown}: not languages callerloop ships")
    if not language.data.watch_list.words:
        report.warn(
            f"{directory / language.code}.toml watch_list",
            f"no words: the go-live review list will not read call types in "
            f"{language.english_name}",
        )


def _check_review(report: LanguageReport, directory: Path) -> None:
    language = report.language
    if language is not None and language.draft and not language.data.review.strip():
        report.warn(
            f"{directory / language.code}.toml review", "a draft: say who wrote it, for whom"
        )
