"""Agency configuration: one TOML file per agency in `agencies/`, validated at load.

Errors name the file, the key and what is wrong, e.g.
`agencies/example.toml: timing.survey_delay: invalid duration, expected ISO 8601 like "PT24H"`.
Durations are ISO 8601 (`PT20M`, `PT24H`, `P7D`).
"""

from __future__ import annotations

import re
import string
import tomllib
import warnings
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from callerloop.core.mail_address import checked_address
from callerloop.core.sms_encoding import measure
from callerloop.languages import SUPPORTED_LANGUAGES as SUPPORTED_LANGUAGES
from callerloop.languages import drafts_among
from workflows.cad_limits import INT64_MAX, INT64_MIN, MAX_OFFICER_LENGTH
from workflows.model import STAGE_KINDS, CallSource, TextKind, ThreadQuestion
from workflows.policy import CALLER_SOURCES, AgencyPolicy, DelayThreshold, QuietHours
from workflows.quiet_hours import parse_clock

# SUPPORTED_LANGUAGES: those with a file in callerloop/languages/ (see docs/languages.md).
TEMPLATE_FIELDS = frozenset(
    {"agency_name", "case_number", "status_url", "survey_url", "non_emergency_phone", "officer"}
)
# Placeholders a template of this kind cannot do without.
REQUIRED_FIELDS: dict[str, frozenset[str]] = {
    TextKind.CONFIRMATION: frozenset({"case_number"}),
    TextKind.SURVEY: frozenset({"survey_url"}),
    "survey_thread_link": frozenset({"survey_url"}),
    "assigned_officer": frozenset({"officer"}),
}


