"""Retention: numbers, texts and tokens leave the database on schedule; the opt-out
registry stays, as pseudonyms; a second run finds nothing to do."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import col, select
from typer.testing import CliRunner

from activities.opt_outs import is_opted_out, record_opt_out
from callerloop import dead_letters
from callerloop.db import (
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
from callerloop.retention import run_retention
from callerloop.settings import get_settings
from starter.cli import app
from tests.factories import call_record, issue_link, make_agency, outbox_row, survey_comment

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
