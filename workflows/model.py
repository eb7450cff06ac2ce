"""Dataclasses shared by the workflow, its activities and the CAD side.

Plain dataclasses only: they cross the Temporal boundary through the default JSON
converter and are imported into the workflow sandbox, so no I/O and no heavy imports.
Each workflow call and activity takes exactly one of these so fields can be added later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

# Tells pydantic (used at the edges to validate these dataclasses) to reject unknown keys.
_FORBID_EXTRA = {"extra": "forbid"}


class CadEventType(StrEnum):
    """What happened to the call in CAD."""

    CREATED = "created"
    UPDATED = "updated"  # priority, type, flags or caller details changed
    ASSIGNED = "assigned"  # a unit was dispatched
    ENROUTE = "enroute"
    ON_SCENE = "on_scene"
    DELAYED = "delayed"  # dispatch says the response will be late
    CLEARED = "cleared"
    CANCELLED = "cancelled"
    REOPENED = "reopened"


class CallStatus(StrEnum):
    RECEIVED = "received"
    DISPATCHED = "dispatched"
    ENROUTE = "enroute"
    ON_SCENE = "on_scene"
    CLEARED = "cleared"
    CANCELLED = "cancelled"
    REOPENED = "reopened"

    @property
    def is_closed(self) -> bool:
        return self in (CallStatus.CLEARED, CallStatus.CANCELLED)

    @property
    def has_unit(self) -> bool:
        return self in (CallStatus.DISPATCHED, CallStatus.ENROUTE, CallStatus.ON_SCENE)


class CallSource(StrEnum):
    """How the call reached the dispatch centre, normalised from the CAD's own words."""

    PHONE = "phone"  # non-emergency line
    E911 = "911"
    TEXT = "text"  # text-to-911
    OFFICER = "officer"  # officer-initiated / on view / flag down
    RADIO = "radio"
    WALK_IN = "walk_in"
    ALARM_COMPANY = "alarm_company"
    OTHER_AGENCY = "other_agency"
    UNKNOWN = "unknown"


class LineType(StrEnum):
    """What is known about the caller's line: from CAD (e.g. ALI class of service) or a lookup."""

    MOBILE = "mobile"
    LANDLINE = "landline"
    VOIP = "voip"
    UNKNOWN = "unknown"


class TextKind(StrEnum):
    CONFIRMATION = "confirmation"
    ASSIGNED = "assigned"
    DELAYED = "delayed"
    CLEARED = "cleared"
    SURVEY = "survey"
    # The survey in the text thread: its next question, and the thanks that ends it.
    SURVEY_QUESTION = "survey_question"
    SURVEY_THANKS = "survey_thanks"


# The texts that tell a stage of the call, each once per cycle (templates of these names).
STAGE_KINDS = (
    TextKind.CONFIRMATION,
    TextKind.ASSIGNED,
    TextKind.DELAYED,
    TextKind.CLEARED,
    TextKind.SURVEY,
)
# Texts of the conversation a caller began by answering: not counted against the cap.
THREAD_KINDS = frozenset({TextKind.SURVEY_QUESTION, TextKind.SURVEY_THANKS})


class TextingState(StrEnum):
    """The call's texting state as operators filter on it in the Temporal UI."""

    PENDING = "pending"  # not enough known yet to decide
    ACTIVE = "active"  # eligible: texts are going out
    INELIGIBLE = "ineligible"  # not texted, may change (e.g. no mobile number yet)
    BLOCKED = "blocked"  # safety stop: never texts again
    OPTED_OUT = "opted_out"
    CAPPED = "capped"  # the per-call text cap is reached
    FINISHED = "finished"  # lifecycle over, personal data purged


@dataclass
class DelayThreshold:
    priority: int
    seconds: float


@dataclass
class QuietHours:
    start: str  # "21:00" local time
    end: str  # "08:00" local time; may be before start (spans midnight)


@dataclass
class ThreadQuestion:
    """A survey question as the text thread asks it (its text is the activity's)."""

    id: str
    kind: str  # satisfaction, agreement or comment
    not_applicable: bool = False


