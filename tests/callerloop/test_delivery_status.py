"""Delivery receipts move an outbox row forward only, whatever order they arrive in."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st
from sqlmodel import col, select

from callerloop.core.db import Database, OutboxMessage
from callerloop.messaging.delivery_status import (
    STATUS_ORDER,
    apply_delivery_status,
    moves_forward,
    replaceable_by,
)
from tests.factories import outbox_row

_sids = itertools.count(1)


def row_of(db: Database, provider_id: str) -> OutboxMessage:
    with db.session() as session:
        return session.exec(
            select(OutboxMessage).where(col(OutboxMessage.provider_id) == provider_id)
        ).one()


def test_statuses_move_forward_and_a_late_sent_is_ignored(database: Database) -> None:
    sid = outbox_row(database, "queued")
    assert apply_delivery_status(database, sid, "sent", None)
    assert apply_delivery_status(database, sid, "delivered", None)
    assert not apply_delivery_status(database, sid, "sent", None)
    assert not apply_delivery_status(database, sid, "queued", None)
    assert not apply_delivery_status(database, sid, "delivered", None)  # a repeat changes nothing
    assert row_of(database, sid).status == "delivered"


def test_a_failure_is_final_and_keeps_its_error_code(database: Database) -> None:
    sid = outbox_row(database, "sent")
    assert apply_delivery_status(database, sid, "undelivered", "30006")
    assert not apply_delivery_status(database, sid, "delivered", None)
    assert not apply_delivery_status(database, sid, "failed", "30008")
    row = row_of(database, sid)
    assert (row.status, row.error_code) == ("undelivered", "30006")


def test_delivered_is_not_undone_but_may_be_read(database: Database) -> None:
    sid = outbox_row(database, "sent")
    assert apply_delivery_status(database, sid, "delivered", None)
    assert not apply_delivery_status(database, sid, "undelivered", "30003")
    assert apply_delivery_status(database, sid, "read", None)
    assert row_of(database, sid).status == "read"


def test_a_send_of_unknown_outcome_learns_it_from_the_receipt(database: Database) -> None:
    sid = outbox_row(database, "unknown")
    assert apply_delivery_status(database, sid, "delivered", None)


def test_unknown_and_inbound_statuses_are_ignored(database: Database) -> None:
    sid = outbox_row(database, "queued")
    assert not apply_delivery_status(database, sid, "teleported", None)
    assert not apply_delivery_status(database, sid, "received", None)
    assert row_of(database, sid).status == "queued"


def test_an_unknown_message_changes_nothing(database: Database) -> None:
    sid = outbox_row(database, "queued")
    assert not apply_delivery_status(database, "SM" + "0" * 32, "delivered", None)
    assert row_of(database, sid).status == "queued"


def test_status_names_are_case_insensitive(database: Database) -> None:
    sid = outbox_row(database, "queued")
    assert apply_delivery_status(database, sid, " Delivered ", None)
    assert row_of(database, sid).status == "delivered"


def test_replaceable_by_matches_moves_forward() -> None:
    for new in STATUS_ORDER:
        assert replaceable_by(new) == {c for c in STATUS_ORDER if moves_forward(c, new)}


@given(st.lists(st.sampled_from(sorted(STATUS_ORDER)), max_size=12))
def test_any_order_of_receipts_never_goes_back(statuses: list[str]) -> None:
    current = "queued"
    for new in statuses:
        before = STATUS_ORDER[current]
        if moves_forward(current, new):
            assert STATUS_ORDER[new].rank > before.rank and not before.final
            current = new
        assert STATUS_ORDER[current].rank >= before.rank
        if before.final:
            assert STATUS_ORDER[current] == before
