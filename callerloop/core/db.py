"""The application database: SQLModel tables and the engine.

SQLite file by default, PostgreSQL in production (`CALLERLOOP_DATABASE_URL`). The tables
are built by the Alembic migrations in `callerloop/core/migrations` (`callerloop.schema`): a
change to a model here needs a new revision (`make migration MESSAGE=…`). Workflows
never import this module: table classes re-imported in the workflow sandbox are slow and
collide ("Table … is already defined"). Activities and the CLI use it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DDL, Engine, UniqueConstraint, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine.url import make_url
from sqlmodel import Column, Field, Session, SQLModel, create_engine

from callerloop.core.column_types import UTCDateTime
from callerloop.core.settings import Settings

# Every constraint has a name (migrations drop and alter constraints by name; SQLite's batch
# mode needs them too). Indexes keep SQLAlchemy's default naming.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utc_column(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


def utcnow() -> datetime:
    return datetime.now(UTC)


class OutboxMessage(SQLModel, table=True):
    """One text to one caller. Written before the provider is called, so a retried send
    finds it and never sends twice; (workflow_id, kind, attempt) is unique."""

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("workflow_id", "kind", "attempt", name="uq_outbox_call_kind_attempt"),
    )

    id: int | None = Field(default=None, primary_key=True)
    workflow_id: str = Field(index=True)
    agency: str = Field(index=True)
    incident_id: str
    kind: str
    attempt: int = 1  # 2, 3, …: an operator asked for this kind again (resend_confirmation)
    language: str
    to: str | None = None  # purged with the call's personal data
    body: str | None = None  # purged too: it carries the status or survey link
    encoding: str
    segments: int
    provider: str
    status: str = Field(default="pending", index=True)
    provider_id: str | None = Field(default=None, index=True)
    error_code: str | None = None
    error_message: str | None = None
    attempts: int = 0
    created_at: datetime = utc_column(nullable=False, index=True)
    sent_at: datetime | None = utc_column()
    updated_at: datetime = utc_column(nullable=False)


class SendRevocation(SQLModel, table=True):
    """Sends of a call the workflow withdrew (a safety stop, STOP, a stage overtaken):
    an attempt of this generation or older is refused at the hand-off, under the same
    compare-and-set that claims it, so an attempt that missed its cancellation (a busy
    or restarted worker) cannot reach the provider either."""

    __tablename__ = "send_revocations"

    workflow_id: str = Field(primary_key=True)
    generation: int = Field(primary_key=True)
    reason: str
    revoked_at: datetime = utc_column(nullable=False)


class CadClosure(SQLModel, table=True):
    """A call's closing and reopening as the CAD edge received them (CAD's times, the
    latest of each): while the latest close is newer than the latest reopen, the hand-off
    refuses the texts of the stages before it (confirmation, delay notice, unit assigned),
    even before the call's workflow has seen the close."""

    __tablename__ = "cad_closures"

    workflow_id: str = Field(primary_key=True)
    closed_at: datetime | None = utc_column()
    reopened_at: datetime | None = utc_column()


class CadSnapshot(SQLModel, table=True):
    """What the CAD poller has told of one incident of one source: the keys of the events
    already sent, and digests (never the values) of the row and of the call type as last
    told, so a row read again sends only what changed, and an unchanged row nothing."""

    __tablename__ = "cad_snapshots"

    source: str = Field(primary_key=True)  # "poll:<agency>"
    incident_id: str = Field(primary_key=True)
    row_digest: str
    sent: str  # JSON list of event keys ("created:1", "assigned:1", …)
    call_type_digest: str
    priority: int | None = None
    updated_at: datetime = utc_column(nullable=False, index=True)


class CadFolderFile(SQLModel, table=True):
    """An export the watched folder has read (or moved aside), known by its content's
    digest: the same content is never read twice, whatever its name."""

    __tablename__ = "cad_folder_files"

    source: str = Field(primary_key=True)  # "folder:<agency>"
    digest: str = Field(primary_key=True)  # SHA-256 of the file's bytes
    name: str
    read_at: datetime = utc_column(nullable=False)
    rows: int = 0
    events: int = 0
    dead_letters: int = 0
    status: str  # "read" or "rejected" (moved to rejected/ with a report)
    problem: str = ""


