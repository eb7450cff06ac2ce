"""Agency files: the shipped ones load; bad ones fail with the file, the key and why."""

from __future__ import annotations

from pathlib import Path

import pytest

from callerloop.core.agency_config import AgencyConfigError, load_agencies, load_agency_file
from callerloop.core.settings import PROJECT_ROOT
from tests.factories import make_agency
from workflows.model import STAGE_KINDS

EXAMPLE = (PROJECT_ROOT / "agencies" / "example.toml").read_text()


def test_shipped_agencies_load_with_complete_templates() -> None:
    agencies = load_agencies(PROJECT_ROOT / "agencies")
    assert set(agencies) == {"example", "example-county", "ottawa", "santa-monica"}
    assert agencies["ottawa"].agency.languages == ["en", "fr"]
    assert agencies["ottawa"].eligibility.priorities == [3, 4]
    assert agencies["santa-monica"].agency.languages == ["en", "es"]
    for agency in agencies.values():
        for language in agency.agency.languages:
            templates = agency.templates[language]
            assert all(getattr(templates, kind.value) for kind in STAGE_KINDS)


def test_time_scale_divides_every_policy_duration() -> None:
    example = load_agency_file(PROJECT_ROOT / "agencies" / "example.toml")
    real, fast = example.to_policy(), example.to_policy(time_scale=720)
    assert real.survey_delay_seconds == 24 * 3600 and fast.survey_delay_seconds == 120
    assert fast.survey_window_seconds == real.survey_window_seconds / 720
    assert [t.seconds * 720 for t in fast.delay_thresholds] == [
        t.seconds for t in real.delay_thresholds
    ]


def write(tmp_path: Path, text: str, name: str = "acme.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("America/New_York", "America/Gotham"), "agency.time_zone: unknown time zone"),
        (('priorities = [2, 3, 4]', 'priorities = "all"'), "eligibility.priorities"),
        (('sources = ["phone", "911", "text"]', 'sources = ["phone", "officer"]'),
         "['officer'] are not caller-originated sources"),
        (('survey_delay = "PT24H"', 'survey_delay = "tomorrow"'), "timing.survey_delay"),
        (('survey_delay = "PT24H"', 'survey_delay = "PT0S"'), "must be a positive duration"),
        (("2 = \"PT20M\"", "7 = \"PT20M\""), "delay_thresholds names priorities [7]"),
        (("'\\bIN PROG',", "'(IN PROG',"), "invalid regular expression"),
        (('start = "21:00"', 'start = "9pm"'), "expected a time of day as HH:MM"),
        (("[texts]", "[texts]\nsend_at_night = true"), "texts.send_at_night: Extra inputs"),
        (('languages = ["en", "es", "fr"]', 'languages = ["en", "de"]'), "unsupported language"),
    ],
)  # fmt: skip
def test_bad_values_name_the_file_and_the_key(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    old, new = change
    assert old in EXAMPLE
    path = write(tmp_path, EXAMPLE.replace(old, new, 1))
    with pytest.raises(AgencyConfigError) as raised:
        load_agency_file(path)
    message = str(raised.value)
    assert message.startswith(str(path)) and expected in message


def test_templates_are_checked(tmp_path: Path) -> None:
    unknown = EXAMPLE + '\n[templates.en]\nassigned = "Officer {officer_name} is coming"\n'
    with pytest.raises(AgencyConfigError, match=r"templates.en.assigned: unknown placeholder"):
        load_agency_file(write(tmp_path, unknown))
    no_stop = EXAMPLE + '\n[templates.fr]\nconfirmation = "Dossier {case_number}."\n'
    with pytest.raises(AgencyConfigError, match=r"templates\.fr\.confirmation must tell"):
        load_agency_file(write(tmp_path, no_stop))
    no_link = EXAMPLE + '\n[templates.es]\nsurvey = "Encuesta pronto."\n'
    with pytest.raises(AgencyConfigError, match=r"templates.es.survey.*\{survey_url\}"):
        load_agency_file(write(tmp_path, no_link))


def test_own_templates_override_the_defaults_kind_by_kind(tmp_path: Path) -> None:
    own = EXAMPLE + '\n[templates.en]\ncleared = "{agency_name}: case {case_number} closed."\n'
    agency = load_agency_file(write(tmp_path, own))
    assert agency.templates["en"].cleared == "{agency_name}: case {case_number} closed."
    assert "Reply STOP" in agency.templates["en"].confirmation  # still the default


def test_broken_toml_and_bad_file_names(tmp_path: Path) -> None:
    with pytest.raises(AgencyConfigError, match=r"acme.toml: not valid TOML: .*line 2"):
        load_agency_file(write(tmp_path, "[agency]\nname = \n"))
    with pytest.raises(AgencyConfigError, match="file name must be a lower-case agency id"):
        load_agency_file(write(tmp_path, EXAMPLE, name="Acme PD.toml"))


def test_every_bad_file_is_reported_at_once(tmp_path: Path) -> None:
    write(tmp_path, "[agency]\n", name="one.toml")
    write(tmp_path, EXAMPLE.replace("America/New_York", "Mars/Olympus"), name="two.toml")
    with pytest.raises(AgencyConfigError) as raised:
        load_agencies(tmp_path)
    assert "one.toml" in str(raised.value) and "two.toml" in str(raised.value)
    with pytest.raises(AgencyConfigError, match="no agency files"):
        load_agencies(tmp_path / "empty")


def test_survey_defaults_and_call_type_groups() -> None:
    default = make_agency().survey
    assert [q.id for q in default.questions] == [
        "call_taker",
        "officer",
        "overall",
        "respect",
        "comment",
    ]
    officer = default.questions[1]
    assert officer.not_applicable and officer.is_required
    assert not default.questions[-1].is_required  # the comment
    assert default.call_type_group("NOISE COMPLAINT") == "other"
    example = load_agency_file(PROJECT_ROOT / "agencies" / "example.toml").survey
    assert example.call_type_group("MVC PROPERTY DAMAGE") == "traffic"
    assert example.call_type_group("noise complaint delay") == "disorder"  # any case
    assert example.call_type_group("WALK IN HQ LOBBY") == "other"
    assert example.call_type_group(None) == "other"


@pytest.mark.parametrize(
    ("survey", "error"),
    [
        (
            'questions = [{ id = "safety", kind = "agreement" }]',
            r"survey.questions.0: question 'safety' needs `text`",
        ),
        (
            'questions = [{ id = "safety", kind = "agreement", text = { en = "I feel safe." } }]',
            r"survey.questions.safety.text: missing \['es', 'fr'\]",
        ),
        (
            'questions = [{ id = "overall", kind = "satisfaction" },'
            ' { id = "overall", kind = "agreement" }]',
            r"survey.questions: .*repeated: \['overall'\]",
        ),
        ('questions = [{ id = "overall", kind = "stars" }]', r"survey.questions.0.kind"),
        (
            'questions = [{ id = "comment", kind = "comment", not_applicable = true }]',
            r"a comment cannot be 'not applicable'",
        ),
        ("questions = []", r"survey.questions: List should have at least 1 item"),
        ("call_type_groups = { noise = ['(NOISE'] }", r"invalid regular expression '\(NOISE'"),
        ("comment_max_length = 0", r"survey.comment_max_length"),
    ],
)
def test_bad_survey_sections_say_where(tmp_path: Path, survey: str, error: str) -> None:
    with pytest.raises(AgencyConfigError, match=error):
        load_agency_file(write(tmp_path, EXAMPLE.split("[survey]")[0] + f"[survey]\n{survey}\n"))
