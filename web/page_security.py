"""What keeps the resident pages safe: a limit on token guessing, the survey form's
anti-forgery token, and the headers every page is sent with."""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

# Tokens in page URLs must not leak through Referer or caches; pages need no scripts.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    # same-origin, not no-referrer: with no-referrer a browser posts the form with
    # "Origin: null", which cannot be told from a cross-site post.
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex, nofollow",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}


class GuessLimiter:
    """Counts each client's misses (unknown or expired tokens) over a sliding window; a
    client with too many is refused every token page until its misses age out.

    A 128-bit token cannot be guessed anyway: this keeps scanners from trying, and keeps
    them cheap. In memory, per process (behind a proxy, run uvicorn with
    --forwarded-allow-ips so the client address is the resident's, not the proxy's)."""

    def __init__(
        self,
        max_misses: int = 20,
        window_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 100_000,
    ) -> None:
        self.max_misses = max_misses
        self.window = window_seconds
        self._clock = clock
        self._max_clients = max_clients
        self._misses: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> int | None:
        """Seconds until `client` may try again, or None if it may now."""
        with self._lock:
            misses = self._recent(client)
            if misses is None or len(misses) < self.max_misses:
                return None
            return max(1, math.ceil(misses[0] + self.window - self._clock()))

    def miss(self, client: str) -> None:
        with self._lock:
            misses = self._recent(client)
            if misses is None:
                if len(self._misses) >= self._max_clients:
                    self._forget_idle()
                misses = self._misses[client] = deque()
            misses.append(self._clock())

    def _recent(self, client: str) -> deque[float] | None:
        misses = self._misses.get(client)
        if misses is None:
            return None
        cutoff = self._clock() - self.window
        while misses and misses[0] <= cutoff:
            misses.popleft()
        return misses

    def _forget_idle(self) -> None:
        cutoff = self._clock() - self.window
        for client in [c for c, m in self._misses.items() if not m or m[-1] <= cutoff]:
            del self._misses[client]


class FormProtection:
    """Double-submit protection against cross-site posts: a random value in a SameSite
    cookie and, in the form, its HMAC bound to the survey link. A post from another site
    has neither the cookie nor a way to compute the field."""

    COOKIE = "callerloop_form"

    def __init__(self, secret: bytes, public_base_url: str) -> None:
        self._secret = secret or secrets.token_bytes(32)
        base = urlsplit(public_base_url)
        self.public_origin = f"{base.scheme}://{base.netloc}"
        self.secure_cookie = base.scheme == "https"

    @staticmethod
    def new_cookie_value() -> str:
        return secrets.token_urlsafe(16)

    def cookie_of(self, request: Request) -> str:
        """The form cookie the browser holds, or a new one to set with the form."""
        return request.cookies.get(self.COOKIE) or self.new_cookie_value()

    def set_cookie(self, response: Response, cookie_value: str, path: str) -> None:
        """The cookie the form's token is bound to, for the pages under `path` only."""
        response.set_cookie(
            self.COOKIE,
            cookie_value,
            httponly=True,
            samesite="lax",
            secure=self.secure_cookie,
            path=path,
        )

    def is_genuine_post(self, request: Request, fields: dict[str, str], binding: str) -> bool:
        """`is_genuine` for a posted form: its cookie, token field and origin."""
        return self.is_genuine(
            request.cookies.get(self.COOKIE),
            fields.get("form_token"),
            binding,
            request.headers.get("origin"),
            f"{request.url.scheme}://{request.url.netloc}",
        )

    def form_token(self, cookie_value: str, token_hash: str) -> str:
        message = f"survey-form:{cookie_value}:{token_hash}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def is_genuine(
        self,
        cookie_value: str | None,
        form_token: str | None,
        token_hash: str,
        origin: str | None,
        own_origin: str,
    ) -> bool:
        if origin is not None and origin not in (own_origin, self.public_origin):
            return False
        if not cookie_value or not form_token:
            return False
        return hmac.compare_digest(self.form_token(cookie_value, token_hash), form_token)