class CallRecord(SQLModel, table=True):
    """The latest known state of a call, for staff and exports (no free text from CAD)."""

    __tablename__ = "calls"

    workflow_id: str = Field(primary_key=True)
    agency: str = Field(index=True)
    incident_id: str = Field(index=True)
    case_number: str | None = None
    status: str | None = None
    priority: int | None = None
    call_type: str | None = None
    source: str | None = None
    language: str | None = None
    caller_phone: str | None = None  # purged at the end of the lifecycle
    texting_state: str = Field(index=True)
    # The call's survey is asking its questions in the text thread: a reply is an answer.
    survey_thread_open: bool = False
    reason: str | None = None
    texts_sent: int = 0
    received_at: datetime | None = utc_column()
    closed_at: datetime | None = utc_column()
    updated_at: datetime = utc_column(nullable=False)
    purged_at: datetime | None = utc_column()


class CallEventRecord(SQLModel, table=True):
    """Every CAD event a call received, applied or not, and why."""

    __tablename__ = "call_events"
    __table_args__ = (UniqueConstraint("workflow_id", "event_id", name="uq_call_event"),)

    id: int | None = Field(default=None, primary_key=True)
    workflow_id: str = Field(index=True)
    event_id: str
    event_type: str
    occurred_at: datetime = utc_column(nullable=False)
    applied: bool
    note: str = ""
    recorded_at: datetime = utc_column(nullable=False)


class EligibilityDecisionRecord(SQLModel, table=True):
    """Each time a call's eligibility changed: the answer and its reason."""

    __tablename__ = "eligibility_decisions"
    __table_args__ = (UniqueConstraint("workflow_id", "decided_at", name="uq_decision_time"),)

    id: int | None = Field(default=None, primary_key=True)
    workflow_id: str = Field(index=True)
    agency: str = Field(index=True)
    decided_at: datetime = utc_column(nullable=False)
    eligible: bool
    reason: str = Field(index=True)
    detail: str = ""
    permanent: bool = False


class OptOut(SQLModel, table=True):
    """The opt-out registry: a number that said STOP to an agency's sender, kept as its
    pseudonym (`Database.pseudonym`), so the registry outlives the retention period."""

    __tablename__ = "opt_outs"

    agency: str = Field(primary_key=True)
    phone_pseudonym: str = Field(primary_key=True)
    opted_out: bool = True
    keyword: str = ""
    updated_at: datetime = utc_column(nullable=False)


class AutoReply(SQLModel, table=True):
    """An inbound text that was not a keyword gets one "not monitored" reply per call."""

    __tablename__ = "auto_replies"

    agency: str = Field(primary_key=True)
    phone: str = Field(primary_key=True)
    workflow_id: str = Field(primary_key=True)
    sent_at: datetime = utc_column(nullable=False)


class HandledInbound(SQLModel, table=True):
    """An inbound text acted on, by the provider's message id: Twilio retries a webhook it
    got no answer to, and a captured request replayed later (an old STOP after the
    resident's START) must change nothing. Written only once the text was fully handled,
    so a retry after a failure still acts. No phone number or body is kept."""

    __tablename__ = "handled_inbound"

    provider_id: str = Field(primary_key=True)
    agency: str
    handled_at: datetime = utc_column(nullable=False, index=True)


class LineTypeCache(SQLModel, table=True):
    """Line-type lookups are paid for: one per number per cache period."""

    __tablename__ = "line_type_cache"

    phone: str = Field(primary_key=True)
    line_type: str
    looked_up_at: datetime = utc_column(nullable=False)


class ApiKey(SQLModel, table=True):
    """A CAD system's key for the ingest API: only its SHA-256 is stored."""

    __tablename__ = "api_keys"

    id: int | None = Field(default=None, primary_key=True)
    agency: str = Field(index=True)
    name: str
    key_hash: str = Field(unique=True)
    created_at: datetime = utc_column(nullable=False)
    revoked_at: datetime | None = utc_column()


class DeadLetter(SQLModel, table=True):
    """A rejected CAD request body, kept whole with the reason, for an operator to fix and
    resubmit (`callerloop deadletter`)."""

    __tablename__ = "dead_letters"

    id: int | None = Field(default=None, primary_key=True)
    received_at: datetime = utc_column(nullable=False, index=True)
    endpoint: str
    agency: str | None = Field(default=None, index=True)
    reason: str
    body: str
    status: str = Field(default="open", index=True)  # open, delivered, discarded
    resolved_at: datetime | None = utc_column()


