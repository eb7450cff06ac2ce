"""The pages residents open from their texts: `/s/{token}` (status) and `/survey/{token}`.

Server-rendered HTML, no JavaScript. A token is scoped to one call and one purpose and
expires; an unknown, expired or other-purpose token, or one for a call stopped for safety,
gets the same plain 404 as a token that never existed, and a client that keeps missing is
refused for a while (429).
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations.

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_time, get_timezone_name
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from callerloop.core.agency_config import AgencyConfig, SurveyQuestion
from callerloop.core.db import CallRecord, Database, LinkToken, utcnow
from callerloop.messaging.links import STATUS, SURVEY, find_link
from callerloop.survey.responses import (
    NOT_APPLICABLE,
    SCORES,
    StoreOutcome,
    already_answered,
    store_answers,
)
from web.call_status import PlainStatus, StatusView, blocked_for_safety, status_view
from web.i18n import N_, PageRenderer, choose_language
from web.page_security import PAGE_HEADERS, FormProtection, GuessLimiter
from web.survey import (
    NOT_APPLICABLE_LABEL,
    NOT_APPLICABLE_LABELS,
    QUESTION_TEXTS,
    SCALE_LABELS,
    Answers,
    field_name,
    read_answers,
)

STATUS_WORDS = {
    PlainStatus.RECEIVED: N_("Received"),
    PlainStatus.ASSIGNED: N_("Officer assigned"),
    PlainStatus.DELAYED: N_("Delayed"),
    PlainStatus.CLOSED: N_("Closed"),
}
STATUS_EXPLANATIONS = {
    PlainStatus.RECEIVED: N_("We have your call. An officer will be assigned to it."),
    PlainStatus.ASSIGNED: N_("An officer has been assigned to your call."),
    PlainStatus.DELAYED: N_(
        "Officers are busy with urgent calls, so our response will take longer than usual."
    ),
    PlainStatus.CLOSED: N_("Your call has been closed. Thank you for contacting us."),
}
WHEN = N_("%(date)s, %(time)s (%(zone)s)")
MAX_FORM_BYTES = 64 * 1024


@dataclass(frozen=True)
class Option:
    value: str
    label: str


@dataclass(frozen=True)
class QuestionView:
    id: str
    field: str
    kind: str
    text: str
    text_language: str | None  # set when the agency's text is not in the page's language
    required: bool
    options: list[Option]
    value: str
    error: str | None


def resident_pages_router(
    db: Database,
    agencies: Mapping[str, AgencyConfig],
    renderer: PageRenderer,
    limiter: GuessLimiter,
    forms: FormProtection,
) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def page(template: str, language: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        html = renderer.render(template, language, **context)
        return HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)

    def refused(request: Request) -> Response | None:
        """429 while this client is over its guessing limit."""
        retry_after = limiter.retry_after(client_address(request))
        if retry_after is None:
            return None
        language = choose_language(
            request.query_params.get("lang"), None, request.headers.get("accept-language")
        )
        response = page("too_many.html", language, 429)
        response.headers["Retry-After"] = str(retry_after)
        return response

    def not_found(request: Request) -> HTMLResponse:
        limiter.miss(client_address(request))
        language = choose_language(
            request.query_params.get("lang"), None, request.headers.get("accept-language")
        )
        return page("not_found.html", language, 404)

    def language_for(request: Request, call_language: str | None) -> str:
        return choose_language(
            request.query_params.get("lang"), call_language, request.headers.get("accept-language")
        )

    def lookup(
        token: str, purpose: str, request: Request
    ) -> tuple[LinkToken, CallRecord, AgencyConfig] | Response:
        """The link's call and agency; or the page that refuses it (a client over its
        guessing limit, or an unknown, expired or dark link)."""
        if (refusal := refused(request)) is not None:
            return refusal
        found = find(token, purpose)
        return not_found(request) if found is None else found

    def find(token: str, purpose: str) -> tuple[LinkToken, CallRecord, AgencyConfig] | None:
        with db.session() as session:
            link = find_link(session, token, purpose, utcnow())
            if link is None or blocked_for_safety(session, link.workflow_id):
                return None
            call = session.get(CallRecord, link.workflow_id)
        agency = agencies.get(call.agency) if call else None
        if link is None or call is None or agency is None:
            return None
        return link, call, agency

    @router.get("/s/{token}", response_class=HTMLResponse)
    def status_page(token: str, request: Request) -> Response:
        found = lookup(token, STATUS, request)
        if isinstance(found, Response):
            return found
        link, _, agency = found
        with db.session() as session:
            view = status_view(session, link.workflow_id)
        if view is None:
            return not_found(request)
        language = language_for(request, view.call_language)
        return page(
            "status.html",
            language,
            agency=agency.agency,
            view=view,
            status_word=renderer.gettext(language, STATUS_WORDS[view.status]),
            explanation=renderer.gettext(language, STATUS_EXPLANATIONS[view.status]),
            last_update=_when(renderer, view, agency, language),
        )

    @router.get("/survey/{token}", response_class=HTMLResponse)
    def survey_page(token: str, request: Request) -> Response:
        found = lookup(token, SURVEY, request)
        if isinstance(found, Response):
            return found
        link, call, agency = found
        language = language_for(request, call.language)
        with db.session() as session:
            answered = already_answered(session, link.token_hash)
        if answered:
            return page("survey_answered.html", language, agency=agency.agency)
        return survey_form(request, link, agency, language, Answers())

    def survey_form(
        request: Request,
        link: LinkToken,
        agency: AgencyConfig,
        language: str,
        answers: Answers,
        status_code: int = 200,
    ) -> HTMLResponse:
        cookie = forms.cookie_of(request)
        questions = [
            _question_view(renderer, agency, question, language, answers)
            for question in agency.survey.questions
        ]
        response = page(
            "survey.html",
            language,
            status_code,
            agency=agency.agency,
            questions=questions,
            errors=[q for q in questions if q.error],
            form_token=forms.form_token(cookie, link.token_hash),
            submission=secrets.token_urlsafe(16),
            comment_max_length=agency.survey.comment_max_length,
        )
        forms.set_cookie(response, cookie, "/survey/")
        return response

    @router.post("/survey/{token}", response_class=HTMLResponse)
    async def survey_answer(token: str, request: Request) -> Response:
        found = await run_in_threadpool(lookup, token, SURVEY, request)
        if isinstance(found, Response):
            return found
        link, call, agency = found
        if int(request.headers.get("content-length") or 0) > MAX_FORM_BYTES:
            return Response("form too large", status_code=413)
        form = await request.form()
        fields = {key: value for key, value in form.items() if isinstance(value, str)}
        language = choose_language(fields.get("lang"), call.language, None)
        if not forms.is_genuine_post(request, fields, link.token_hash):
            return page("form_expired.html", language, 403, agency=agency.agency)
        answers = read_answers(agency, fields)
        if answers.errors:
            return survey_form(request, link, agency, language, answers, 422)
        submission = fields.get("submission") or secrets.token_urlsafe(16)

        def store() -> StoreOutcome:
            with db.session() as session:
                return store_answers(
                    session,
                    agency=agency,
                    call=call,
                    token_hash=link.token_hash,
                    submission=submission,
                    values=answers.values,
                    page_language=language,
                )

        outcome = await run_in_threadpool(store)
        if outcome == StoreOutcome.ALREADY_ANSWERED:
            return page("survey_answered.html", language, 409, agency=agency.agency)
        # Post/redirect/get: reloading the thank-you page does not post again.
        return RedirectResponse(
            f"/survey/{token}/thanks?lang={language}", status_code=303, headers=PAGE_HEADERS
        )

    @router.get("/survey/{token}/thanks", response_class=HTMLResponse)
    def survey_thanks(token: str, request: Request) -> Response:
        found = lookup(token, SURVEY, request)
        if isinstance(found, Response):
            return found
        link, call, agency = found
        with db.session() as session:
            answered = already_answered(session, link.token_hash)
        if not answered:
            return RedirectResponse(f"/survey/{token}", status_code=303, headers=PAGE_HEADERS)
        language = language_for(request, call.language)
        return page("survey_thanks.html", language, agency=agency.agency)

    return router


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _when(renderer: PageRenderer, view: StatusView, agency: AgencyConfig, language: str) -> str:
    if view.last_update is None:
        return ""
    zone = ZoneInfo(agency.agency.time_zone)
    moment: datetime = view.last_update.astimezone(zone)
    return renderer.gettext(language, WHEN) % {
        "date": format_date(moment, "long", locale=language),
        "time": format_time(moment, "short", tzinfo=zone, locale=language),
        "zone": get_timezone_name(zone, "long", locale=language),
    }


def _question_view(
    renderer: PageRenderer,
    agency: AgencyConfig,
    question: SurveyQuestion,
    language: str,
    answers: Answers,
) -> QuestionView:
    def translated(message: str) -> str:
        return renderer.gettext(language, message)

    text_language = None
    if question.text:
        own = question.text.get(language)
        if own is None:  # the agency did not write this question in the page's language
            text_language = agency.agency.default_language
            own = question.text[text_language]
        text = own
    else:
        text = translated(QUESTION_TEXTS[question.id])
    options: list[Option] = []
    if question.kind != "comment":
        labels = SCALE_LABELS[question.kind]
        options = [Option(score, translated(labels[score])) for score in SCORES]
        if question.not_applicable:
            label = NOT_APPLICABLE_LABELS.get(question.id, NOT_APPLICABLE_LABEL)
            options.append(Option(NOT_APPLICABLE, translated(label)))
    error = answers.errors.get(question.id)
    return QuestionView(
        id=question.id,
        field=field_name(question),
        kind=question.kind,
        text=text,
        text_language=text_language,
        required=question.is_required,
        options=options,
        value=answers.values.get(question.id, ""),
        error=(translated(error) % answers.error_arguments.get(question.id, {})) if error else None,
    )
