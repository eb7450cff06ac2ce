"""Survey follow-up: mail to an agency's supervisors about new items of the comments
inbox, as its `[follow_up]` asks (run by workflows.follow_up through activities.follow_up).

The inbox row (`survey_comments`) is the source of truth, and each mail is a row of its
own (`follow_up_mails`) written before any SMTP server is called:

1. **Claim.** In one transaction, the agency's new unhandled items that its rule asks a
   mail for get their mail (one per item, or one digest for them all) and point at it.
   An item is claimed once: by one mail, never two.
2. **Send.** Each pending mail is held by a lease while its SMTP transaction runs (a
   second attempt of the activity leaves it alone), then marked sent once the server has
   accepted it. A mail the server did not take stays pending with its error and goes at
   the next run, with the same Message-ID.

So nothing is lost (the mail is on record before anything is tried) and nothing is sent
twice, but for one window no SMTP client can close: the process dying between the
server's acceptance and the commit that marks the mail sent. The lease's end sends that
mail again, with the same Message-ID, so it is recognisably the same mail.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, or_, true, update
from sqlmodel import col, select

from callerloop.core.agency_config import AgencyConfig
from callerloop.core.db import Database, FollowUpMail, SurveyComment, utcnow
from callerloop.staff import follow_up_mail
from callerloop.staff.mailer import Mailer

PENDING, SENT, WITHDRAWN = "pending", "sent", "withdrawn"
ITEM, DIGEST = "item", "digest"
# Items claimed in one run at most (the rest at the next): a burst never becomes a flood.
CLAIM_LIMIT = 200
# A send holds its mail this long: far longer than one SMTP transaction can take
# (CALLERLOOP_SMTP_TIMEOUT is at most two minutes a step).
LEASE = timedelta(minutes=10)
_ERROR_LENGTH = 300


def wanted(notify: str) -> ColumnElement[bool]:
    """The items `[follow_up] notify` mails, in SQL: what follow_up_mail.is_low and
    has_comment say of one item."""
    has_comment = col(SurveyComment.comment) != ""
    low = col(SurveyComment.low_score).is_(True)
    rules: dict[str, ColumnElement[bool]] = {
        "low_score": low,
        "comment": has_comment,
        "both": true(),
    }
    return rules[notify]


def claim_new_items(
    db: Database, agency: AgencyConfig, since: datetime, public_base_url: str
) -> int:
    """Write the mails of the agency's unclaimed, unhandled items received since `since`
    that its rule asks for, each item pointed at its mail in the same transaction.
    Returns the items claimed (0 when another attempt claimed them first)."""
    rule = agency.follow_up
    if rule.notify == "off":
        return 0
    with db.session() as session:
        items = list(
            session.exec(
                select(SurveyComment)
                .where(col(SurveyComment.agency) == agency.id)
                .where(col(SurveyComment.follow_up_mail_id).is_(None))
                .where(col(SurveyComment.handled_at).is_(None))
                .where(col(SurveyComment.created_at) >= since)
                .where(wanted(rule.notify))
                .order_by(col(SurveyComment.created_at), col(SurveyComment.id))
                .limit(CLAIM_LIMIT)
            )
        )
        if not items:
            return 0
        immediate = rule.delivery == "immediate"
        for group in [[item] for item in items] if immediate else [items]:
            composed = (
                follow_up_mail.one_item(agency, group[0], public_base_url)
                if immediate
                else follow_up_mail.digest(agency, group, public_base_url)
            )
            mail = FollowUpMail(
                agency=agency.id,
                kind=ITEM if immediate else DIGEST,
                items=len(group),
                subject=composed.subject,
                body=composed.body,
                created_at=utcnow(),
            )
            session.add(mail)
            session.flush()  # gives the mail its id
            claimed = session.execute(
                update(SurveyComment)
                .where(col(SurveyComment.id).in_([item.id for item in group]))
                .where(col(SurveyComment.follow_up_mail_id).is_(None))
                .values(follow_up_mail_id=mail.id)
            )
            if _rows(claimed) != len(group):  # another attempt claimed some meanwhile
                session.rollback()
                return 0
        session.commit()
        return len(items)


@dataclass
class Sending:
    mails_sent: int = 0
    items_mailed: int = 0
    error: str = ""  # why the mail that did not go did not
    notes: list[str] = field(default_factory=list)


def send_pending(
    db: Database,
    agency: AgencyConfig,
    mailer: Mailer,
    now: Callable[[], datetime] = utcnow,
) -> Sending:
    """Send the agency's pending mails, oldest first, over one SMTP session, to the
    recipients its file names now. Stops at the first mail the server does not take:
    the rest wait for the next run with it."""
    outcome = Sending()
    recipients = list(agency.follow_up.recipients)
    with db.session() as session:
        waiting = [
            mail_id
            for mail_id in session.exec(
                select(FollowUpMail.id)
                .where(col(FollowUpMail.agency) == agency.id)
                .where(col(FollowUpMail.status) == PENDING)
                .order_by(col(FollowUpMail.id))
            )
            if mail_id is not None
        ]
    if not waiting:
        return outcome
    try:
        with mailer.connected() as smtp:
            for mail_id in waiting:
                mail = _lease(db, mail_id, now())
                if mail is None:  # sent meanwhile, or another attempt is sending it
                    continue
                try:
                    message = follow_up_mail.message(mail, agency, mailer.sender, recipients)
                    refused = smtp.send_message(message)
                except OSError:
                    _release(db, mail_id)
                    raise
                accepted = [r for r in recipients if r not in refused]
                problem = _refusals(refused)
                _mark_sent(db, mail_id, accepted, problem, now())
                outcome.mails_sent += 1
                outcome.items_mailed += mail.items
                if problem:
                    outcome.notes.append(f"mail {mail_id}: {problem}")
    except OSError as error:  # smtplib's errors are OSErrors, as are refused connections
        outcome.error = _describe(error)
        _note_failure(db, waiting, outcome.error)
    return outcome


def withdraw_pending(db: Database, agency_id: str) -> int:
    """The agency turned follow-up off: its mails not sent yet never go (their items
    stay in the inbox, as every item does)."""
    with db.session() as session:
        withdrawn = session.execute(
            update(FollowUpMail)
            .where(col(FollowUpMail.agency) == agency_id)
            .where(col(FollowUpMail.status) == PENDING)
            .values(status=WITHDRAWN, sending_until=None)
        )
        session.commit()
        return _rows(withdrawn)


def pending_mails(db: Database, agency_id: str) -> int:
    with db.session() as session:
        return int(
            session.exec(
                select(func.count())
                .select_from(FollowUpMail)
                .where(col(FollowUpMail.agency) == agency_id)
                .where(col(FollowUpMail.status) == PENDING)
            ).one()
        )


def mails_of(db: Database, mail_ids: Sequence[int]) -> dict[int, FollowUpMail]:
    """The mails of some inbox items, by id (for the inbox to show what went)."""
    if not mail_ids:
        return {}
    with db.session() as session:
        found = session.exec(select(FollowUpMail).where(col(FollowUpMail.id).in_(mail_ids)))
        return {mail.id: mail for mail in found if mail.id is not None}


def _lease(db: Database, mail_id: int, now: datetime) -> FollowUpMail | None:
    """Hold a pending mail for this send (compare-and-set): None if it is sent, or held
    by a send still within its lease."""
    with db.session() as session:
        held = session.execute(
            update(FollowUpMail)
            .where(col(FollowUpMail.id) == mail_id)
            .where(col(FollowUpMail.status) == PENDING)
            .where(
                or_(
                    col(FollowUpMail.sending_until).is_(None),
                    col(FollowUpMail.sending_until) < now,
                )
            )
            .values(sending_until=now + LEASE, attempts=col(FollowUpMail.attempts) + 1)
        )
        session.commit()
        if _rows(held) != 1:
            return None
        return session.get(FollowUpMail, mail_id)


def _release(db: Database, mail_id: int) -> None:
    with db.session() as session:
        session.execute(
            update(FollowUpMail).where(col(FollowUpMail.id) == mail_id).values(sending_until=None)
        )
        session.commit()


def _mark_sent(
    db: Database, mail_id: int, accepted: list[str], problem: str, now: datetime
) -> None:
    with db.session() as session:
        session.execute(
            update(FollowUpMail)
            .where(col(FollowUpMail.id) == mail_id)
            .values(
                status=SENT,
                sent_at=now,
                sent_to=", ".join(accepted),
                sending_until=None,
                last_error=problem or None,
            )
        )
        session.commit()


def _note_failure(db: Database, mail_ids: list[int], error: str) -> None:
    """Every mail still waiting says why (the server is the same for all of them)."""
    with db.session() as session:
        session.execute(
            update(FollowUpMail)
            .where(col(FollowUpMail.id).in_(mail_ids))
            .where(col(FollowUpMail.status) == PENDING)
            .values(last_error=error)
        )
        session.commit()


def _refusals(refused: dict[str, tuple[int, bytes]]) -> str:
    """Recipients the server refused while it accepted the mail for the others."""
    if not refused:
        return ""
    parts = [
        f"{address} ({code} {reply.decode(errors='replace')})"
        for address, (code, reply) in sorted(refused.items())
    ]
    return f"refused: {', '.join(parts)}"[:_ERROR_LENGTH]


def _describe(error: OSError) -> str:
    return f"{type(error).__name__}: {error}"[:_ERROR_LENGTH]


def _rows(result: Any) -> int:
    return int(result.rowcount or 0)
