"""Languages as data: the shipped ones pass `callerloop languages check`, and a broken
language (in a copy of the tree, as a translator's would be) shows each error."""

# ruff: noqa: RUF001  (Chinese punctuation is full-width on purpose)

from __future__ import annotations

import math
import re
import shutil
import tomllib
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

from callerloop.core.agency_config import (
    SUPPORTED_LANGUAGES,
    AgencyConfigError,
    DraftLanguageWarning,
    default_templates,
    load_agency_file,
)
from callerloop.core.settings import PROJECT_ROOT
from callerloop.core.sms_encoding import measure, outside_gsm7
from callerloop.languages import (
    DRAFT_LANGUAGES,
    RELEASED_LANGUAGES,
    LanguageDataError,
    load_languages,
    shipped_languages,
)
from callerloop.languages_check import (
    SAMPLE_VALUES,
    LanguageReport,
    LanguageSources,
    check_languages,
)
from starter.cli import app
from tests.factories import make_agency
from web.catalogs import language_catalog_problems

runner = CliRunner()


def test_the_languages_are_the_shipped_files() -> None:
    assert SUPPORTED_LANGUAGES == ("ar", "en", "es", "fr", "zh")
    assert RELEASED_LANGUAGES == ("en", "es", "fr")
    assert DRAFT_LANGUAGES == ("ar", "zh")
    assert set(default_templates()) == set(SUPPORTED_LANGUAGES)


def test_every_shipped_language_passes_the_check() -> None:
    reports = check_languages(page_catalog_problems=language_catalog_problems)
    assert [r.code for r in reports] == list(SUPPORTED_LANGUAGES)
    problems = [f"{r.code}: {f.where}: {f.message}" for r in reports for f in r.findings]
    assert not problems, "\n".join(problems)
    assert {r.code for r in reports if r.draft} == {"zh", "ar"}


# --- segments ----------------------------------------------------------------------------


def sent(language: str, kind: str) -> str:
    return str(default_templates()[language][kind]).format_map(SAMPLE_VALUES)


@pytest.mark.parametrize("language", ["zh", "ar"])
@pytest.mark.parametrize("kind", ["confirmation", "survey", "opt_out", "language_changed"])
def test_chinese_and_arabic_texts_are_ucs2_at_70_then_67_a_segment(
    language: str, kind: str
) -> None:
    body = sent(language, kind)
    size = measure(body)
    units = len(body.encode("utf-16-le")) // 2  # UTF-16 code units, as UCS-2 counts them
    assert size.encoding == "UCS-2"
    assert size.units == units
    assert size.segments == (1 if units <= 70 else math.ceil(units / 67))


def test_a_chinese_confirmation_costs_two_segments_where_english_costs_two_gsm7() -> None:
    chinese, english = measure(sent("zh", "confirmation")), measure(sent("en", "confirmation"))
    assert (chinese.encoding, chinese.segments) == ("UCS-2", 2)  # 115 units: over 70, 2 of 67
    assert chinese.units == 115
    assert (english.encoding, english.segments) == ("GSM-7", 2)  # 166 septets: 2 of 153
    assert measure(sent("en", "language_changed")).encoding == "GSM-7"


@pytest.mark.parametrize("language", ["en", "es", "fr"])
def test_latin_languages_stay_gsm7_in_every_text(language: str) -> None:
    for kind, text in default_templates()[language].items():
        if isinstance(text, str):
            body = text.format_map(SAMPLE_VALUES)
            assert measure(body).encoding == "GSM-7", (language, kind, outside_gsm7(body))


def test_arabic_texts_open_right_to_left() -> None:
    """A text opening with the agency's Latin name would be shown left to right."""
    for kind, text in default_templates()["ar"].items():
        if isinstance(text, str):
            assert text.startswith("\u200f"), kind


# --- agencies and drafts -----------------------------------------------------------------