class AgencyConfigError(ValueError):
    """A configuration file is invalid; the message says where and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgencyIdentity(_Strict):
    name: str = Field(min_length=1)
    time_zone: str
    phone_region: str = Field(default="US", pattern=r"^[A-Z]{2}$")
    non_emergency_phone: str = Field(min_length=3)
    sender_number: str | None = Field(default=None, pattern=r"^\+[1-9][0-9]{7,14}$")
    messaging_service_sid: str | None = Field(default=None, pattern=r"^MG[0-9a-f]{32}$")
    languages: list[str] = Field(min_length=1)
    default_language: str = "en"

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return _valid_zone(value)

    @field_validator("languages")
    @classmethod
    def _supported(cls, value: list[str]) -> list[str]:
        unknown = [lang for lang in value if lang not in SUPPORTED_LANGUAGES]
        if unknown:
            raise ValueError(f"unsupported language(s) {unknown}; supported: {SUPPORTED_LANGUAGES}")
        return value

    @model_validator(mode="after")
    def _default_is_offered(self) -> Self:
        if self.default_language not in self.languages:
            raise ValueError(f"default_language {self.default_language!r} is not in languages")
        if not (self.sender_number or self.messaging_service_sid):
            raise ValueError("set sender_number or messaging_service_sid: texts need a sender")
        return self


def _valid_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown time zone {value!r} (use an IANA name)") from error
    return value


def _valid_pattern(value: str) -> str:
    try:
        re.compile(value)
    except re.error as error:
        raise ValueError(f"invalid regular expression {value!r}: {error}") from error
    return value


Pattern = Annotated[str, Field(min_length=1)]


class Eligibility(_Strict):
    priorities: list[int] = Field(min_length=1)
    lower_priority_is_more_urgent: bool = True
    sources: list[CallSource] = [CallSource.PHONE, CallSource.E911, CallSource.TEXT]
    excluded_call_types: list[Pattern] = []
    in_progress_patterns: list[Pattern] = [r"\bIN PROG"]
    allow_voip: bool = False

    @field_validator("sources")
    @classmethod
    def _caller_sources_only(cls, value: list[CallSource]) -> list[CallSource]:
        not_callers = [s.value for s in value if s not in CALLER_SOURCES]
        if not_callers:
            raise ValueError(
                f"{not_callers} are not caller-originated sources; only "
                f"{sorted(s.value for s in CALLER_SOURCES)} may be texted"
            )
        return value

    @field_validator("excluded_call_types", "in_progress_patterns")
    @classmethod
    def _compiles(cls, value: list[str]) -> list[str]:
        return [_valid_pattern(v) for v in value]


class QuietHoursConfig(_Strict):
    start: str
    end: str

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        parse_clock(value)
        return value


class Timing(_Strict):
    delay_thresholds: dict[int, timedelta] = {}
    survey_delay: timedelta = timedelta(hours=24)
    survey_window: timedelta = timedelta(days=7)
    quiet_hours: QuietHoursConfig | None = None
    max_open: timedelta = timedelta(days=30)

    @field_validator("survey_delay", "survey_window", "max_open")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be a positive duration")
        return value


class Texts(_Strict):
    max_per_call: int = Field(default=6, ge=1, le=20)
    validity_period: timedelta = timedelta(minutes=10)
    # The sender's throughput: 1 for a long code, 3 for toll-free, more for a short code.
    messages_per_second: float = Field(default=1.0, gt=0, le=100)
    # The assigned text names the officer when CAD does (templates' `assigned_officer`).
    name_the_officer: bool = False


class Retention(_Strict):
    outbox_days: int = Field(default=90, ge=1)


# Survey questions every deployment can ask, already translated in the web app's catalogs;
# any other question id needs its own `text` in each of the agency's languages.
BUILT_IN_QUESTIONS = ("call_taker", "officer", "overall", "respect", "comment")
OTHER_CALL_TYPE_GROUP = "other"


class SurveyQuestion(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")
    # satisfaction: very dissatisfied … very satisfied; agreement: strongly disagree …
    # strongly agree (both 1 to 5); comment: optional free text.
    kind: Literal["satisfaction", "agreement", "comment"]
    text: dict[str, Annotated[str, Field(min_length=1)]] = {}
    required: bool | None = None  # default: scales yes, comments no
    # Offers "does not apply" (for the officer question: "no officer came").
    not_applicable: bool = False

    @property
    def is_required(self) -> bool:
        return self.kind != "comment" if self.required is None else self.required

    @model_validator(mode="after")
    def _text_or_built_in(self) -> Self:
        if not self.text and self.id not in BUILT_IN_QUESTIONS:
            raise ValueError(
                f"question {self.id!r} needs `text` (built-in ids: {list(BUILT_IN_QUESTIONS)})"
            )
        unknown = [lang for lang in self.text if lang not in SUPPORTED_LANGUAGES]
        if unknown:
            raise ValueError(f"question {self.id!r}: unsupported language(s) {unknown}")
        if self.kind == "comment" and self.not_applicable:
            raise ValueError(f"question {self.id!r}: a comment cannot be 'not applicable'")
        return self


DEFAULT_QUESTIONS = [
    SurveyQuestion(id="call_taker", kind="satisfaction"),
    SurveyQuestion(id="officer", kind="satisfaction", not_applicable=True),
    SurveyQuestion(id="overall", kind="satisfaction"),
    SurveyQuestion(id="respect", kind="agreement"),
    SurveyQuestion(id="comment", kind="comment"),
]


# How the survey reaches a caller: a link to its page, its questions one by one in the
# text thread, or the thread with the link offered too.
SurveyDelivery = Literal["link", "thread", "both"]


class SurveyConfig(_Strict):
    questions: list[SurveyQuestion] = Field(default=DEFAULT_QUESTIONS, min_length=1)
    comment_max_length: int = Field(default=1000, ge=1, le=5000)
    delivery: SurveyDelivery = "link"
    delivery_by_language: dict[str, SurveyDelivery] = {}  # overrides `delivery`
    # A survey in the thread ends when the caller has not answered a question for this long.
    thread_silence: timedelta = timedelta(hours=2)
    # Call types reported together in survey results: group name -> regular expressions
    # (case-insensitive, first group in file order wins; no match: "other").
    call_type_groups: dict[
        Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,39}$")], list[Pattern]
    ] = {}

    @field_validator("questions")
    @classmethod
    def _unique_ids(cls, value: list[SurveyQuestion]) -> list[SurveyQuestion]:
        ids = [q.id for q in value]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"question ids must be unique; repeated: {repeated}")
        return value

    @field_validator("call_type_groups")
    @classmethod
    def _compiles(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        return {group: [_valid_pattern(p) for p in patterns] for group, patterns in value.items()}

    @field_validator("delivery_by_language")
    @classmethod
    def _known_languages(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = [lang for lang in value if lang not in SUPPORTED_LANGUAGES]
        if unknown:
            raise ValueError(f"unsupported language(s) {unknown}; supported: {SUPPORTED_LANGUAGES}")
        return value

    @field_validator("thread_silence")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be a positive duration")
        return value

    def delivery_for(self, language: str) -> SurveyDelivery:
        return self.delivery_by_language.get(language, self.delivery)

    def call_type_group(self, call_type: str | None) -> str:
        for group, patterns in self.call_type_groups.items():
            if call_type and any(re.search(p, call_type, re.IGNORECASE) for p in patterns):
                return group
        return OTHER_CALL_TYPE_GROUP


class Licence(_Strict):
    """The licence open data is published under (Frictionless `licenses`, DCAT `license`)."""

    name: str = Field(min_length=1)  # an identifier such as "CC-BY-4.0"
    title: str = Field(min_length=1)
    path: str = Field(pattern=r"^https?://\S+$")


class OpenData(_Strict):
    """How survey results are published (`callerloop opendata export`, `/opendata/`)."""

    # k: a group of fewer answers than this is never published, nor recoverable from totals.
    min_responses: int = Field(default=10, ge=3, le=10_000)
    title: str | None = None  # default: "<agency name>: caller survey results"
    description: str | None = None
    publisher: str | None = None  # default: the agency's name
    contact_name: str | None = None
    contact_email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    landing_page: str | None = Field(default=None, pattern=r"^https?://\S+$")
    keywords: list[Annotated[str, Field(min_length=1)]] = [
        "police",
        "survey",
        "community safety",
        "satisfaction",
    ]
    licence: Licence = Licence(
        name="CC-BY-4.0",
        title="Creative Commons Attribution 4.0",
        path="https://creativecommons.org/licenses/by/4.0/",
    )


class FollowUp(_Strict):
    """Mail to the agency's supervisors when a survey lands in their inbox
    (`[follow_up]`, callerloop.staff.follow_up): which inbox items, to whom, one mail
    each or an hourly digest. The SMTP server is the deployment's (CALLERLOOP_SMTP_*)."""

    # low_score: an item with a low score (an answer of 2 or less, as the inbox counts
    # it); comment: an item with a comment; both: every inbox item; off: no mail.
    notify: Literal["off", "low_score", "comment", "both"] = "off"
    recipients: list[Annotated[str, AfterValidator(checked_address)]] = []
    # immediate: one mail per item, within a minute; hourly: one digest on the hour.
    delivery: Literal["immediate", "hourly"] = "immediate"

    @model_validator(mode="after")
    def _someone_to_tell(self) -> Self:
        if self.notify != "off" and not self.recipients:
            raise ValueError(
                f"notify = {self.notify!r} needs recipients (the supervisors' addresses)"
            )
        lowered = [address.lower() for address in self.recipients]
        repeated = sorted({a for a in lowered if lowered.count(a) > 1})
        if repeated:
            raise ValueError(f"recipients repeated: {repeated}")
        return self


