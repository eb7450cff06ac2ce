"""Retention: numbers, texts and tokens leave the database on schedule; the opt-out
registry stays, as pseudonyms; a second run finds nothing to do."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlmodel import col, select
from typer.testing import CliRunner

from activities.call_records import CallRecordActivities
from callerloop.cad import dead_letters
from callerloop.core.db import (
    AutoReply,
    CallRecord,
    Database,
    DeadLetter,
    LineTypeCache,
    LinkToken,
    OptOut,
    OutboxMessage,
    SurveyComment,
    utcnow,
)
from callerloop.core.settings import get_settings
from callerloop.messaging.opt_outs import is_opted_out, record_opt_out
from callerloop.staff.retention import run_retention
from starter.cli import app
from tests.factories import call_record, issue_link, make_agency, outbox_row, survey_comment
from workflows.model import PurgeInput

PHONE = "+17035550142"
RETENTION_DAYS = 90  # the test agency's outbox_days


def test_the_registry_keeps_pseudonyms_never_numbers(database: Database) -> None:
    record_opt_out(database, "testville", PHONE, "STOP", opted_out=True)
    with database.session() as session:
        [row] = session.exec(select(OptOut)).all()
    assert PHONE not in row.phone_pseudonym and PHONE.removeprefix("+1") not in row.phone_pseudonym
    assert is_opted_out(database, "testville", PHONE)
    assert not is_opted_out(database, "testville", "+17035550143")
    other_key = Database(database.url, pseudonym_key=b"another deployment")
    assert not is_opted_out(other_key, "testville", PHONE)  # the key matters


def test_retention_purges_what_is_past_its_time_and_only_that(database: Database) -> None:
    agency = make_agency()
    now = utcnow()
    old, recent = now - timedelta(days=RETENTION_DAYS + 1), now - timedelta(days=1)
    outbox_row(database, at=old)
    outbox_row(database, at=recent)
    call_record(database, "OLD-1", old)
    call_record(database, "NEW-1", recent)
    survey_comment(database, "Old news.", at=old)
    survey_comment(database, "Still fresh.", at=recent)
    record_opt_out(database, "testville", PHONE, "STOP", opted_out=True)
    with database.session() as session:
        session.add(AutoReply(agency="testville", phone=PHONE, workflow_id="w-old", sent_at=old))
        session.add(AutoReply(agency="testville", phone=PHONE, workflow_id="w-new", sent_at=recent))
        session.add(
            LineTypeCache(phone=PHONE, line_type="mobile", looked_up_at=now - timedelta(days=31))
        )
        session.add(LineTypeCache(phone="+17035550199", line_type="mobile", looked_up_at=recent))
        issue_link(
            session, base_url="https://x", workflow_id="w", purpose="status", expires_at=recent
        )
        issue_link(
            session,
            base_url="https://x",
            workflow_id="w",
            purpose="status",
            expires_at=now + timedelta(days=1),
        )
        session.commit()
    delivered = dead_letters.keep(
        database, "/v1/cad/events", "testville", "503", f'{{"caller_phone": "{PHONE}"}}'
    )
    still_open = dead_letters.keep(
        database, "/v1/cad/events", "testville", "422", f'{{"caller_phone": "{PHONE}"}}'
    )
    with database.session() as session:
        letter = session.get(DeadLetter, delivered)
        assert letter is not None
        letter.status, letter.resolved_at = dead_letters.DELIVERED, old
        session.add(letter)
        session.commit()

    report = run_retention(database, {agency.id: agency}, now, line_type_cache_days=30)

    assert (
        report.texts_cleared,
        report.call_numbers_cleared,
        report.auto_replies_deleted,
        report.dead_letters_redacted,
        report.line_types_deleted,
        report.link_tokens_deleted,
        report.survey_comments_deleted,
    ) == (1, 1, 1, 1, 1, 1, 1)
    with database.session() as session:
        texts = session.exec(select(OutboxMessage).order_by(col(OutboxMessage.created_at))).all()
        assert [(t.to, t.body) for t in texts] == [(None, None), (PHONE, "hello")]
        calls = {c.incident_id: c.caller_phone for c in session.exec(select(CallRecord))}
        assert calls == {"OLD-1": None, "NEW-1": PHONE}
        assert [r.workflow_id for r in session.exec(select(AutoReply))] == ["w-new"]
        assert [r.phone for r in session.exec(select(LineTypeCache))] == ["+17035550199"]
        assert len(session.exec(select(LinkToken)).all()) == 1
        bodies = {d.id: d.body for d in session.exec(select(DeadLetter))}
        assert bodies[delivered] == "" and PHONE in bodies[still_open]
        assert [c.comment for c in session.exec(select(SurveyComment))] == ["Still fresh."]
    assert is_opted_out(database, "testville", PHONE)  # the registry outlives retention

    again = run_retention(database, {agency.id: agency}, now, line_type_cache_days=30)
    assert again.total == 0


def test_retention_run_from_the_command_line(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    outbox_row(database, at=utcnow() - timedelta(days=400), agency="example")
    monkeypatch.setenv("CALLERLOOP_DATABASE_URL", database.url)
    get_settings.cache_clear()
    try:
        first = CliRunner().invoke(app, ["retention", "run"])
        second = CliRunner().invoke(app, ["retention", "run"])
    finally:
        get_settings.cache_clear()
    assert first.exit_code == 0, first.output
    assert "texts cleared: 1" in first.output
    assert "retention run done: 0 item(s) purged" in second.output


TWILIO_21211 = f"The 'To' number {PHONE} is not a valid phone number."


def refused_text(db: Database, workflow_id: str, at: datetime) -> None:
    """A text the provider refused, its error as written before masking (or by any path
    that did not mask): quoting the number."""
    with db.session() as session:
        session.add(
            OutboxMessage(
                workflow_id=workflow_id,
                agency="testville",
                incident_id=workflow_id.rsplit("/", 1)[-1],
                kind="confirmation",
                language="en",
                to=PHONE,
                body="hello",
                encoding="GSM-7",
                segments=1,
                provider="twilio",
                status="failed",
                error_code="21211",
                error_message=TWILIO_21211,
                created_at=at,
                updated_at=at,
            )
        )
        session.commit()


def error_messages(db: Database) -> list[str | None]:
    with db.session() as session:
        return [row.error_message for row in session.exec(select(OutboxMessage))]


def test_retention_clears_provider_errors_that_quote_the_number(database: Database) -> None:
    agency = make_agency()
    now = utcnow()
    refused_text(database, "call/testville/OLD-1", now - timedelta(days=RETENTION_DAYS + 1))

    report = run_retention(database, {agency.id: agency}, now, line_type_cache_days=30)

    assert report.texts_cleared == 1
    assert error_messages(database) == [None]
    assert run_retention(database, {agency.id: agency}, now, line_type_cache_days=30).total == 0


def test_the_end_of_a_call_purges_provider_errors_with_its_number(database: Database) -> None:
    refused_text(database, "call/testville/T-9", utcnow())
    refused_text(database, "call/testville/T-10", utcnow())  # another call: kept

    CallRecordActivities(database).purge_personal_data(PurgeInput("call/testville/T-9"))

    with database.session() as session:
        rows = {r.workflow_id: r for r in session.exec(select(OutboxMessage))}
    purged, kept = rows["call/testville/T-9"], rows["call/testville/T-10"]
    assert (purged.to, purged.body, purged.error_message) == (None, None, None)
    assert purged.error_code == "21211"  # the code says what happened, without the number
    assert kept.error_message == TWILIO_21211