@dataclass
class AgencyPolicy:
    """The part of an agency's configuration the workflow needs, durations in seconds,
    already divided by the deployment's time scale."""

    agency: str
    name: str
    time_zone: str
    default_language: str
    languages: list[str]
    eligible_priorities: list[int]
    eligible_sources: list[CallSource]
    # True when 1 is the most urgent priority (most CAD systems); False when higher is more urgent.
    lower_priority_is_more_urgent: bool = True
    excluded_call_type_patterns: list[str] = field(default_factory=list)
    in_progress_patterns: list[str] = field(default_factory=list)
    delay_thresholds: list[DelayThreshold] = field(default_factory=list)
    survey_delay_seconds: float = 24 * 3600
    survey_window_seconds: float = 7 * 24 * 3600
    quiet_hours: QuietHours | None = None
    max_texts_per_call: int = 6
    max_open_seconds: float = 30 * 24 * 3600  # a call CAD never closes is given up after this
    time_scale: float = 1.0
    # Texts go through the sender's own task queue, rate-limited to its messages per second.
    sms_task_queue: str = ""
    allow_voip: bool = False  # VoIP numbers often take texts, but not always
    # The survey: language -> "link", "thread" or "both" (a language not named: "link").
    # Policies recorded before the text thread have none, so their calls never ask in it.
    survey_delivery: dict[str, str] = field(default_factory=dict)
    thread_questions: list[ThreadQuestion] = field(default_factory=list)
    thread_silence_seconds: float = 2 * 3600
    # A call type the safety patterns cannot read (no Latin letter or digit) is unknown.
    # Policies recorded before this rule have it off, so their calls replay as they ran.
    unreadable_call_type_is_unknown: bool = False

    def delay_threshold_seconds(self, priority: int | None) -> float | None:
        for threshold in self.delay_thresholds:
            if threshold.priority == priority:
                return threshold.seconds
        return None

    def is_escalated(self, priority: int) -> bool:
        """More urgent than every eligible priority: a safety stop, not just a 'no'."""
        if not self.eligible_priorities:
            return True
        if self.lower_priority_is_more_urgent:
            return priority < min(self.eligible_priorities)
        return priority > max(self.eligible_priorities)


@dataclass
class CadEvent:
    """One change to a call for service, as the CAD system reports it.

    Every field but the identity, type and time is optional: an event carries what
    changed (or a full snapshot; applying a snapshot twice changes nothing).
    """

    __pydantic_config__ = _FORBID_EXTRA

    agency: str
    incident_id: str
    event_type: CadEventType
    occurred_at: datetime  # CAD's clock, timezone-aware
    event_id: str = ""  # unique per event; derived from the content when the CAD gives none
    case_number: str | None = None
    priority: int | None = None
    call_type: str | None = None
    source: CallSource | None = None
    caller_phone: str | None = None  # E.164
    caller_line_type: LineType | None = None
    caller_language: str | None = None  # ISO 639-1
    in_progress: bool | None = None
    do_not_text: bool | None = None
    disposition: str | None = None
    # The officer assigned, as CAD names them (a name or a badge number): the assigned
    # text names them where the agency chooses to (`[texts] name_the_officer`).
    officer: str | None = None


@dataclass
class CallInput:
    agency: str
    incident_id: str
    # Set only when the workflow continues as new, to carry the call over.
    carried_state: CallState | None = None
    carried_policy: AgencyPolicy | None = None


@dataclass
class AppliedField:
    """When a field was last set, so an older event never rolls it back."""

    name: str
    occurred_at: datetime


@dataclass
class LateFacts:
    """What an event older than the call's current facts said of them: not applied, but
    read by the safety rules (a call sensitive at any time is never texted)."""

    call_type: str | None = None
    priority: int | None = None
    source: CallSource | None = None
    in_progress: bool | None = None
    do_not_text: bool | None = None


@dataclass
class Decision:
    eligible: bool
    reason: str  # an EligibilityReason value
    detail: str = ""
    permanent: bool = False  # a safety stop: the call never texts again


# Outbox statuses of a text that never went out: refused by the provider, or withdrawn.
NOT_SENT = frozenset({"failed", "withheld"})


@dataclass
class SentText:
    kind: TextKind
    status: str  # outbox status after the send
    at: datetime
    segments: int = 0
    provider_id: str | None = None


@dataclass
class OperatorAction:
    """An operator's step on a call, kept in its state (and so in its history)."""

    action: str  # suppress, mark_language
    by: str
    reason: str
    at: datetime
    detail: str = ""


@dataclass
class SurveyReplySignal:
    """`survey_reply` signal: a caller's text while their survey is in the thread, read by
    the inbound handler (which knows the words of each language) for what it can mean."""

    body: str  # as sent: the answer to a comment question
    score: int | None = None  # 1 to 5 when the text is a score (a digit or words)
    not_applicable: bool = False  # "0", "n/a", "no officer came"
    skip: bool = False  # SKIP, SALTAR, PASSER
    message_id: str = ""  # the provider's: a webhook delivered twice is one answer