class Templates(_Strict):
    confirmation: str
    assigned: str
    delayed: str
    cleared: str
    survey: str
    help: str = ""
    # The assigned text naming the officer ({officer}), with `[texts] name_the_officer`.
    assigned_officer: str = ""
    # The survey in the text thread (see default_templates.toml).
    survey_thread: str
    survey_thread_link: str
    survey_retry: str
    survey_thanks: str
    questions: dict[str, str] = {}  # built-in question id -> its text
    scales: dict[str, str] = {}  # satisfaction, agreement, not_applicable, comment -> hint
    # The replies to a resident's texts (callerloop/messaging/inbound.py).
    opt_out: str
    opt_in: str
    not_monitored: str
    # A reply asking for another language: the confirmation, in the new language; and the
    # answer when the agency does not offer it (or to "which ones?"), followed by the
    # words that ask for those it offers ("… ENGLISH, ESPAÑOL").
    language_changed: str
    languages_offered: str


# The replies, and what each must tell the resident.
REPLY_KINDS = ("opt_out", "opt_in", "not_monitored", "language_changed", "languages_offered")
# The officer's name and a closing note's resources add to a text: it stays this short.
RICHER_TEXT_SEGMENTS = 3
THREAD_SURVEY_TEXTS = ("survey_thread", "survey_thread_link", "survey_retry", "survey_thanks")
REPLY_MUST_SAY = {"opt_out": "START", "opt_in": "STOP"}