class LinkToken(SQLModel, table=True):
    """Links in texts carry a random token; only its SHA-256 is stored."""

    __tablename__ = "link_tokens"

    token_hash: str = Field(primary_key=True)
    workflow_id: str = Field(index=True)
    purpose: str  # "status" or "survey"
    created_at: datetime = utc_column(nullable=False)
    expires_at: datetime | None = utc_column()


class SurveyResponse(SQLModel, table=True):
    """One answered survey. No phone number, case number, call id or time of day: only
    the call's facts that results are reported by, so it outlives the call's purge."""

    __tablename__ = "survey_responses"

    id: int | None = Field(default=None, primary_key=True)
    agency: str = Field(index=True)
    month: str = Field(index=True)  # "2025-09", the month the call was received (agency time)
    priority: int | None = None
    call_type_group: str
    language: str  # the language the call was texted in
    page_language: str  # the language the survey was answered in
    channel: str = "link"  # how it was answered: link (the survey page) or thread (texts)
    comment: str | None = None  # free text: never part of the open data


class SurveyAnswer(SQLModel, table=True):
    """One question's answer: a score of 1 to 5, "does not apply", or nothing (skipped)."""

    __tablename__ = "survey_answers"
    __table_args__ = (UniqueConstraint("response_id", "question", name="uq_survey_answer"),)

    id: int | None = Field(default=None, primary_key=True)
    response_id: int = Field(foreign_key="survey_responses.id", index=True)
    question: str
    kind: str  # satisfaction or agreement
    score: int | None = None
    not_applicable: bool = False


class AnsweredSurvey(SQLModel, table=True):
    """A survey link that has been answered: makes a survey answerable once. Kept apart
    from the response so the answers cannot be traced back to the call."""

    __tablename__ = "answered_surveys"

    token_hash: str = Field(primary_key=True)
    # The form's one-off id: a repeated post of the same form is the same answer.
    submission_hash: str
    answered_at: datetime = utc_column(nullable=False)


class SurveyComment(SQLModel, table=True):
    """A survey's free-text comment for supervisors to follow up: staff only, never open
    data, and deleted after the agency's retention period (`callerloop retention run`).
    Kept apart from `SurveyResponse`, which must stay untraceable to the call."""

    __tablename__ = "survey_comments"

    id: int | None = Field(default=None, primary_key=True)
    agency: str = Field(index=True)
    case_number: str | None = None
    # The "overall" answer if the survey asks it, else the mean of the scale answers.
    score: float | None = Field(default=None, index=True)
    low_score: bool = False  # any answer was LOW_SCORE or less (whatever `score` says)
    call_type_group: str
    language: str
    comment: str
    created_at: datetime = utc_column(nullable=False, index=True)
    # The mail that tells the agency's supervisors of it ([follow_up]); none: not
    # claimed by a mail yet, or not one the agency mails.
    follow_up_mail_id: int | None = Field(
        default=None, foreign_key="follow_up_mails.id", index=True
    )
    # Who marked it handled in the inbox, and when (also in the audit log).
    handled_at: datetime | None = utc_column()
    handled_by: str | None = None


class FollowUpMail(SQLModel, table=True):
    """One e-mail to an agency's supervisors about inbox items: one item, or an hour's
    digest. Written in the transaction that claims its items, before any SMTP server is
    called, so the row is the outbox: a send that fails is tried again, one the server
    accepted never again (callerloop.staff.follow_up). Its subject and body never hold a
    phone number, a case number or a comment: what a mail may say is in
    callerloop.staff.follow_up_mail."""

    __tablename__ = "follow_up_mails"

    id: int | None = Field(default=None, primary_key=True)
    agency: str = Field(index=True)
    kind: str  # "item" (one mail per item) or "digest" (the hour's items in one)
    items: int
    subject: str
    body: str
    status: str = Field(default="pending", index=True)  # pending, sent, withdrawn
    attempts: int = 0
    last_error: str | None = None
    # A send under way holds the mail until then: a second attempt leaves it alone.
    sending_until: datetime | None = utc_column()
    sent_to: str | None = None  # the addresses the SMTP server accepted
    created_at: datetime = utc_column(nullable=False, index=True)
    sent_at: datetime | None = utc_column()


class StaffUser(SQLModel, table=True):
    """Someone who may sign in to the dashboard (`callerloop users add`); the password is
    kept only as an Argon2id hash."""

    __tablename__ = "staff_users"

    username: str = Field(primary_key=True)
    password_hash: str
    created_at: datetime = utc_column(nullable=False)
    disabled_at: datetime | None = utc_column()