@dataclass
class ThreadAnswer:
    question: str  # the question id
    value: str  # "1".."5", "na", a comment, or "" (skipped)


@dataclass
class ThreadSurvey:
    """The survey asked one question at a time in the text thread (workflows.thread_survey)."""

    language: str
    questions: list[ThreadQuestion]
    current: int = 0  # the question being asked (len(questions): all asked)
    awaiting: bool = False  # its text went out and no answer has come yet
    retry: bool = False  # the next text asks the current question again
    asked_at: datetime | None = None  # workflow clock: when the current question went out
    answers: list[ThreadAnswer] = field(default_factory=list)
    ended: str = ""  # why it ended: completed, silence, stopped, not_sent
    thanked: bool = False
    stored: bool = False
    seen_messages: list[str] = field(default_factory=list)  # the latest few ids

    @property
    def open(self) -> bool:
        return not self.ended


@dataclass
class CallState:
    """Everything the workflow knows about one call. Also the `state` query's answer."""

    agency: str
    incident_id: str
    case_number: str | None = None
    status: CallStatus | None = None
    priority: int | None = None
    call_type: str | None = None
    source: CallSource | None = None
    caller_phone: str | None = None
    caller_line_type: LineType | None = None
    caller_language: str | None = None
    in_progress: bool | None = None
    do_not_text: bool | None = None
    disposition: str | None = None
    officer: str | None = None
    opted_out: bool = False
    opt_out_checked_for: str | None = None  # the phone number the registry was checked for
    line_type_looked_up_for: str | None = None  # the number whose line type was looked up
    suppressed_reason: str | None = None
    unusable_phone: str | None = None  # the provider said this number cannot take texts
    delay_reported: bool = False
    received_at: datetime | None = None  # workflow clock: when callerloop learnt of the call
    unit_assigned_at: datetime | None = None
    closed_at: datetime | None = None
    reopened_count: int = 0
    decision: Decision | None = None
    blocked: Decision | None = None  # the first safety stop, kept forever
    texting_state: TextingState = TextingState.PENDING
    texts: list[SentText] = field(default_factory=list)
    skipped: list[TextKind] = field(default_factory=list)  # kinds that no longer make sense
    events_applied: int = 0
    events_ignored: int = 0
    applied_event_ids: list[str] = field(default_factory=list)
    field_times: list[AppliedField] = field(default_factory=list)
    late_facts: list[LateFacts] = field(default_factory=list)
    # Safety facts CAD held and then changed (versions.EVERY_FACT_KEPT): read like the late
    # ones, so a correction that arrives before the call could decide on them stops nothing.
    superseded_facts: list[LateFacts] = field(default_factory=list)
    purged: bool = False
    idle: bool = False  # waiting for an event or a deadline, nothing in flight
    operator_actions: list[OperatorAction] = field(default_factory=list)
    confirmation_resend_requested: bool = False
    # When the caller's START last lifted an opt-out (workflow clock): what the call went
    # through while opted out is no longer news, and is not texted after it.
    texting_resumed_at: datetime | None = None
    reopened_at: datetime | None = None  # workflow clock: the latest reopen
    delay_reported_at: datetime | None = None  # workflow clock: CAD's `delayed` event
    # Bumped each time the workflow withdraws the call's sends (see SendTextInput).
    send_generation: int = 0
    thread_survey: ThreadSurvey | None = None  # the survey asked in the text thread
    # The language was chosen by the caller's reply or an operator (`mark_language`): a
    # later CAD event's caller language no longer changes it.
    language_chosen: bool = False

    def sent(self, kind: TextKind) -> bool:
        return any(t.kind == kind for t in self.texts)

    def texts_counted(self) -> int:
        return sum(1 for t in self.texts if t.status not in NOT_SENT and t.kind not in THREAD_KINDS)


@dataclass
class OptOutSignal:
    phone: str | None = None
    keyword: str = ""
    received_at: datetime | None = None


@dataclass
class OptInSignal:
    phone: str | None = None
    keyword: str = ""


@dataclass
class SuppressSignal:
    reason: str
    by: str = "operator"


@dataclass
class SuppressRequest:
    """`suppress` update: stop every text of this call, for good."""

    by: str
    reason: str


@dataclass
class ResendConfirmationRequest:
    """`resend_confirmation` update: send the confirmation again, if nothing reached the
    caller (e.g. the carrier reported it undelivered)."""

    by: str
    reason: str


@dataclass
class OutboxReportInput:
    workflow_id: str