class PriorityScale(_Strict):
    """The priority numbers this agency's CAD uses, both ends included: an event with any
    other priority is refused at the edge. The default, 0 to 9, is a single digit, which
    nearly every CAD's scale fits in (P0 included)."""

    min: int = Field(default=0, ge=INT64_MIN, le=INT64_MAX)
    max: int = Field(default=9, ge=INT64_MIN, le=INT64_MAX)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self

    @property
    def bounds(self) -> tuple[int, int]:
        return self.min, self.max

    def __contains__(self, priority: object) -> bool:
        return isinstance(priority, int) and self.min <= priority <= self.max


# A table name as SQL writes it: `Response_Master_Incident`, `dbo.Response_Master_Incident`.
_SQL_NAME = r"^[A-Za-z_][A-Za-z0-9_$#@]*(\.[A-Za-z_][A-Za-z0-9_$#@]*)?$"


class CadPoll(_Strict):
    """Reading the CAD's reporting database (`[cad.poll]`): changed rows, every `interval`.

    The connection URL is a secret and never in this file: `CALLERLOOP_CAD_POLL_URLS`
    gives it per agency. Columns are named by `[replay.columns]`, as for an export."""

    table: str | None = Field(default=None, pattern=_SQL_NAME)  # or `query`
    query: str | None = Field(default=None, min_length=1)  # a SELECT giving the columns
    # A column the CAD changes on every change to a row: a last-changed time ("time") or
    # a rising change number such as a rowversion ("id").
    watermark: str = Field(min_length=1)
    watermark_kind: Literal["time", "id"] = "time"
    # Rows changed up to this long before the watermark are read again: a CAD that stamps
    # a change before it commits it (or whose clock is a little behind) loses nothing.
    overlap: timedelta = timedelta(minutes=5)
    interval: timedelta = timedelta(seconds=30)
    # A poll's query running longer is cancelled by the database and reported; the next
    # interval tries again (PostgreSQL and SQL Server).
    query_timeout: timedelta = timedelta(minutes=2)
    # "now": start from the rows changed after the poller first runs; "beginning": read
    # the whole table first (a test, or a first day replayed on purpose).
    start: Literal["now", "beginning"] = "now"

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of table and query")
        if self.interval <= timedelta(0) or self.overlap < timedelta(0):
            raise ValueError("interval must be positive and overlap not negative")
        if self.query_timeout <= timedelta(0):
            raise ValueError("query_timeout must be positive")
        return self


class CadFolder(_Strict):
    """A folder the CAD drops its scheduled CSV exports in (`[cad.folder]`), read every
    `interval`; columns as `[replay.columns]`."""

    path: str = Field(min_length=1)  # as the worker sees it (a share mounted on its host)
    pattern: str = Field(default="*.csv", min_length=1)
    interval: timedelta = timedelta(minutes=1)

    @field_validator("interval")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be a positive duration")
        return value


class CadVocabulary(_Strict):
    """How this agency's CAD names things, mapped to callerloop's words, and where
    callerloop reads its CAD (`[cad.poll]`, `[cad.folder]`)."""

    sources: dict[str, CallSource] = {}
    priorities: dict[str, int] = {}
    priority_scale: PriorityScale = PriorityScale()
    poll: CadPoll | None = None
    folder: CadFolder | None = None

    @model_validator(mode="after")
    def _priorities_on_the_scale(self) -> Self:
        scale = self.priority_scale
        off = {word: p for word, p in self.priorities.items() if p not in scale}
        if off:
            raise ValueError(f"priorities {off} not on priority_scale ({scale.min} to {scale.max})")
        return self


# The columns of a CAD export by what they mean; `[replay.columns]` names each one.
# `call_type` and `priority` are the call's values at creation; an export that also keeps
# the final ones names them in `final_call_type` and `final_priority`. A CAD database holds
# the caller's number (`caller_phone`); an export for replay usually does not, and the
# replay makes up fictional ones.
EXPORT_COLUMNS = (
    "incident_id",
    "call_type",
    "priority",
    "source",
    "created",
    "dispatched",
    "enroute",
    "on_scene",
    "first_closed",
    "final_closed",
    "reopened",
    "disposition",
    "final_call_type",
    "final_priority",
    "caller_phone",
    "caller_language",
    "officer",  # the officer or unit assigned: only the assigned text may name them
)
# A time format must name these fields: a time without its day or minute is not one.
_TIME_FORMAT_NEEDS = {"year": "%Y", "month": "%m or %b", "day": "%d", "hour": "%H or %I"}
_FORMAT_PROBE = datetime(2025, 11, 29, 23, 58, 57, 123000)


