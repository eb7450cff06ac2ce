"""Signing staff in and out of the dashboard.

The session cookie carries a random token (only its hash is stored), is HttpOnly,
SameSite=Lax, limited to /dashboard, and Secure when the public base URL is https. Every
form (sign-in, sign-out) carries an anti-forgery token. A wrong password and an unknown
user get the same answer; a client or username with too many failures is refused for a
while (429). Every sign-in, failed or not, is in the audit log.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations.

from dataclasses import dataclass
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from callerloop.core import audit
from callerloop.core.db import Database
from callerloop.staff.users import (
    SESSION_LIFETIME,
    end_session,
    session_id,
    session_user,
    start_session,
    verify_password,
)
from web.page_security import FormProtection, GuessLimiter
from web.resident_pages import client_address
from web.staff_pages import STAFF_HEADERS, StaffRenderer

DASHBOARD = "/dashboard"
LOGIN_PATH = f"{DASHBOARD}/login"
LOGOUT_PATH = f"{DASHBOARD}/logout"
SESSION_COOKIE = "callerloop_staff"
LOGIN_COOKIE = "callerloop_login"  # the sign-in form's anti-forgery pair
LOGIN_CONTEXT = "staff-login"
MAX_FORM_BYTES = 4096
WRONG = "Wrong username or password."


@dataclass(frozen=True)
class StaffUser:
    username: str
    csrf_token: str  # for the forms on the page (sign out)


class StaffAuth:
    """Who is signed in, and the sign-in and sign-out endpoints."""

    def __init__(
        self,
        db: Database,
        forms: FormProtection,
        renderer: StaffRenderer,
        client_limiter: GuessLimiter | None = None,
        user_limiter: GuessLimiter | None = None,
    ) -> None:
        self.db = db
        self.forms = forms
        self.renderer = renderer
        # 10 failures in 15 minutes from one address, or for one username, then a pause.
        self.client_limiter = client_limiter or GuessLimiter(max_misses=10, window_seconds=900)
        self.user_limiter = user_limiter or GuessLimiter(max_misses=10, window_seconds=900)

    def current(self, request: Request) -> StaffUser | None:
        token = request.cookies.get(SESSION_COOKIE)
        username = session_user(self.db, token)
        if username is None or token is None:
            return None
        return StaffUser(username, self.forms.form_token(token, session_id(token)))

    def sign_in_first(self, request: Request) -> RedirectResponse:
        """Where an anonymous visitor goes: the sign-in page, then back here."""
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(
            f"{LOGIN_PATH}?next={quote(target, safe='')}", status_code=303, headers=STAFF_HEADERS
        )

    def genuine_post(self, request: Request, user: StaffUser, form_token: str | None) -> bool:
        token = request.cookies.get(SESSION_COOKIE) or ""
        return self.forms.is_genuine(
            token, form_token, session_id(token), request.headers.get("origin"), _own(request)
        )

    def router(self) -> APIRouter:
        router = APIRouter(include_in_schema=False)

        def login_page(request: Request, status_code: int = 200, **context: object) -> Response:
            cookie = request.cookies.get(LOGIN_COOKIE) or self.forms.new_cookie_value()
            response = self.renderer.page(
                "login.html",
                status_code,
                form_token=self.forms.form_token(cookie, LOGIN_CONTEXT),
                next=_safe_next(request.query_params.get("next")),
                **context,
            )
            response.set_cookie(
                LOGIN_COOKIE,
                cookie,
                httponly=True,
                samesite="strict",
                secure=self.forms.secure_cookie,
                path=DASHBOARD,
            )
            return response

        @router.get(LOGIN_PATH)
        def login_form(request: Request) -> Response:
            return login_page(request)

        @router.post(LOGIN_PATH)
        async def login(request: Request) -> Response:
            if int(request.headers.get("content-length") or 0) > MAX_FORM_BYTES:
                return Response("form too large", status_code=413)
            form = await request.form()
            fields = {k: v for k, v in form.items() if isinstance(v, str)}
            username = fields.get("username", "").strip().lower()
            client = client_address(request)
            if not self.forms.is_genuine(
                request.cookies.get(LOGIN_COOKIE),
                fields.get("form_token"),
                LOGIN_CONTEXT,
                request.headers.get("origin"),
                _own(request),
            ):
                return login_page(
                    request, 403, error="The form expired. Please sign in again.", username=username
                )
            wait = max(
                self.client_limiter.retry_after(client) or 0,
                self.user_limiter.retry_after(f"user:{username}") or 0,
            )
            if wait:
                response = login_page(
                    request, 429, error="Too many failed attempts. Try again later."
                )
                response.headers["Retry-After"] = str(wait)
                return response
            password = fields.get("password", "")
            if not await run_in_threadpool(verify_password, self.db, username, password):
                self.client_limiter.miss(client)
                self.user_limiter.miss(f"user:{username}")
                await run_in_threadpool(
                    audit.record, self.db, "login failed", username or "(none)", client,
                    actor=username or "(none)", source="web",
                )  # fmt: skip
                return login_page(request, 401, error=WRONG, username=username)
            token = await run_in_threadpool(start_session, self.db, username)
            await run_in_threadpool(
                audit.record, self.db, "login", username, client, actor=username, source="web"
            )
            response = RedirectResponse(
                _safe_next(fields.get("next")), status_code=303, headers=STAFF_HEADERS
            )
            response.set_cookie(
                SESSION_COOKIE,
                token,
                max_age=int(SESSION_LIFETIME.total_seconds()),
                httponly=True,
                samesite="lax",
                secure=self.forms.secure_cookie,
                path=DASHBOARD,
            )
            response.delete_cookie(LOGIN_COOKIE, path=DASHBOARD)
            return response

        @router.post(LOGOUT_PATH)
        async def logout(request: Request) -> Response:
            user = await run_in_threadpool(self.current, request)
            form = await request.form()
            form_token = form.get("form_token")
            if user is not None and not self.genuine_post(
                request, user, form_token if isinstance(form_token, str) else None
            ):  # forged (another site's form): the session stays
                return RedirectResponse(DASHBOARD, status_code=303, headers=STAFF_HEADERS)
            if user is not None:
                await run_in_threadpool(end_session, self.db, request.cookies.get(SESSION_COOKIE))
                await run_in_threadpool(
                    audit.record, self.db, "logout", user.username,
                    actor=user.username, source="web",
                )  # fmt: skip
            response = RedirectResponse(LOGIN_PATH, status_code=303, headers=STAFF_HEADERS)
            response.delete_cookie(SESSION_COOKIE, path=DASHBOARD)
            return response

        return router


def _own(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def _safe_next(target: str | None) -> str:
    """Only a dashboard path: never an open redirect to another site."""
    if target and target.startswith(DASHBOARD) and "//" not in target and "\\" not in target:
        return target
    return DASHBOARD
