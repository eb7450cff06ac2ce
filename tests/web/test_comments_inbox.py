"""The comments inbox over HTTP: an item marked handled through its form keeps who and
when (shown, and in the audit log), a forged or anonymous form changes nothing, "Not
handled yet" filters, the link a follow-up mail carries opens the item after sign-in,
and each item shows whether the supervisors were mailed."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update
from sqlmodel import col

from callerloop.core import audit
from callerloop.core.agency_config import AgencyConfig
from callerloop.core.db import Database, FollowUpMail, SurveyComment, utcnow
from callerloop.staff.follow_up import claim_new_items
from callerloop.staff.follow_up_mail import inbox_item_path, inbox_item_url
from callerloop.staff.users import add_user
from tests.callerloop.test_follow_up import (
    COMMENT_ONLY,
    LOW_AND_COMMENT,
    LOW_ONLY,
    follow_up_agency,
    item_of,
)
from tests.web.test_dashboard import (  # noqa: F401 (quick_hashes: an autouse fixture)
    BASE,
    PASSWORD,
    USER,
    client_for,
    form_token,
    quick_hashes,
    sign_in,
)


@pytest.fixture
def agency() -> AgencyConfig:
    return follow_up_agency()


@pytest.fixture
async def signed_in(database: Database, agency: AgencyConfig) -> AsyncIterator[httpx.AsyncClient]:
    add_user(database, USER, PASSWORD)
    async with client_for(database, agency) as client:
        assert (await sign_in(client)).status_code == 303
        yield client


def item_row(db: Database, item_id: int) -> SurveyComment:
    with db.session() as session:
        item = session.get(SurveyComment, item_id)
        assert item is not None
        return item


def audited(db: Database, action: str) -> list[tuple[str, str, str, str]]:
    return [(e.actor, e.target, e.detail, e.source) for e in audit.latest(db) if e.action == action]


def mark_form(html: str, item_id: int) -> bool:
    return f'action="/dashboard/comments/{item_id}/handled"' in html


async def test_marking_an_item_handled_keeps_who_and_when_and_is_audited(
    signed_in: httpx.AsyncClient, database: Database, agency: AgencyConfig
) -> None:
    item = item_of(database, agency, "25-004001", LOW_AND_COMMENT)
    other = item_of(database, agency, "25-004002", LOW_ONLY)
    inbox = await signed_in.get("/dashboard/comments", params={"unhandled": "1"})
    assert mark_form(inbox.text, item) and mark_form(inbox.text, other)
    assert "2 comments not handled yet, newest first." in inbox.text
    back = "/dashboard/comments?unhandled=1"

    marked = await signed_in.post(
        f"/dashboard/comments/{item}/handled",
        data={"form_token": form_token(inbox.text), "back": back},
    )

    assert marked.status_code == 303
    assert marked.headers["location"] == f"{back}#item-{item}"
    row = item_row(database, item)
    assert row.handled_by == USER and row.handled_at is not None
    assert utcnow() - row.handled_at < timedelta(minutes=1)
    assert audited(database, "comment handled") == [
        (USER, f"survey comment {item}", "testville", "web")
    ]
    unhandled = await signed_in.get(marked.headers["location"])
    assert "1 comment not handled yet" in unhandled.text
    assert f'id="item-{other}"' in unhandled.text and f'id="item-{item}"' not in unhandled.text
    everything = await signed_in.get("/dashboard/comments")
    shown = re.search(rf'id="item-{item}".*?</li>', everything.text, re.DOTALL)
    assert shown is not None and not mark_form(shown.group(), item)
    assert f"by {USER}, <time" in shown.group()
    assert row.handled_at.strftime("%Y-%m-%d %H:%M UTC") in shown.group()

    # Marked again (a second tab): the first mark stays, no second audit entry.
    again = await signed_in.post(
        f"/dashboard/comments/{item}/handled",
        data={"form_token": form_token(inbox.text), "back": back},
    )
    assert again.status_code == 303
    assert item_row(database, item).handled_at == row.handled_at
    assert len(audited(database, "comment handled")) == 1


async def test_a_forged_or_anonymous_mark_changes_nothing(
    signed_in: httpx.AsyncClient, database: Database, agency: AgencyConfig
) -> None:
    item = item_of(database, agency, "25-005001", LOW_ONLY)
    path = f"/dashboard/comments/{item}/handled"
    token = form_token((await signed_in.get("/dashboard/comments")).text)

    no_token = await signed_in.post(path, data={"back": "/dashboard/comments"})
    cross_site = await signed_in.post(
        path, data={"form_token": token}, headers={"Origin": "https://attacker.example"}
    )
    assert no_token.status_code == cross_site.status_code == 403
    assert "The form expired. Please try again." in no_token.text
    async with client_for(database, agency) as anonymous:
        stranger = await anonymous.post(path, data={"form_token": token})
    assert stranger.status_code == 303 and "/dashboard/login" in stranger.headers["location"]
    assert item_row(database, item).handled_at is None
    assert audited(database, "comment handled") == []

    # A genuine form whose `back` points elsewhere goes to the item, not off the site.
    away = await signed_in.post(
        path, data={"form_token": token, "back": "https://attacker.example/"}
    )
    assert away.headers["location"] == inbox_item_path(item)
    missing = await signed_in.post("/dashboard/comments/999999/handled", data={"form_token": token})
    assert missing.status_code == 404


async def test_the_mailed_link_opens_the_item_after_sign_in(
    database: Database, agency: AgencyConfig
) -> None:
    add_user(database, USER, PASSWORD)
    item = item_of(database, agency, "25-006001", LOW_AND_COMMENT)
    path = inbox_item_url(BASE, item).removeprefix(BASE)
    async with client_for(database, agency) as client:
        anonymous = await client.get(path)
        assert anonymous.status_code == 303
        assert (
            anonymous.headers["location"]
            == f"/dashboard/login?next=%2Fdashboard%2Fcomments%2F{item}"
        )
        signed = await sign_in(client, next_=path)
        assert signed.headers["location"] == path
        page = await client.get(path)
        assert page.status_code == 200
        assert "Nobody came back." in page.text and "C25-006001" in page.text
        assert mark_form(page.text, item)
        for gone in ("/dashboard/comments/999999", "/dashboard/comments/not-a-number"):
            missing = await client.get(gone)
            assert missing.status_code == 404
            gone_text = html.unescape(missing.text)
            assert "may have been deleted after the agency's retention period" in gone_text
    assert audited(database, "comment view") == [
        (USER, f"survey comment {item}", "testville", "web")
    ]


async def test_each_item_shows_whether_the_supervisors_were_mailed(
    signed_in: httpx.AsyncClient, database: Database, agency: AgencyConfig
) -> None:
    since = utcnow() - timedelta(seconds=1)
    sent = item_of(database, agency, "25-007001", LOW_ONLY)
    waiting = item_of(database, agency, "25-007002", LOW_ONLY)
    claim_new_items(database, agency, since, BASE)
    not_mailed = item_of(database, agency, "25-007003", LOW_ONLY)
    sent_at = utcnow()
    with database.session() as session:
        [mail_id] = [
            i.follow_up_mail_id for i in [session.get(SurveyComment, sent)] if i is not None
        ]
        session.execute(
            update(FollowUpMail)
            .where(col(FollowUpMail.id) == mail_id)
            .values(status="sent", sent_at=sent_at)
        )
        session.commit()

    page = (await signed_in.get("/dashboard/comments")).text

    def mailed(item_id: int) -> str:
        found = re.search(rf'id="item-{item_id}".*?class="mailed">(.*?)</dd>', page, re.DOTALL)
        assert found is not None
        return re.sub(r"<[^>]+>", "", found.group(1))

    assert mailed(sent) == sent_at.strftime("%Y-%m-%d %H:%M UTC")
    assert mailed(waiting) == "not yet (waiting for the mail server)"
    assert mailed(not_mailed) == "\N{EN DASH}"  # as for every fact not known


async def test_low_scores_only_shows_the_items_the_mails_call_low(
    signed_in: httpx.AsyncClient, database: Database, agency: AgencyConfig
) -> None:
    """A survey without a comment is in the inbox for one answer of 2 or less, even when
    its overall answer is 4: the filter shows it, as the mail calls it a low score."""
    low_and_comment = item_of(database, agency, "25-008001", LOW_AND_COMMENT)
    low_only = item_of(database, agency, "25-008002", LOW_ONLY)
    comment_only = item_of(database, agency, "25-008003", COMMENT_ONLY)
    page = (await signed_in.get("/dashboard/comments", params={"low": "1"})).text
    assert "2 comments with a low score, newest first." in page
    for item in (low_and_comment, low_only):
        assert f'<li class="comment low" id="item-{item}">' in page
    assert f'id="item-{comment_only}"' not in page
    assert "No comment: in the inbox for an answer of 2 or less." in page