def _valid_time_format(value: str) -> str:
    """A strptime format that reads back the times it writes, to the minute."""
    try:
        written = _FORMAT_PROBE.strftime(value)
        read = datetime.strptime(written, value)
    except ValueError as error:
        raise ValueError(f"{value!r} is not a time format strptime can read: {error}") from None
    missing = [
        f"{field} ({directive})"
        for field, directive in _TIME_FORMAT_NEEDS.items()
        if getattr(read, field) != getattr(_FORMAT_PROBE, field)
    ]
    if read.minute != _FORMAT_PROBE.minute:
        missing.append("minute (%M)")
    if missing:
        raise ValueError(f"{value!r} does not read back the {', '.join(missing)} of a time")
    return value


class ReplayConfig(_Strict):
    """How to read this agency's CAD export (see `callerloop cad replay`): the name of each
    column, the time formats and zone, and the made-up callers' numbers and languages."""

    columns: dict[str, str] = {}
    time_zone: str | None = None
    # strptime formats for the export's times, tried in order after ISO 8601 (which is
    # always read, with or without seconds or a zone); e.g. "%m/%d/%Y %H:%M" for 8/24/2025 0:07.
    time_formats: list[Annotated[str, AfterValidator(_valid_time_format)]] = []
    area_codes: list[Annotated[str, Field(pattern=r"^[2-9][0-9]{2}$")]] = ["202"]
    language_mix: dict[str, float] = {"en": 1.0}
    cancelled_dispositions: list[Pattern] = []

    @field_validator("cancelled_dispositions")
    @classmethod
    def _compiles(cls, value: list[str]) -> list[str]:
        return [_valid_pattern(v) for v in value]

    @field_validator("columns")
    @classmethod
    def _known_columns(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(EXPORT_COLUMNS))
        if unknown:
            raise ValueError(f"unknown column(s) {unknown}; the columns are {list(EXPORT_COLUMNS)}")
        empty = sorted(key for key, name in value.items() if not name.strip())
        if empty:
            raise ValueError(f"column(s) {empty} have an empty name")
        return value

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        return None if value is None else _valid_zone(value)

    @field_validator("language_mix")
    @classmethod
    def _weights(cls, value: dict[str, float]) -> dict[str, float]:
        if not value or any(w < 0 for w in value.values()) or sum(value.values()) <= 0:
            raise ValueError("weights must be non-negative and not all zero")
        return value


class PriorityBand(_Strict):
    """EIDO priorities from `min_eido` up to the next band's minimum map to `priority`."""

    min_eido: int = Field(ge=0, le=10)
    priority: int


class EidoMapping(_Strict):
    """How this agency reads NENA EIDO's common vocabulary (`POST /v1/cad/eido`)."""

    # APCO ANS 2.103 common incident type code -> this agency's call type name.
    call_types: dict[str, str] = {}
    # incidentCommonPriorityNumber (0-10, 10 most urgent) -> this agency's priority. One
    # band must start at 0 so every value maps; none: 0-10 spread evenly over the scale.
    priority_bands: list[PriorityBand] = []
    # Priority when an EIDO gives none; none leaves it unknown (the call waits for one).
    default_priority: int | None = None
    # Incident types (APCO code or agency call type) that mean officer-initiated.
    officer_initiated_types: list[str] = []

    @field_validator("call_types")
    @classmethod
    def _codes_upper_case(cls, value: dict[str, str]) -> dict[str, str]:
        return {code.strip().upper(): name for code, name in value.items()}

    @field_validator("priority_bands")
    @classmethod
    def _bands_cover_the_scale(cls, bands: list[PriorityBand]) -> list[PriorityBand]:
        if not bands:
            return bands
        starts = [band.min_eido for band in bands]
        if len(set(starts)) != len(starts):
            raise ValueError("each min_eido may appear only once")
        if 0 not in starts:
            raise ValueError("one band must have min_eido = 0 so every EIDO priority maps")
        return sorted(bands, key=lambda band: band.min_eido, reverse=True)

    def priority_for(self, eido_priority: int) -> int:
        return next(b.priority for b in self.priority_bands if eido_priority >= b.min_eido)

    def eido_priority_for(self, priority: int) -> int | None:
        """The EIDO number of the agency priority's most urgent band (for generating)."""
        return next((b.min_eido for b in self.priority_bands if b.priority == priority), None)

    def call_type_for(self, apco_code: str) -> str:
        """Unmapped codes stay as they are, so default-deny and patterns still apply."""
        return self.call_types.get(apco_code.strip().upper(), apco_code.strip())

    def apco_code_for(self, call_type: str) -> str | None:
        return next((code for code, name in self.call_types.items() if name == call_type), None)


