"""`/never-text/{agency_id}`: a resident registers a number the agency must never text,
for every call from now on. An agency links to it from its website.

The number goes into the opt-out registry as STOP puts it there (only its keyed hash, with
the keyword `REGISTERED_ON_PAGE`), and its open calls are told as STOP tells them. Every
registration gets the same answer whatever the number's history, by the same path: the
calls are looked for and told after the answer has gone, so neither the page nor its
timing says whether a number had calls or was registered already. START texted to the
agency's number undoes it. No text confirms it: the number asked for none.

Anyone can fill the form with any number, so each client may post it
`REGISTRATIONS_PER_HOUR` times an hour; the form carries the anti-forgery token of the
survey's kind (`FormProtection`).
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations.

from collections.abc import Mapping
from typing import Any

import phonenumbers
import structlog
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from callerloop.core.agency_config import AgencyConfig
from callerloop.core.db import Database, utcnow
from callerloop.messaging.inbound import SignalCall, open_calls, signal_open_calls
from callerloop.messaging.opt_outs import REGISTERED_ON_PAGE, record_opt_out
from callerloop.messaging.phones import InvalidPhoneNumber, to_e164
from web.i18n import N_, PageRenderer, choose_language
from web.page_security import PAGE_HEADERS, FormProtection, GuessLimiter
from web.resident_pages import client_address
from workflows.model import OptOutSignal

log = structlog.get_logger("web.never_text")

REGISTRATIONS_PER_HOUR = 10
MAX_FORM_BYTES = 4 * 1024
MAX_NUMBER_LENGTH = 40  # longer than any number written with spaces and a prefix
NUMBER_MISSING = N_("Enter a phone number.")
NUMBER_INVALID = N_("This is not a valid phone number.")


def never_text_router(
    db: Database,
    agencies: Mapping[str, AgencyConfig],
    renderer: PageRenderer,
    forms: FormProtection,
    signal_call: SignalCall,
    limiter: GuessLimiter | None = None,
) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    # Every post counts, whatever it held: the limit is on registering, not on mistakes.
    posts = limiter or GuessLimiter(max_misses=REGISTRATIONS_PER_HOUR, window_seconds=3600)

    def page(template: str, language: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        html = renderer.render(template, language, **context)
        return HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)

    def page_language(request: Request) -> str:
        return choose_language(
            request.query_params.get("lang"), None, request.headers.get("accept-language")
        )

    def agency_page(
        template: str, agency: AgencyConfig, language: str, status_code: int = 200
    ) -> HTMLResponse:
        return page(
            template,
            language,
            status_code,
            agency=agency.agency,
            agency_id=agency.id,
            undo_number=undo_number(agency),
        )

    def form(
        request: Request,
        agency: AgencyConfig,
        language: str,
        number: str = "",
        error: str | None = None,
    ) -> HTMLResponse:
        cookie = forms.cookie_of(request)
        response = page(
            "never_text.html",
            language,
            422 if error else 200,
            agency=agency.agency,
            undo_number=undo_number(agency),
            example=example_number(agency.agency.phone_region),
            number=number,
            error=renderer.gettext(language, error) if error else None,
            form_token=forms.form_token(cookie, _form_binding(agency)),
        )
        forms.set_cookie(response, cookie, "/never-text/")
        return response

    @router.get("/never-text/{agency_id}", response_class=HTMLResponse)
    def never_text_form(agency_id: str, request: Request) -> Response:
        agency = agencies.get(agency_id)
        language = page_language(request)
        if agency is None:
            return page("not_found.html", language, 404)
        return form(request, agency, language)

    @router.post("/never-text/{agency_id}", response_class=HTMLResponse)
    async def register(agency_id: str, request: Request) -> Response:
        agency = agencies.get(agency_id)
        if agency is None:
            return page("not_found.html", page_language(request), 404)
        client = client_address(request)
        retry_after = posts.retry_after(client)
        if retry_after is not None:
            response = page("never_text_wait.html", page_language(request), 429)
            response.headers["Retry-After"] = str(retry_after)
            return response
        posts.miss(client)
        if int(request.headers.get("content-length") or 0) > MAX_FORM_BYTES:
            return Response("form too large", status_code=413)
        fields = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        language = choose_language(fields.get("lang"), None, request.headers.get("accept-language"))
        if not forms.is_genuine_post(request, fields, _form_binding(agency)):
            return agency_page("never_text_expired.html", agency, language, status_code=403)
        number = fields.get("phone", "").strip()[:MAX_NUMBER_LENGTH]
        phone, error = _read_number(number, agency.agency.phone_region)
        if phone is None:
            return form(request, agency, language, number, error)
        await run_in_threadpool(record_opt_out, db, agency.id, phone, REGISTERED_ON_PAGE, True)
        log.info("number registered never to be texted", agency=agency.id)
        # Post/redirect/get; the calls are told once the answer has gone (see above).
        return RedirectResponse(
            f"/never-text/{agency.id}/done?lang={language}",
            status_code=303,
            headers=PAGE_HEADERS,
            background=BackgroundTask(tell_open_calls, agency.id, phone),
        )

    @router.get("/never-text/{agency_id}/done", response_class=HTMLResponse)
    def registered(agency_id: str, request: Request) -> Response:
        agency = agencies.get(agency_id)
        language = page_language(request)
        if agency is None:
            return page("not_found.html", language, 404)
        return agency_page("never_text_done.html", agency, language)

    async def tell_open_calls(agency_id: str, phone: str) -> None:
        """As STOP does: looked for after the registry has it, so a call recorded meanwhile
        finds it itself (`record_call_then_check_opt_out`). A call that cannot be told
        still sends nothing: the send's hand-off reads the registry."""
        calls = await run_in_threadpool(open_calls, db, agency_id, phone)
        signal = OptOutSignal(phone=phone, keyword=REGISTERED_ON_PAGE, received_at=utcnow())
        try:
            await signal_open_calls(calls, signal, signal_call)
        except Exception as error:  # after the answer: nobody to tell but the log
            log.error(
                "could not tell a registered number's open calls",
                agency=agency_id,
                error=f"{type(error).__name__}: {error}",
            )

    return router


def _form_binding(agency: AgencyConfig) -> str:
    """What the form's anti-forgery token is bound to (the survey's is a link)."""
    return f"never-text:{agency.id}"


def _read_number(number: str, region: str) -> tuple[str | None, str | None]:
    """The number in E.164, or the error to show."""
    if not number:
        return None, NUMBER_MISSING
    try:
        return to_e164(number, region), None
    except InvalidPhoneNumber:
        return None, NUMBER_INVALID


def example_number(region: str) -> str:
    """A mobile number of the region as residents write it: "(201) 555-0123"."""
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    if example is None:
        return ""
    return str(phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.NATIONAL))


def undo_number(agency: AgencyConfig) -> str | None:
    """The agency's texting number to send START to, as residents write it (None when it
    texts from a Messaging Service's pool)."""
    sender = agency.agency.sender_number
    if not sender:
        return None
    number = phonenumbers.parse(sender)
    local = phonenumbers.region_code_for_number(number) == agency.agency.phone_region
    style = phonenumbers.PhoneNumberFormat
    return str(phonenumbers.format_number(number, style.NATIONAL if local else style.INTERNATIONAL))
