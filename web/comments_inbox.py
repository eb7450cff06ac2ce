"""The supervisors' comments inbox (`/dashboard/comments`): survey comments and low scores
to follow up, newest first, filtered by agency, dates, low scores and what is not handled
yet; each item has its own page (`/dashboard/comments/<id>`, the link of the follow-up
mail) and a "Mark handled" form (sign-in and a genuine form required; who and when is
kept, and in the audit log). Every view is in the audit log."""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations.

from collections.abc import Callable, Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import col, select
from starlette.concurrency import run_in_threadpool

from callerloop.core import audit
from callerloop.core.agency_config import AgencyConfig
from callerloop.core.db import Database, SurveyComment
from callerloop.staff.follow_up import mails_of, wanted
from callerloop.staff.follow_up_mail import INBOX_PATH, inbox_item_path, is_low
from callerloop.staff.inbox import item_target, mark_handled
from callerloop.survey.responses import LOW_SCORE
from web.dashboard_data import FilterError, Filters, parse_filters
from web.staff_auth import StaffAuth, StaffUser
from web.staff_pages import STAFF_HEADERS

MAX_COMMENTS = 500
MAX_FORM_BYTES = 4096
GONE = (
    "This item is not in the inbox: it may have been deleted after the agency's retention period."
)
Page = Callable[..., Response]  # (template, request, status_code=200, **context)


def comments_inbox_router(
    db: Database, agencies: Mapping[str, AgencyConfig], auth: StaffAuth, page: Page
) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def inbox_page(
        request: Request,
        user: StaffUser,
        status_code: int = 200,
        items: list[SurveyComment] | None = None,
        **context: Any,
    ) -> Response:
        found = items or []
        mails = mails_of(db, [i.follow_up_mail_id for i in found if i.follow_up_mail_id])
        return page(
            "comments.html",
            request,
            status_code,
            user=user,
            comments=found,
            mails=mails,
            low_score=float(LOW_SCORE),
            is_low=is_low,
            back=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
            **context,
        )

    @router.get(INBOX_PATH)
    async def comments(request: Request) -> Response:
        user = await run_in_threadpool(auth.current, request)
        if user is None:
            return auth.sign_in_first(request)
        try:
            filters = parse_filters(dict(request.query_params), agencies)
        except FilterError as error:
            return await run_in_threadpool(inbox_page, request, user, 400, error=str(error))
        low = request.query_params.get("low") == "1"
        unhandled = request.query_params.get("unhandled") == "1"
        found = await run_in_threadpool(_comments, db, filters, low, unhandled)
        detail = (
            f"{len(found)} comment(s); {filters.query() or 'all'}"
            f"{'; low scores' if low else ''}{'; unhandled' if unhandled else ''}"
        )
        await run_in_threadpool(
            audit.record, db, "comments view", filters.agency or "all agencies", detail,
            actor=user.username, source="web",
        )  # fmt: skip
        return await run_in_threadpool(
            inbox_page, request, user, items=found, low=low, unhandled=unhandled
        )

    @router.get(INBOX_PATH + "/{item_id}")
    async def comment(item_id: str, request: Request) -> Response:
        user = await run_in_threadpool(auth.current, request)
        if user is None:
            return auth.sign_in_first(request)
        item = await run_in_threadpool(_item, db, item_id)
        if item is None or item.id is None:
            return await run_in_threadpool(inbox_page, request, user, 404, one=True, problem=GONE)
        await run_in_threadpool(
            audit.record, db, "comment view", item_target(item.id), item.agency,
            actor=user.username, source="web",
        )  # fmt: skip
        return await run_in_threadpool(inbox_page, request, user, items=[item], one=True)

    @router.post(INBOX_PATH + "/{item_id}/handled")
    async def handled(item_id: str, request: Request) -> Response:
        user = await run_in_threadpool(auth.current, request)
        if user is None:
            return auth.sign_in_first(request)
        if int(request.headers.get("content-length") or 0) > MAX_FORM_BYTES:
            return Response("form too large", status_code=413, headers=STAFF_HEADERS)
        form = await request.form()
        token, back = form.get("form_token"), form.get("back")
        if not auth.genuine_post(request, user, token if isinstance(token, str) else None):
            problem = "The form expired. Please try again."
            item = await run_in_threadpool(_item, db, item_id)
            items = [item] if item else []
            return await run_in_threadpool(
                inbox_page, request, user, 403, items=items, one=True, problem=problem
            )
        number = _item_number(item_id)
        outcome = None
        if number is not None:
            outcome = await run_in_threadpool(mark_handled, db, number, user.username)
        if number is None or outcome is None:
            return await run_in_threadpool(inbox_page, request, user, 404, one=True, problem=GONE)
        target = _safe_back(back if isinstance(back, str) else None, number)
        return RedirectResponse(target, status_code=303, headers=STAFF_HEADERS)

    return router


def _item_number(item_id: str) -> int | None:
    return int(item_id) if item_id.isascii() and item_id.isdigit() and len(item_id) < 19 else None


def _item(db: Database, item_id: str) -> SurveyComment | None:
    number = _item_number(item_id)
    if number is None:
        return None
    with db.session() as session:
        return session.get(SurveyComment, number)


def _safe_back(target: str | None, item_id: int) -> str:
    """Back to the inbox page the form was on (its filters kept), never elsewhere."""
    if (
        not target
        or not target.startswith(INBOX_PATH)
        or "//" in target
        or any(c in target for c in "\\#\r\n")
    ):
        return inbox_item_path(item_id)
    return f"{target}#item-{item_id}"


def _comments(db: Database, filters: Filters, low: bool, unhandled: bool) -> list[SurveyComment]:
    statement = select(SurveyComment)
    if filters.agency is not None:
        statement = statement.where(col(SurveyComment.agency) == filters.agency)
    if (since := filters.since()) is not None:
        statement = statement.where(col(SurveyComment.created_at) >= since)
    if (until := filters.until()) is not None:
        statement = statement.where(col(SurveyComment.created_at) < until)
    if low:  # in the inbox for an answer of LOW_SCORE or less, as the follow-up mails say
        statement = statement.where(wanted("low_score"))
    if unhandled:
        statement = statement.where(col(SurveyComment.handled_at).is_(None))
    statement = statement.order_by(col(SurveyComment.created_at).desc()).limit(MAX_COMMENTS)
    with db.session() as session:
        return list(session.exec(statement))