class AgencyConfig(_Strict):
    id: str
    agency: AgencyIdentity
    eligibility: Eligibility
    timing: Timing = Timing()
    texts: Texts = Texts()
    retention: Retention = Retention()
    templates: dict[str, Templates] = {}
    cad: CadVocabulary = CadVocabulary()
    replay: ReplayConfig = ReplayConfig()
    eido: EidoMapping = EidoMapping()
    survey: SurveyConfig = SurveyConfig()
    open_data: OpenData = OpenData()
    follow_up: FollowUp = FollowUp()
    # Resources added to the closing note, by survey call-type group and language: victim
    # services, how to get the report, a prevention tip.
    closing_notes: dict[str, dict[str, Annotated[str, Field(min_length=1)]]] = {}

    @model_validator(mode="after")
    def _templates_complete(self) -> Self:
        for language in self.agency.languages:
            if language not in self.templates:
                raise ValueError(
                    f"templates.{language} is missing (the agency offers {language!r})"
                )
        for language, templates in self.templates.items():
            for kind in STAGE_KINDS:
                check_template(getattr(templates, kind.value), kind, f"templates.{language}.{kind}")
            for text in THREAD_SURVEY_TEXTS:
                check_template(getattr(templates, text), text, f"templates.{language}.{text}")
            if "STOP" not in templates.confirmation.upper():
                raise ValueError(
                    f"templates.{language}.confirmation must tell the caller to reply STOP"
                    " to opt out"
                )
            for reply in REPLY_KINDS:
                where = f"templates.{language}.{reply}"
                check_template(getattr(templates, reply), reply, where)
                keyword = REPLY_MUST_SAY.get(reply)
                if keyword and keyword not in getattr(templates, reply).upper():
                    raise ValueError(f"{where} must tell the resident to reply {keyword}")
        for question in self.survey.questions:
            missing = [lang for lang in self.agency.languages if lang not in question.text]
            if question.text and missing:
                raise ValueError(f"survey.questions.{question.id}.text: missing {missing}")
        for language in self.agency.languages:
            if self.survey.delivery_for(language) != "link":
                self._check_thread_texts(language)
        self._check_richer_texts()
        unknown = [p for p in self.timing.delay_thresholds if p not in self.eligibility.priorities]
        if unknown:
            raise ValueError(
                f"timing.delay_thresholds names priorities {unknown} that are not eligible"
            )
        return self

    def _check_richer_texts(self) -> None:
        for language in self.agency.languages if self.texts.name_the_officer else []:
            text = self.templates[language].assigned_officer
            if not text:
                raise ValueError(
                    f"templates.{language}.assigned_officer is missing ([texts] "
                    "name_the_officer is on)"
                )
            check_template(text, "assigned_officer", f"templates.{language}.assigned_officer")
            self._check_segments(text, f"templates.{language}.assigned_officer")
        groups = {*self.survey.call_type_groups, OTHER_CALL_TYPE_GROUP}
        for group, notes in self.closing_notes.items():
            if group not in groups:
                raise ValueError(
                    f"closing_notes.{group}: not a call-type group; [survey.call_type_groups] "
                    f"has {sorted(groups)}"
                )
            missing = [lang for lang in self.agency.languages if lang not in notes]
            if missing:
                raise ValueError(f"closing_notes.{group}: missing {missing}")
            for language, note in notes.items():
                where = f"closing_notes.{group}.{language}"
                check_template(note, "closing_note", where)
                cleared = self.templates[language].cleared if language in self.templates else ""
                self._check_segments(f"{cleared} {note}", f"{where} (after the closing note)")

    def _check_segments(self, template: str, where: str) -> None:
        """A richer text stays short: at most RICHER_TEXT_SEGMENTS, filled in with long
        values (a long case number, an officer's longest name)."""
        text = template.format(
            agency_name=self.agency.name,
            case_number="2025-000123456",
            officer="O" * MAX_OFFICER_LENGTH,
            non_emergency_phone=self.agency.non_emergency_phone,
            status_url="",
            survey_url="",
        )
        size = measure(text)
        if size.segments > RICHER_TEXT_SEGMENTS:
            raise ValueError(
                f"{where}: {size.segments} SMS segments ({size.encoding}, {size.units} "
                f"characters) with long values; at most {RICHER_TEXT_SEGMENTS}: shorten it"
            )

    def closing_note(self, call_type: str | None, language: str) -> str:
        """The resources the closing note of a call of this type ends with ("" for none)."""
        notes = self.closing_notes.get(self.survey.call_type_group(call_type), {})
        return notes.get(language) or notes.get(self.agency.default_language, "")

    def _check_thread_texts(self, language: str) -> None:
        """A survey asked in the thread needs every question as a text in the language."""
        templates = self.templates[language]
        for question in self.survey.questions:
            if question.text:
                missing = [h for h in scale_hints(question) if not templates.scales.get(h)]
                where = f"templates.{language}.scales"
            else:
                missing = [] if templates.questions.get(question.id) else [question.id]
                where = f"templates.{language}.questions"
            if missing:
                raise ValueError(
                    f"{where}: missing {missing}, needed by the survey in the text thread "
                    f"(survey.delivery for {language!r} is {self.survey.delivery_for(language)!r})"
                )

    def thread_question_text(self, question_id: str, language: str) -> str:
        """A survey question as the text thread asks it, with how to answer."""
        question = next((q for q in self.survey.questions if q.id == question_id), None)
        if question is None:
            raise ValueError(f"survey question {question_id!r} is not in the agency's survey")
        templates = self.templates.get(language) or self.templates[self.agency.default_language]
        if not question.text:
            return templates.questions[question.id]
        own = question.text.get(language) or question.text[self.agency.default_language]
        return " ".join([own, *(templates.scales[h] for h in scale_hints(question))])

    @model_validator(mode="after")
    def _priorities_on_the_scale(self) -> Self:
        """Every priority the file names is one the CAD can send (`[cad] priority_scale`)."""
        scale = self.cad.priority_scale
        named = {
            "eligibility.priorities": self.eligibility.priorities,
            "eido.priority_bands": [band.priority for band in self.eido.priority_bands],
            "eido.default_priority": [p for p in [self.eido.default_priority] if p is not None],
        }
        for where, priorities in named.items():
            off = [p for p in priorities if p not in scale]
            if off:
                raise ValueError(
                    f"{where}: {off} not on cad.priority_scale ({scale.min} to {scale.max})"
                )
        return self

    def to_policy(self, time_scale: float = 1.0, sms_task_queue: str = "") -> AgencyPolicy:
        """The workflow's view of this agency, every duration divided by `time_scale`."""

        def seconds(duration: timedelta) -> float:
            return duration.total_seconds() / time_scale

        quiet = self.timing.quiet_hours
        return AgencyPolicy(
            agency=self.id,
            name=self.agency.name,
            time_zone=self.agency.time_zone,
            default_language=self.agency.default_language,
            languages=list(self.agency.languages),
            eligible_priorities=list(self.eligibility.priorities),
            eligible_sources=list(self.eligibility.sources),
            lower_priority_is_more_urgent=self.eligibility.lower_priority_is_more_urgent,
            excluded_call_type_patterns=list(self.eligibility.excluded_call_types),
            in_progress_patterns=list(self.eligibility.in_progress_patterns),
            delay_thresholds=[
                DelayThreshold(priority=p, seconds=seconds(d))
                for p, d in sorted(self.timing.delay_thresholds.items())
            ],
            survey_delay_seconds=seconds(self.timing.survey_delay),
            survey_window_seconds=seconds(self.timing.survey_window),
            quiet_hours=QuietHours(start=quiet.start, end=quiet.end) if quiet else None,
            max_texts_per_call=self.texts.max_per_call,
            max_open_seconds=seconds(self.timing.max_open),
            time_scale=time_scale,
            sms_task_queue=sms_task_queue,
            allow_voip=self.eligibility.allow_voip,
            survey_delivery={
                language: self.survey.delivery_for(language) for language in self.agency.languages
            },
            thread_questions=[
                ThreadQuestion(id=q.id, kind=q.kind, not_applicable=q.not_applicable)
                for q in self.survey.questions
            ],
            thread_silence_seconds=seconds(self.survey.thread_silence),
            unreadable_call_type_is_unknown=True,
        )