@dataclass
class OutboxReport:
    """Each text of a call as the outbox knows it, delivery receipts included."""

    statuses: list[str] = field(default_factory=list)  # "confirmation#1: delivered", …
    delivered: bool = False


@dataclass
class MarkLanguageRequest:
    """`mark_language` update: the caller's language, for the texts still to come."""

    by: str
    reason: str
    language: str


@dataclass
class OperatorResult:
    """What an operator's update did, in words for the UI or CLI."""

    message: str
    texting_state: TextingState


@dataclass
class CallOutcome:
    """What the workflow returns when the call's lifecycle is over (no personal data)."""

    workflow_id: str
    status: CallStatus | None
    texting_state: TextingState
    reason: str
    texts: list[TextKind]


# --- activities -------------------------------------------------------------------


@dataclass
class LoadPolicyInput:
    agency: str


@dataclass
class CheckOptOutInput:
    agency: str
    phone: str


@dataclass
class CheckOptOutResult:
    opted_out: bool


@dataclass
class LookupLineTypeInput:
    phone: str


@dataclass
class LookupLineTypeResult:
    line_type: LineType


@dataclass
class SendTextInput:
    workflow_id: str
    agency: str
    incident_id: str
    case_number: str
    kind: TextKind
    language: str
    to: str
    link_expires_at: datetime | None = None
    attempt: int = 1  # the n-th text of this kind for this call (an operator's resend)
    # The call's send generation: the workflow withdraws a generation (RevokeSendsInput)
    # before it cancels a send, and the hand-off refuses a withdrawn generation.
    generation: int = 0
    # The survey in the text thread: the question this text asks (the survey text then
    # opens the thread with it), whether it is asked again, whether the link is offered.
    survey_question: str = ""
    survey_retry: bool = False
    survey_link: bool = True
    # What the richer texts say, where the agency chooses: the officer in the assigned
    # text, the call type (its group's resources) in the closing note.
    officer: str = ""
    call_type: str = ""


@dataclass
class RevokeSendsInput:
    """Withdraw every send of the call up to `generation`: a safety stop, a STOP or a
    later stage overtook the text on its way (`kind`, `attempt`)."""

    workflow_id: str
    generation: int
    reason: str
    kind: TextKind
    attempt: int


@dataclass
class RevokeSendsResult:
    """Whether the text on its way had already been handed to the provider: then it is
    not withdrawn, and its answer is waited for."""

    handed_over: bool


@dataclass
class SendTextResult:
    status: str  # outbox status: sent, failed, unknown, withheld, …
    provider_id: str | None
    segments: int
    already_sent: bool = False  # the outbox already held this (call, kind): nothing was sent


@dataclass
class EventRecord:
    event_id: str
    event_type: CadEventType
    occurred_at: datetime
    applied: bool
    note: str = ""


@dataclass
class CallSnapshot:
    """What a call's record keeps of its state: the record's input carries this, not the
    whole state (converting, encrypting and decrypting that cost the worker more)."""

    agency: str
    incident_id: str
    case_number: str | None = None
    status: CallStatus | None = None
    priority: int | None = None
    call_type: str | None = None
    source: CallSource | None = None
    language: str | None = None
    caller_phone: str | None = None
    texting_state: TextingState = TextingState.PENDING
    reason: str | None = None  # the latest decision's
    texts_sent: int = 0
    received_at: datetime | None = None
    closed_at: datetime | None = None
    operator_actions: list[OperatorAction] = field(default_factory=list)
    survey_thread_open: bool = False  # a reply to the number is an answer to this call

    @classmethod
    def of(cls, call: CallState) -> CallSnapshot:
        return cls(
            agency=call.agency,
            incident_id=call.incident_id,
            case_number=call.case_number,
            status=call.status,
            priority=call.priority,
            call_type=call.call_type,
            source=call.source,
            language=call.caller_language,
            caller_phone=call.caller_phone,
            texting_state=call.texting_state,
            reason=call.decision.reason if call.decision else None,
            texts_sent=call.texts_counted(),
            received_at=call.received_at,
            closed_at=call.closed_at,
            operator_actions=list(call.operator_actions),
            survey_thread_open=thread_survey_open(call),
        )


def thread_survey_open(call: CallState) -> bool:
    return call.thread_survey is not None and call.thread_survey.open


@dataclass
class StoreThreadSurveyInput:
    """The answers a survey in the thread got, stored like the survey page's."""

    workflow_id: str
    agency: str
    language: str
    answers: list[ThreadAnswer]


@dataclass
class RecordCallInput:
    workflow_id: str
    snapshot: CallSnapshot
    events: list[EventRecord] = field(default_factory=list)
    decision: Decision | None = None
    decided_at: datetime | None = None


