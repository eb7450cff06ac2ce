"""Only Twilio may call the webhooks: every request carries `X-Twilio-Signature`, an HMAC
of the URL Twilio called and the form fields, keyed by the account's auth token.

The URL is rebuilt from the configured public base URL, not from the request: behind a
TLS-terminating proxy the app sees `http://internal:8000/…` while Twilio signed
`https://callerloop.example.gov/…`.
"""

from __future__ import annotations

from collections.abc import Mapping

import structlog
from fastapi import HTTPException, Request, status
from starlette.datastructures import ImmutableMultiDict
from twilio.request_validator import (
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)

log = structlog.get_logger("web.twilio_signature")

TwilioForm = Mapping[str, str]


class TwilioSignatureCheck:
    """A FastAPI dependency: the request's form fields once the signature holds, else 403
    (before anything is read from them or changed)."""

    def __init__(self, public_base_url: str, auth_token: str) -> None:
        self._base_url = public_base_url.rstrip("/")
        # An empty token would let anyone sign: refuse every request instead.
        self._validator = RequestValidator(auth_token) if auth_token else None
        if self._validator is None:
            log.error("no Twilio auth token configured: every webhook request is refused")

    def signed_url(self, request: Request) -> str:
        """The URL Twilio called: public base + path (+ the query string as sent)."""
        query = request.url.query
        return f"{self._base_url}{request.url.path}" + (f"?{query}" if query else "")

    async def __call__(self, request: Request) -> TwilioForm:
        form = await request.form()
        fields = ImmutableMultiDict([(k, v) for k, v in form.multi_items() if isinstance(v, str)])
        if self._is_signed(request, fields):
            return dict(fields)
        log.warning("webhook signature rejected", path=request.url.path)
        raise HTTPException(status.HTTP_403_FORBIDDEN, "invalid or missing X-Twilio-Signature")

    def _is_signed(self, request: Request, fields: ImmutableMultiDict[str, str]) -> bool:
        signature = request.headers.get(SIGNATURE_HEADER)
        if not signature or self._validator is None:
            return False
        # Accounts that sign with HMAC-SHA256 say so in a header; absent, it is SHA-1.
        algorithm = get_signature_algorithm(request.headers.get(SIGNATURE_SETTINGS_HEADER))
        valid: bool = self._validator.validate(
            self.signed_url(request), fields, signature, algorithm
        )
        return valid