def check_template(template: str, kind: str, where: str) -> None:
    """Only bare placeholders like {case_number}: a conversion or format spec ({x!r},
    {x:d}) could fail or change a text at send time, long after the file was loaded."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as error:
        raise ValueError(f"{where}: {error}; write a literal brace as {{{{ or }}}}") from error
    fields = {name for _, name, _, _ in parsed if name is not None}
    decorated = [
        name for _, name, spec, conversion in parsed if name is not None and (spec or conversion)
    ]
    if decorated:
        raise ValueError(
            f"{where}: placeholder(s) {sorted(decorated)} have a conversion or format spec; "
            "write them bare, like {case_number}"
        )
    unknown = fields - TEMPLATE_FIELDS
    if unknown:
        raise ValueError(
            f"{where}: unknown placeholder(s) {sorted(unknown)}; use {sorted(TEMPLATE_FIELDS)}"
        )
    missing = REQUIRED_FIELDS.get(kind, frozenset()) - fields
    if missing:
        raise ValueError(f"{where}: must contain {sorted('{' + m + '}' for m in missing)}")


def _describe(error: ValidationError) -> str:
    lines = []
    for detail in error.errors():
        where = ".".join(str(part) for part in detail["loc"]) or "(top level)"
        message = detail["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {message}")
    return "; ".join(lines)


DEFAULT_TEMPLATES_FILE = Path(__file__).with_name("default_templates.toml")


@lru_cache
def default_templates() -> dict[str, dict[str, str]]:
    return tomllib.loads(DEFAULT_TEMPLATES_FILE.read_text(encoding="utf-8"))


def _with_default_templates(data: dict[str, Any]) -> dict[str, Any]:
    """Fill each offered language's templates from the shipped defaults, kind by kind."""
    own = data.get("templates", {})
    if not isinstance(own, dict):
        return data
    languages = data.get("agency", {}).get("languages", [])
    defaults = default_templates()
    merged = dict(own)
    for language in languages if isinstance(languages, list) else []:
        if language in defaults and isinstance(own.get(language, {}), dict):
            merged[language] = _merged(defaults[language], own.get(language, {}))
    return {**data, "templates": merged}