class StaffSession(SQLModel, table=True):
    """A signed-in browser: the cookie carries a random token, only its SHA-256 is kept,
    so a copy of the database cannot be used to sign in."""

    __tablename__ = "staff_sessions"

    token_hash: str = Field(primary_key=True)
    username: str = Field(index=True)
    created_at: datetime = utc_column(nullable=False)
    expires_at: datetime = utc_column(nullable=False, index=True)


# Used when CALLERLOOP_PSEUDONYM_KEY is not set (tests, first runs): pseudonyms made with
# a public key can be reversed by trying every number, so production must set its own.
UNCONFIGURED_PSEUDONYM_KEY = b"callerloop: set CALLERLOOP_PSEUDONYM_KEY"


class AuditEntry(SQLModel, table=True):
    """Who did what, when: operator actions (from any channel), data exports, views of
    personal data. Append-only: the database itself refuses to change or delete a row."""

    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = utc_column(nullable=False, index=True)
    actor: str
    action: str = Field(index=True)
    target: str
    detail: str = ""
    source: str  # temporal-update, cli, web
    # Set by writers that may retry (activities): the same entry is never written twice.
    dedup_key: str | None = Field(default=None, unique=True)


# The audit log's guard, for `create_all` (the drift experiments, a hand-made database);
# the baseline migration creates the same triggers with its own copy of this SQL.
AUDIT_APPEND_ONLY = "the audit log is append-only"
for _statement in ("UPDATE", "DELETE"):
    event.listen(
        AuditEntry.__table__,  # type: ignore[attr-defined]
        "after_create",
        DDL(  # type: ignore[no-untyped-call]
            f"CREATE TRIGGER audit_log_no_{_statement.lower()} BEFORE {_statement} ON audit_log "
            f"BEGIN SELECT RAISE(ABORT, '{AUDIT_APPEND_ONLY}'); END"
        ).execute_if(dialect="sqlite"),
    )
for _postgresql_statement in (
    "CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    f"$$ BEGIN RAISE EXCEPTION '{AUDIT_APPEND_ONLY}'; END $$",
    "CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log "
    "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
    # TRUNCATE skips row triggers: refuse it with a statement trigger.
    "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()",
):
    event.listen(
        AuditEntry.__table__,  # type: ignore[attr-defined]
        "after_create",
        DDL(_postgresql_statement).execute_if(dialect="postgresql"),  # type: ignore[no-untyped-call]
    )


class Database:
    """An engine plus the session helper every activity uses, and the key that turns a
    phone number into the pseudonym the opt-out registry keeps instead of the number."""

    def __init__(self, url: str, pseudonym_key: bytes = UNCONFIGURED_PSEUDONYM_KEY) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._pseudonym_key = pseudonym_key

    def pseudonym(self, phone: str) -> str:
        """A keyed hash of the number: the same number always gives the same pseudonym,
        and without the key the number cannot be recovered from it."""
        return hmac.new(self._pseudonym_key, phone.encode(), hashlib.sha256).hexdigest()

    def create_schema(self) -> None:
        """Bring the schema to the newest migration: creates every table in an empty
        database, does nothing in one that is up to date (`callerloop.schema`)."""
        from callerloop.core import schema  # it imports this module

        schema.upgrade(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def insert_or_skip(dialect: str, model: type[SQLModel]) -> Any:
    """`INSERT … ON CONFLICT` for `dialect` (`sqlite` or `postgresql`, a connection's
    `dialect.name`): add `.on_conflict_do_nothing()` or `.on_conflict_do_update(…)`. One
    statement instead of a savepoint and an ORM flush per row: a retried activity writes
    nothing twice. On the table, not the class: the ORM's bulk-insert layer would double
    its cost."""
    table = model.__table__  # type: ignore[attr-defined]
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def database_for(settings: Settings) -> Database:
    """The application database of this deployment, with its pseudonym key."""
    key = settings.pseudonym_key.get_secret_value().encode() or UNCONFIGURED_PSEUDONYM_KEY
    return Database(settings.database_url, key)


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        # psycopg (3) is the driver callerloop ships; SQLAlchemy's default is psycopg2.
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    # WAL lets the CLI read while the worker writes; a busy timeout rides out short locks.
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
