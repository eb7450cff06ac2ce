"""Survey follow-up mail, against a real SMTP server (aiosmtpd): a low score reaches the
supervisors with a link to the inbox item and no phone number, comment or case number;
an hourly digest is one mail for several answers; each rule mails what it names; a mail
server down then up loses nothing and sends nothing twice; STARTTLS with a login and a
private CA; recipients refused; retention still purges the inbox."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import update
from sqlmodel import col, select

from callerloop.core.agency_config import AgencyConfig
from callerloop.core.db import Database, FollowUpMail, SurveyComment, utcnow
from callerloop.core.settings import Settings
from callerloop.staff.follow_up import (
    LEASE,
    PENDING,
    SENT,
    WITHDRAWN,
    Sending,
    claim_new_items,
    pending_mails,
    send_pending,
    withdraw_pending,
)
from callerloop.staff.follow_up_mail import inbox_item_url
from callerloop.staff.mailer import Mailer
from callerloop.staff.retention import run_retention
from tests.factories import answered_survey, make_agency
from tests.smtp_server import (
    HOST,
    Mailbox,
    Received,
    SmtpServer,
    free_port,
    self_signed_certificate,
)
from tests.workflows.test_history_privacy import PHONE_SPELLINGS

BASE = "https://callerloop.test"
SENDER = "callerloop@police.example.gov"
SUPERVISORS = ["watch.commander@police.example.gov", "sgt.lee@police.example.gov"]
COMMENT = "Nobody came back. Call me on (703) 555-0142 or 703.555.0142 - Jane, 12 Elm St."
# What each survey puts in the inbox: a low score and a comment (with the caller's number),
# a low answer only (its overall answer is 4), a comment only, and nothing.
LOW_AND_COMMENT = {"call_taker": "1", "officer": "na", "overall": "2", "respect": "3",
                   "comment": COMMENT}  # fmt: skip
LOW_ONLY = {"call_taker": "4", "officer": "1", "overall": "4", "respect": "4", "comment": ""}
COMMENT_ONLY = {"call_taker": "5", "officer": "5", "overall": "5", "respect": "5",
                "comment": "Lovely officer."}  # fmt: skip
NOTHING = {"call_taker": "4", "officer": "4", "overall": "4", "respect": "4", "comment": ""}


def follow_up_agency(notify: str = "both", delivery: str = "immediate") -> AgencyConfig:
    return make_agency(
        follow_up={"notify": notify, "recipients": SUPERVISORS, "delivery": delivery},
        survey={"call_type_groups": {"disorder": [r"\bNOISE"]}},
    )


def mail_settings(port: int, **more: object) -> Settings:
    options: dict[str, object] = {"smtp_security": "none", **more}
    return Settings(
        smtp_host=HOST,
        smtp_port=port,
        smtp_from=SENDER,
        public_base_url=BASE,
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture
def mailbox() -> Mailbox:
    return Mailbox()


@pytest.fixture
def smtp(mailbox: Mailbox) -> Iterator[SmtpServer]:
    server = SmtpServer(mailbox).start()
    yield server
    server.stop()


def item_of(db: Database, agency: AgencyConfig, incident: str, values: dict[str, str]) -> int:
    item = answered_survey(db, agency, incident, values)
    assert item is not None and item.id is not None, "the answers made no inbox item"
    return item.id


def assert_nothing_personal(mail: Received, *secrets: str) -> None:
    """Neither the bytes the server received nor their decoded text hold any of them."""
    raw = mail.raw.decode("latin-1")
    for secret in (*PHONE_SPELLINGS, *secrets):
        assert secret not in raw, f"{secret!r} in the raw mail"
        assert secret not in mail.text, f"{secret!r} in the mail's text"


def mails_in_db(db: Database) -> list[FollowUpMail]:
    with db.session() as session:
        return list(session.exec(select(FollowUpMail).order_by(col(FollowUpMail.id))))


def test_a_low_score_reaches_the_supervisors_with_a_link_and_no_phone_number(
    database: Database, smtp: SmtpServer, mailbox: Mailbox
) -> None:
    agency = follow_up_agency()
    since = utcnow() - timedelta(seconds=1)
    item = item_of(database, agency, "25-000101", LOW_AND_COMMENT)

    assert claim_new_items(database, agency, since, BASE) == 1
    sent = send_pending(database, agency, Mailer(mail_settings(smtp.port)))

    assert sent == Sending(mails_sent=1, items_mailed=1)
    [mail] = mailbox.mails()
    assert mail.mail_from == SENDER and sorted(mail.recipients) == sorted(SUPERVISORS)
    message = mail.message
    assert message["Subject"] == (
        "Testville PD: survey follow-up, an answer of 2 or less and a comment"
    )
    assert message["To"] == ", ".join(SUPERVISORS)
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Message-ID"].endswith("@police.example.gov>")
    assert f"{BASE}/dashboard/comments/{item}" == inbox_item_url(BASE, item)
    assert f"Open it (staff sign-in): {BASE}/dashboard/comments/{item}" in mail.text
    assert "Score:     2 of 5" in mail.text and "Call type: disorder" in mail.text
    assert message["Content-Transfer-Encoding"] == "7bit"  # plain text, readable as it is
    # Not the comment, not the case number, not the CAD's call type: only the group.
    assert_nothing_personal(mail, "Nobody came", "Elm St", "Jane", "C25-000101", "NOISE")
    [row] = mails_in_db(database)
    assert (row.status, row.items, row.attempts) == (SENT, 1, 1)
    assert row.sent_to == ", ".join(SUPERVISORS) and row.sent_at is not None


def test_an_hourly_digest_is_one_mail_for_several_answers(
    database: Database, smtp: SmtpServer, mailbox: Mailbox
) -> None:
    agency = follow_up_agency(delivery="hourly")
    since = utcnow() - timedelta(seconds=1)
    items = [
        item_of(database, agency, "25-000201", LOW_AND_COMMENT),
        item_of(database, agency, "25-000202", LOW_ONLY),
        item_of(database, agency, "25-000203", COMMENT_ONLY),
    ]
    assert answered_survey(database, agency, "25-000204", NOTHING) is None  # not in the inbox

    assert claim_new_items(database, agency, since, BASE) == 3
    sent = send_pending(database, agency, Mailer(mail_settings(smtp.port)))

    assert sent == Sending(mails_sent=1, items_mailed=3)
    [mail] = mailbox.mails()
    assert sorted(mail.recipients) == sorted(SUPERVISORS)
    assert mail.message["Subject"] == "Testville PD: 3 survey answers to follow up"
    for item in items:
        assert inbox_item_url(BASE, item) in mail.text
    assert "an answer of 2 or less\n  score 4 of 5" in mail.text  # the low answer alone
    assert "a comment\n  score 5 of 5, call type disorder" in mail.text
    assert mail.message["Content-Transfer-Encoding"] == "7bit"  # readable as it is
    assert_nothing_personal(mail, "Nobody came", "Lovely officer", "C25-0002")
    [row] = mails_in_db(database)
    assert (row.kind, row.items, row.status) == ("digest", 3, SENT)


@pytest.mark.parametrize(
    ("notify", "mailed"),
    [
        ("low_score", {"25-000301", "25-000302"}),
        ("comment", {"25-000301", "25-000303"}),
        ("both", {"25-000301", "25-000302", "25-000303"}),
    ],
)
def test_each_rule_mails_the_items_it_names(
    database: Database, smtp: SmtpServer, mailbox: Mailbox, notify: str, mailed: set[str]
) -> None:
    agency = follow_up_agency(notify)
    since = utcnow() - timedelta(seconds=1)
    items = {
        incident: item_of(database, agency, incident, values)
        for incident, values in [
            ("25-000301", LOW_AND_COMMENT),
            ("25-000302", LOW_ONLY),
            ("25-000303", COMMENT_ONLY),
        ]
    }
    assert claim_new_items(database, agency, since, BASE) == len(mailed)
    send_pending(database, agency, Mailer(mail_settings(smtp.port)))
    links = {link for mail in mailbox.mails() for link in mail.text.split() if "://" in link}
    assert links == {inbox_item_url(BASE, items[incident]) for incident in mailed}
    assert len(mailbox.mails()) == len(mailed)  # one mail per item


def test_an_item_is_claimed_once_and_never_when_handled_or_from_before(
    database: Database,
) -> None:
    agency = follow_up_agency()
    before = item_of(database, agency, "25-000401", LOW_ONLY)
    since = utcnow()
    handled = item_of(database, agency, "25-000402", LOW_ONLY)
    new = item_of(database, agency, "25-000403", LOW_ONLY)
    with database.session() as session:
        session.execute(
            update(SurveyComment)
            .where(col(SurveyComment.id) == handled)
            .values(handled_at=utcnow(), handled_by="sgt.lee")
        )
        session.commit()

    assert claim_new_items(database, agency, since, BASE) == 1
    assert claim_new_items(database, agency, since, BASE) == 0  # already in its mail
    with database.session() as session:
        claimed = {
            item.id: item.follow_up_mail_id is not None
            for item in session.exec(select(SurveyComment))
        }
    assert claimed == {before: False, handled: False, new: True}


def test_a_mail_server_down_then_up_loses_nothing_and_sends_nothing_twice(
    database: Database, mailbox: Mailbox
) -> None:
    agency = follow_up_agency()
    port = free_port()  # nothing listens there yet: the server is down
    mailer = Mailer(mail_settings(port))
    since = utcnow() - timedelta(seconds=1)
    items = [
        item_of(database, agency, "25-000501", LOW_AND_COMMENT),
        item_of(database, agency, "25-000502", LOW_ONLY),
    ]
    assert claim_new_items(database, agency, since, BASE) == 2

    down = send_pending(database, agency, mailer)
    assert down.mails_sent == 0 and down.error.startswith("ConnectionRefusedError")
    assert pending_mails(database, agency.id) == 2
    assert {(m.status, m.last_error) for m in mails_in_db(database)} == {(PENDING, down.error)}

    server = SmtpServer(mailbox, port=port).start()
    try:
        up = send_pending(database, agency, mailer)
        again = send_pending(database, agency, mailer)
    finally:
        server.stop()
    assert up == Sending(mails_sent=2, items_mailed=2) and again == Sending()
    mails = mailbox.mails()
    assert len(mails) == 2 and len({m.message["Message-ID"] for m in mails}) == 2
    assert {link for m in mails for link in m.text.split() if "://" in link} == {
        inbox_item_url(BASE, item) for item in items
    }
    assert {(m.status, m.last_error) for m in mails_in_db(database)} == {(SENT, None)}


def test_a_mail_another_send_holds_goes_only_once_its_lease_is_over(
    database: Database, smtp: SmtpServer, mailbox: Mailbox
) -> None:
    """An earlier attempt still sending (a timed-out activity's thread) holds the mail:
    the next attempt leaves it alone until the lease is over (that attempt died)."""
    agency = follow_up_agency()
    mailer = Mailer(mail_settings(smtp.port))
    since = utcnow() - timedelta(seconds=1)
    item_of(database, agency, "25-000601", LOW_ONLY)
    claim_new_items(database, agency, since, BASE)
    held_until = utcnow() + LEASE
    with database.session() as session:
        session.execute(update(FollowUpMail).values(sending_until=held_until, attempts=1))
        session.commit()

    assert send_pending(database, agency, mailer) == Sending()
    assert mailbox.mails() == []
    later = held_until + timedelta(seconds=1)
    assert send_pending(database, agency, mailer, now=lambda: later).mails_sent == 1
    assert len(mailbox.mails()) == 1
    [row] = mails_in_db(database)
    assert (row.status, row.attempts) == (SENT, 2)


def test_a_refused_recipient_is_noted_and_the_others_get_the_mail(
    database: Database, smtp: SmtpServer, mailbox: Mailbox
) -> None:
    agency = follow_up_agency()
    mailer = Mailer(mail_settings(smtp.port))
    mailbox.refuse = {SUPERVISORS[1]}
    since = utcnow() - timedelta(seconds=1)
    item_of(database, agency, "25-000701", LOW_ONLY)
    claim_new_items(database, agency, since, BASE)

    sent = send_pending(database, agency, mailer)

    assert sent.mails_sent == 1 and sent.error == ""
    assert sent.notes == [f"mail 1: refused: {SUPERVISORS[1]} (550 5.1.1 no such mailbox here)"]
    assert [m.recipients for m in mailbox.mails()] == [[SUPERVISORS[0]]]
    [row] = mails_in_db(database)
    assert row.sent_to == SUPERVISORS[0] and row.last_error == sent.notes[0].split(": ", 1)[1]

    # Every recipient refused: not sent, reported, tried again at the next run.
    mailbox.refuse = set(SUPERVISORS)
    item_of(database, agency, "25-000702", LOW_ONLY)
    claim_new_items(database, agency, since, BASE)
    refused = send_pending(database, agency, mailer)
    assert refused.mails_sent == 0 and refused.error.startswith("SMTPRecipientsRefused")
    assert pending_mails(database, agency.id) == 1


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_tls_with_a_login_and_the_servers_own_ca(
    database: Database, mailbox: Mailbox, tmp_path: Path, security: str
) -> None:
    tls, ca_file = self_signed_certificate(tmp_path)
    logins = {"callerloop": "s3cret mail pass"}
    server = SmtpServer(mailbox, tls=tls, logins=logins, implicit_tls=security == "ssl").start()
    agency = follow_up_agency()
    since = utcnow() - timedelta(seconds=1)
    item_of(database, agency, "25-000801", LOW_ONLY)
    claim_new_items(database, agency, since, BASE)

    def settings(**more: object) -> Settings:
        return mail_settings(
            server.port,
            smtp_security=security,
            smtp_username="callerloop",
            **{"smtp_password": SecretStr("s3cret mail pass"), "smtp_ca_cert": ca_file, **more},
        )

    try:
        untrusted = send_pending(database, agency, Mailer(settings(smtp_ca_cert=None)))
        wrong = send_pending(database, agency, Mailer(settings(smtp_password=SecretStr("guessed"))))
        trusted = send_pending(database, agency, Mailer(settings()))
    finally:
        server.stop()
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.error
    assert wrong.error.startswith("SMTPAuthenticationError")
    assert trusted == Sending(mails_sent=1, items_mailed=1)
    assert len(mailbox.mails()) == 1


def test_without_a_mail_server_configured_the_mails_wait(database: Database) -> None:
    agency = follow_up_agency()
    since = utcnow() - timedelta(seconds=1)
    item_of(database, agency, "25-000901", LOW_ONLY)
    claim_new_items(database, agency, since, BASE)
    outcome = send_pending(database, agency, Mailer(Settings(smtp_host="")))
    assert outcome.error == "MailNotConfigured: CALLERLOOP_SMTP_HOST is not set: no mail can go"
    assert pending_mails(database, agency.id) == 1


def test_turning_follow_up_off_withdraws_the_mails_not_sent(database: Database) -> None:
    agency = follow_up_agency()
    since = utcnow() - timedelta(seconds=1)
    item = item_of(database, agency, "25-001001", LOW_ONLY)
    claim_new_items(database, agency, since, BASE)
    assert withdraw_pending(database, agency.id) == 1
    assert [m.status for m in mails_in_db(database)] == [WITHDRAWN]
    with database.session() as session:
        kept = session.get(SurveyComment, item)
    assert kept is not None and kept.handled_at is None  # still in the inbox


def test_retention_still_purges_inbox_items_that_were_mailed(
    database: Database, smtp: SmtpServer
) -> None:
    agency = follow_up_agency()
    since = utcnow() - timedelta(seconds=1)
    item = item_of(database, agency, "25-001101", LOW_AND_COMMENT)
    claim_new_items(database, agency, since, BASE)
    send_pending(database, agency, Mailer(mail_settings(smtp.port)))

    later = utcnow() + timedelta(days=agency.retention.outbox_days + 1)
    report = run_retention(database, {agency.id: agency}, later, line_type_cache_days=30)

    assert report.survey_comments_deleted == 1
    with database.session() as session:
        assert session.get(SurveyComment, item) is None
    # The mail's row stays: its subject and body hold nothing personal.
    assert [m.status for m in mails_in_db(database)] == [SENT]