def _merged(defaults: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    """`own` over `defaults`, table by table (an agency may reword one question)."""
    merged = {**defaults, **own}
    for key, value in own.items():
        if isinstance(value, dict) and isinstance(defaults.get(key), dict):
            merged[key] = {**defaults[key], **value}
    return merged


def scale_hints(question: SurveyQuestion) -> list[str]:
    """The hints an agency's own question is followed by in the thread ([scales])."""
    return [question.kind, *(["not_applicable"] if question.not_applicable else [])]


def parse_agency_config(data: dict[str, Any], agency_id: str, source: str) -> AgencyConfig:
    try:
        return AgencyConfig.model_validate({"id": agency_id, **_with_default_templates(data)})
    except ValidationError as error:
        raise AgencyConfigError(f"{source}: {_describe(error)}") from None


def load_agency_file(path: Path) -> AgencyConfig:
    """Load one agency file; its name (without .toml) is the agency's id."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise AgencyConfigError(f"{path}: not valid TOML: {error}") from None
    except OSError as error:
        raise AgencyConfigError(f"{path}: cannot read: {error.strerror}") from None
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", path.stem):
        raise AgencyConfigError(
            f"{path}: file name must be a lower-case agency id like 'santa-monica'"
        )
    config = parse_agency_config(data, path.stem, str(path))
    drafts = drafts_among(config.agency.languages)
    if drafts:
        warnings.warn(
            f"{path}: offers {drafts}, draft language(s) whose texts and pages await review "
            "by a native speaker (callerloop languages check)",
            DraftLanguageWarning,
            stacklevel=2,
        )
    return config


class DraftLanguageWarning(UserWarning):
    """An agency offers a language marked draft in callerloop/languages/."""


def load_agencies(directory: Path) -> dict[str, AgencyConfig]:
    """Every agency in the folder, or an AgencyConfigError naming each bad file."""
    files = sorted(directory.glob("*.toml"))
    if not files:
        raise AgencyConfigError(f"{directory}: no agency files (*.toml) found")
    agencies: dict[str, AgencyConfig] = {}
    errors: list[str] = []
    for path in files:
        try:
            config = load_agency_file(path)
        except AgencyConfigError as error:
            errors.append(str(error))
            continue
        agencies[config.id] = config
    if errors:
        raise AgencyConfigError("\n".join(errors))
    return agencies
