"""Dead letters: CAD request bodies that were refused or could not be delivered, kept whole
with the reason, so an operator can fix and resubmit them (`callerloop deadletter`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlmodel import col, select

from callerloop.core.db import Database, DeadLetter, utcnow

OPEN = "open"
DELIVERED = "delivered"

# Validates a body and delivers its events; raises when either fails.
Deliver = Callable[[str], Awaitable[object]]


class DeadLetterNotOpen(LookupError):
    """No such dead letter, or it was delivered or discarded already."""


def keep(db: Database, endpoint: str, agency: str | None, reason: str, body: str) -> int:
    if "\x00" in body:
        # PostgreSQL text cannot hold NUL: keep the rest, and say so (no JSON has one raw).
        body = body.replace("\x00", "\ufffd")
        reason = f"{reason} (NUL characters kept as U+FFFD)"
    row = DeadLetter(
        received_at=utcnow(), endpoint=endpoint, agency=agency, reason=reason, body=body
    )
    with db.session() as session:
        session.add(row)
        session.commit()
        assert row.id is not None
        return row.id


def list_dead_letters(db: Database, *, include_resolved: bool = False) -> list[DeadLetter]:
    statement = select(DeadLetter).order_by(col(DeadLetter.id))
    if not include_resolved:
        statement = statement.where(col(DeadLetter.status) == OPEN)
    with db.session() as session:
        return list(session.exec(statement))


def show(db: Database, dead_letter_id: int) -> DeadLetter | None:
    with db.session() as session:
        return session.get(DeadLetter, dead_letter_id)


async def retry(
    db: Database, dead_letter_id: int, deliver: Deliver, fixed_body: str | None = None
) -> DeadLetter:
    """Deliver an open dead letter again (or its fixed body). Delivered: the row is closed
    and keeps the body that went through. Failed again: it stays open with the new reason."""
    row = show(db, dead_letter_id)
    if row is None or row.status != OPEN:
        state = "does not exist" if row is None else f"is {row.status}"
        raise DeadLetterNotOpen(f"dead letter {dead_letter_id} {state}")
    body = fixed_body if fixed_body is not None else row.body
    try:
        await deliver(body)
    except Exception as error:  # any failure leaves the row for the next attempt
        row.reason = str(error) or type(error).__name__
    else:
        row.body, row.status, row.resolved_at = body, DELIVERED, utcnow()
    with db.session() as session:
        session.add(row)
        session.commit()
    return row