@dataclass
class PurgeInput:
    workflow_id: str


# --- the CAD poller ([cad.poll]) --------------------------------------------------------


# What a CAD poller reads: the CAD's reporting database ([cad.poll]) or a watched export
# folder ([cad.folder]).
DATABASE_SOURCE, FOLDER_SOURCE = "database", "folder"


@dataclass
class PollInput:
    """One poll of an agency's CAD database (from the watermark on) or export folder."""

    agency: str
    watermark: str | None  # the watermark column's value as text; None: never polled
    started: bool  # False before the first poll (a source starting "now" reads no row)
    calls_from: datetime | None = None  # calls created before are not told ("now")
    source: str = DATABASE_SOURCE


@dataclass
class PollResult:
    watermark: str | None
    rows: int
    changed: int
    events: int
    for_finished_calls: int
    dead_letters: int
    interval_seconds: float  # until the next poll ([cad.poll] or [cad.folder] interval)
    files: int = 0
    rejected_files: int = 0
    newest_change: datetime | None = None
    calls_from: datetime | None = None  # set by the first poll of a source starting "now"
    # Empty when the poll went through; else why it did not (the database unreachable,
    # a query that failed): the next poll tries again after the interval.
    error: str = ""
    notes: list[str] = field(default_factory=list)


@dataclass
class PollerStatus:
    """What `callerloop cad poll status` and the Temporal UI show of one poller."""

    agency: str
    source: str = DATABASE_SOURCE
    # The watermark column's value (a database), or the name of the last file read.
    watermark: str | None = None
    started: bool = False
    calls_from: datetime | None = None  # calls created before are never told ("now")
    polls: int = 0
    rows: int = 0
    changed: int = 0
    events: int = 0
    for_finished_calls: int = 0
    dead_letters: int = 0
    files: int = 0  # a folder's files read
    rejected_files: int = 0  # a folder's files moved aside, unreadable
    last_poll_at: datetime | None = None
    newest_change: datetime | None = None
    lag_seconds: float | None = None  # from the newest change read to the poll that read it
    last_error: str = ""
    failing_since: datetime | None = None
    failed_polls: int = 0
    notes: list[str] = field(default_factory=list)  # the latest few


@dataclass
class PollerInput:
    agency: str
    status: PollerStatus | None = None  # carried over continue-as-new
    source: str = DATABASE_SOURCE
    polls_per_run: int = 500  # polls before continuing as new (bounded history)


# --- the survey follow-up ([follow_up]) --------------------------------------------------

IMMEDIATE_DELIVERY = "immediate"  # one mail per inbox item
HOURLY_DELIVERY = "hourly"  # one digest on the hour


@dataclass
class FollowUpRun:
    """One run of an agency's follow-up: claim its new inbox items into mails (when
    `claim`), then send its mails not sent yet."""

    agency: str
    # Items received before are never mailed; None on the first run: from now.
    since: datetime | None = None
    claim: bool = True  # immediate: every run; hourly: on the hour only


@dataclass
class FollowUpResult:
    since: datetime  # as given, or the first run's now
    delivery: str = IMMEDIATE_DELIVERY  # the agency's, as the worker loaded its file
    claimed: int = 0  # items put in a mail this run
    mails_sent: int = 0  # accepted by the SMTP server this run
    items_mailed: int = 0
    pending_mails: int = 0  # written and not accepted yet: tried again at the next run
    # Empty when every mail went; else why one did not (the SMTP server unreachable, a
    # refusal, no CALLERLOOP_SMTP_HOST).
    error: str = ""
    notes: list[str] = field(default_factory=list)  # recipients refused, mails withdrawn
    off: bool = False  # the agency's [follow_up] is off now: the workflow ends


@dataclass
class FollowUpStatus:
    """What the follow-up workflow's `status` query and its page in the Temporal UI show."""

    agency: str
    since: datetime | None = None
    delivery: str = IMMEDIATE_DELIVERY
    runs: int = 0
    claimed: int = 0
    mails_sent: int = 0
    items_mailed: int = 0
    pending_mails: int = 0
    last_run_at: datetime | None = None
    last_sent_at: datetime | None = None
    next_claim_at: datetime | None = None
    last_error: str = ""
    failing_since: datetime | None = None
    failed_runs: int = 0
    notes: list[str] = field(default_factory=list)  # the latest few


@dataclass
class FollowUpInput:
    agency: str
    status: FollowUpStatus | None = None  # carried over continue-as-new
    runs_per_run: int = 500  # runs before continuing as new (bounded history)