def test_an_agency_may_offer_a_draft_language_and_loading_its_file_warns(
    tmp_path: Path,
) -> None:
    source = (PROJECT_ROOT / "agencies" / "example.toml").read_text(encoding="utf-8")
    offered = re.sub(r"^languages = .*$", 'languages = ["en", "zh"]', source, flags=re.M)
    path = tmp_path / "drafty.toml"
    path.write_text(offered, encoding="utf-8")
    with pytest.warns(DraftLanguageWarning, match=r"\['zh'\], draft language"):
        agency = load_agency_file(path)
    assert agency.agency.languages == ["en", "zh"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_agency_file(PROJECT_ROOT / "agencies" / "example.toml")  # no draft: silent


def test_an_agency_cannot_offer_a_language_callerloop_does_not_ship() -> None:
    with pytest.raises(AgencyConfigError, match=r"unsupported language\(s\) \['de'\]"):
        make_agency(agency={"languages": ["en", "de"]})


# --- a broken language -------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the languages, texts and pages, to break."""
    shutil.copytree(
        PROJECT_ROOT / "callerloop" / "languages", tmp_path / "callerloop" / "languages"
    )
    (tmp_path / "callerloop" / "core").mkdir()
    shutil.copy(
        PROJECT_ROOT / "callerloop" / "core" / "default_templates.toml",
        tmp_path / "callerloop" / "core" / "default_templates.toml",
    )
    shutil.copytree(PROJECT_ROOT / "web", tmp_path / "web", ignore=shutil.ignore_patterns("*.pyc"))
    return tmp_path


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def report_of(root: Path, code: str, max_segments: int = 5) -> LanguageReport:
    def catalog_problems(language: str) -> list[str]:
        return language_catalog_problems(language, root / "web" / "locales", root / "web")

    reports = check_languages(
        LanguageSources.under(root),
        max_segments=max_segments,
        page_catalog_problems=catalog_problems,
    )
    return next(r for r in reports if r.code == code)


def messages(report: LanguageReport) -> list[str]:
    return [f"{f.where}: {f.message}" for f in report.errors]


def templates(root: Path) -> Path:
    return root / "callerloop" / "core" / "default_templates.toml"


def language_file(root: Path, code: str) -> Path:
    return root / "callerloop" / "languages" / f"{code}.toml"


def test_a_missing_text_is_an_error(tree: Path) -> None:
    edit(templates(tree), 'language_changed = "{agency_name}：今后我们将用中文给您发短信。"\n', "")
    edit(templates(tree), 'respect = "我受到了尊重。请回复1（非常不同意）到5（非常同意）。"\n', "")
    errors = messages(report_of(tree, "zh"))
    assert "default_templates.toml [zh].language_changed: missing (English has it)" in errors
    assert "default_templates.toml [zh].questions.respect: missing (English has it)" in errors


def test_a_language_without_texts_is_an_error(tree: Path) -> None:
    text = templates(tree).read_text(encoding="utf-8")
    templates(tree).write_text(text[: text.index("[zh]")], encoding="utf-8")
    assert messages(report_of(tree, "zh")) == [
        "default_templates.toml [zh]: no texts: add the section, with every text [en] has"
    ]


def test_a_bad_placeholder_and_a_missing_stop_are_errors(tree: Path) -> None:
    edit(templates(tree), "案件编号 {case_number}。查看进度", "案件编号 {case}。查看进度")
    edit(templates(tree), "回复START可重新接收。", "")
    errors = messages(report_of(tree, "zh"))
    assert any(
        e.startswith("default_templates.toml [zh].confirmation: unknown placeholder(s) ['case']")
        for e in errors
    ), errors
    assert "default_templates.toml [zh].opt_out: must tell the resident to reply START" in errors


def test_a_misspelt_kind_is_an_error(tree: Path) -> None:
    edit(templates(tree), 'survey_retry = "抱歉', 'survey_retyr = "抱歉')
    errors = messages(report_of(tree, "zh"))
    assert (
        "default_templates.toml [zh].survey_retyr: not a text English has (a misspelt kind?)"
        in errors
    )
    assert "default_templates.toml [zh].survey_retry: missing (English has it)" in errors


def test_an_incomplete_page_catalog_is_an_error(tree: Path) -> None:
    catalog = tree / "web" / "locales" / "ar" / "LC_MESSAGES" / "messages.po"
    edit(catalog, 'msgstr "حالة مكالمتك"', 'msgstr ""')
    errors = messages(report_of(tree, "ar"))
    assert errors == [f"page catalog: {catalog}: untranslated: 'Status of your call'"]
    catalog.unlink()
    assert messages(report_of(tree, "ar")) == [f"page catalog: no page catalog at {catalog}"]


def test_missing_and_misread_keywords_are_errors(tree: Path) -> None:
    path = language_file(tree, "zh")
    edit(path, 'help = ["帮助"]', "help = []")
    edit(path, 'leading_opt_out = ["停止", "退订"]', 'leading_opt_out = ["停止", "别发"]')
    edit(path, 'filler = ["请", "谢谢", "好的"]', 'filler = ["请", "谢谢", "好的", "退订"]')
    edit(path, 'opt_out = ["停止",', 'opt_out = ["🛑", "停止",')
    errors = messages(report_of(tree, "zh"))
    where = f"{tree / 'callerloop' / 'languages' / 'zh'}.toml keywords"
    assert f"{where}.help: empty: give how a resident asks for HELP in Chinese" in errors
    assert f"{where}.leading_opt_out: '别发' is not in opt_out" in errors
    assert f"{where}.filler: '退订' is a keyword too" in errors
    assert f"{where}.opt_out: '🛑' is read as other " in errors  # no letters: never matches


def test_a_stop_word_another_table_takes_is_an_error(tree: Path) -> None:
    """A help word that a stop word also spells is read as a stop (opting out wins)."""
    edit(language_file(tree, "ar"), 'help = ["مساعدة"]', 'help = ["مساعدة", "كفى"]')
    where = f"{tree / 'callerloop' / 'languages' / 'ar'}.toml keywords"
    assert f"{where}.help: 'كفى' is read as opt_out كفى" in messages(report_of(tree, "ar"))


def test_a_language_whose_name_is_taken_is_an_error(tree: Path) -> None:
    """Its own name must ask for it: here French calls Chinese's name a stop word."""
    edit(language_file(tree, "fr"), 'opt_out = ["ARRÊT",', 'opt_out = ["中文", "ARRÊT",')
    errors = messages(report_of(tree, "zh"))
    assert any("'中文' should ask for zh, but is read as opt_out 中文 (fr)" in e for e in errors)


def test_a_gsm7_language_with_a_ucs2_character_is_an_error(tree: Path) -> None:
    edit(
        templates(tree),
        'assigned = "{agency_name}: un agente fue asignado',
        'assigned = "{agency_name}: un agente fue asignado ahí',
    )
    errors = messages(report_of(tree, "es"))
    assert errors == [
        "texts [es].assigned: 'í' not in GSM-7: sent as UCS-2 in 1 segment(s); "
        "word around them (the language's sms_encoding is GSM-7)"
    ]


def test_a_text_over_the_segment_budget_is_an_error(tree: Path) -> None:
    errors = messages(report_of(tree, "ar", max_segments=2))
    assert "texts [ar].confirmation: 3 segments (144 UCS-2 units), more than 2" in errors
    assert messages(report_of(tree, "ar", max_segments=5)) == []


def test_an_invalid_language_file_is_an_error_naming_the_key(tree: Path) -> None:
    edit(language_file(tree, "zh"), "draft = true", 'draft = "yes please"\ncolour = "red"')
    report = report_of(tree, "zh")
    assert report.language is None
    [error] = messages(report)
    assert error.startswith(f"{language_file(tree, 'zh')}: draft: Input should be a valid boolean")
    assert "colour: Extra inputs are not permitted" in error


def test_texts_without_a_language_file_are_an_error(tree: Path) -> None:
    language_file(tree, "ar").unlink()
    shutil.rmtree(tree / "web" / "locales" / "ar")
    assert messages(report_of(tree, "ar")) == [
        "default_templates.toml [ar]: texts, but no language file ar.toml"
    ]


def test_the_loader_names_each_bad_file(tree: Path) -> None:
    (tree / "callerloop" / "languages" / "Klingon.toml").write_text("draft = true\n")
    (tree / "callerloop" / "languages" / "xx.toml").write_text("[keywords]\n")
    with pytest.raises(LanguageDataError) as raised:
        load_languages(tree / "callerloop" / "languages")
    message = str(raised.value)
    assert "Klingon.toml: the file name must be a language code like 'es.toml'" in message
    assert "xx.toml: 'xx' is not a language code Babel knows" in message


# --- the command -------------------------------------------------------------------------


def test_the_command_passes_and_lists_the_drafts(tmp_path: Path) -> None:
    agencies = tmp_path / "agencies"
    agencies.mkdir()
    source = (PROJECT_ROOT / "agencies" / "example.toml").read_text(encoding="utf-8")
    offered = re.sub(r"^languages = .*$", 'languages = ["en", "ar"]', source, flags=re.M)
    (agencies / "drafty.toml").write_text(offered, encoding="utf-8")
    result = runner.invoke(app, ["languages", "check", "--agencies", str(agencies)])
    assert result.exit_code == 0, result.output
    assert re.search(r"ar\s+│ العربية \(Arabic\)\s+│ rtl\s+│ draft", result.stdout)
    assert re.search(r"en\s+│ English\s+│ ltr\s+│ ok", result.stdout)
    assert "draft: zh (Chinese): Written by the callerloop maintainers" in result.stdout
    assert "warning: agency 'drafty' offers draft language(s) ['ar']" in result.stderr


def test_the_command_fails_on_a_broken_tree(tree: Path) -> None:
    edit(templates(tree), "回复START可重新接收。", "")
    result = runner.invoke(app, ["languages", "check", "--root", str(tree), "--texts"])
    assert result.exit_code == 2, result.output
    assert (
        "error: zh: default_templates.toml [zh].opt_out: must tell the resident to reply START"
        in result.stderr
    )
    assert "error: 1 language(s) with errors: zh" in result.stderr
    assert "en confirmation: GSM-7, 166 units, 2 segment(s)" in result.stdout


def test_the_shipped_texts_parse_as_toml_with_every_language() -> None:
    data = tomllib.loads(templates(PROJECT_ROOT).read_text(encoding="utf-8"))
    assert set(data) == set(shipped_languages())
