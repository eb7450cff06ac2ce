"""The `twilio` provider: the real `twilio` client, its errors mapped through a table.

Outcomes of `send` (see `base.SmsProvider`):
- Twilio answered with an error: `twilio_errors.classify` decides. Opted out and number
  unusable are permanent for the number; throttling (429/20429), 5xx and rejected
  credentials are transient; anything else fails this one message, logged with its code.
- The connection was never made (refused, DNS, connect timeout): transient, since Twilio
  cannot have the text.
- Anything after the request may have left (read timeout, reset mid-response): propagates,
  because the outcome is unknown and a resend could text the caller twice.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import requests
from twilio.base.exceptions import (  # type: ignore[import-untyped, unused-ignore]
    TwilioRestException,
)
from twilio.http.http_client import (  # type: ignore[import-untyped, unused-ignore]
    TwilioHttpClient,
)
from twilio.http.response import Response  # type: ignore[import-untyped, unused-ignore]
from twilio.rest import Client  # type: ignore[import-untyped, unused-ignore]
from urllib3.exceptions import MaxRetryError, NewConnectionError

from activities.sms_providers.base import (
    OutgoingText,
    PermanentProviderError,
    ProviderReceipt,
    TransientProviderError,
)
from activities.sms_providers.twilio_errors import Outcome, classify
from callerloop.core.settings import Settings
from workflows.activity_errors import SmsFailure
from workflows.model import LineType

logger = logging.getLogger(__name__)

# The client logs every request and response at INFO, and a lookup URL carries the
# caller's number: give it a logger of its own that only speaks up for warnings.
_http_logger = logging.getLogger(f"{__name__}.http")
_http_logger.setLevel(logging.WARNING)

DEFAULT_TIMEOUT_SECONDS = 10.0  # the client's default is no timeout at all
# A cut-off request that reached Twilio is answered within the client's timeout; this
# margin covers the request still travelling when its attempt was cut off.
IN_FLIGHT_MARGIN_SECONDS = 5.0
# Messages to one number looked through when reconciling, newest first.
RECONCILE_PAGE_SIZE = 100
RECONCILE_LIMIT = 1000

PERMANENT_FAILURES: Mapping[Outcome, SmsFailure] = MappingProxyType(
    {
        "opted_out": SmsFailure.OPTED_OUT,
        "number_unusable": SmsFailure.NUMBER_UNUSABLE,
        "failed": SmsFailure.REJECTED,
    }
)

# Lookup v2 `line_type_intelligence.type`; every other type (tollFree, premium, pager,
# personal, unknown, …) is UNKNOWN, which callerloop does not text.
LINE_TYPES: Mapping[str, LineType] = MappingProxyType(
    {
        "mobile": LineType.MOBILE,
        "landline": LineType.LANDLINE,
        "fixedVoip": LineType.VOIP,
        "nonFixedVoip": LineType.VOIP,
    }
)

ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")


class TwilioAuthenticationError(TransientProviderError):
    """Twilio rejected the account SID or auth token. Nothing was sent, so the send is
    retried with backoff; it succeeds once an operator fixes the credentials."""


class RedirectingHttpClient(TwilioHttpClient):  # type: ignore[misc]
    """The stock HTTP client, sending requests for Twilio hosts to other base URLs (a local
    stand-in, a mock). Keys are Twilio products, the first label of the host name
    (`api` for api.twilio.com, `lookups` for lookups.twilio.com), so edge and region
    host names (api.ashburn.us1.twilio.com) are redirected too."""

    def __init__(self, redirects: Mapping[str, str], timeout: float) -> None:
        super().__init__(timeout=timeout, logger=_http_logger)
        self._redirects = {product: urlsplit(base) for product, base in redirects.items()}

    def redirect(self, url: str) -> str:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if not host.endswith(".twilio.com"):
            return url
        target = self._redirects.get(host.split(".")[0])
        if target is None:
            return url
        path = target.path.rstrip("/") + parts.path
        return urlunsplit(parts._replace(scheme=target.scheme, netloc=target.netloc, path=path))

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        return super().request(method, self.redirect(url), *args, **kwargs)


class TwilioProvider:
    name = "twilio"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        api_base_url: str | None = None,
        lookups_base_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        redirects = {
            product: base
            for product, base in (("api", api_base_url), ("lookups", lookups_base_url))
            if base
        }
        http_client = (
            RedirectingHttpClient(redirects, timeout)
            if redirects
            else TwilioHttpClient(timeout=timeout, logger=_http_logger)
        )
        self._client = Client(account_sid, auth_token, http_client=http_client)
        self.in_flight_seconds = timeout + IN_FLIGHT_MARGIN_SECONDS

    def send(self, text: OutgoingText) -> ProviderReceipt:
        try:
            message = self._client.messages.create(**message_fields(text))
        except TwilioRestException as error:
            # `from None`, here and below: the client's own exception quotes the number
            # (its message, a lookup's URL), and a cause travels with the failure and its
            # traceback into Temporal and logs. Ours carries its code and masked message.
            raise send_error(error) from None
        except requests.ConnectionError as error:
            if never_connected(error):
                raise TransientProviderError("connection", str(error)) from None
            raise  # the request may have reached Twilio: outcome unknown
        return ProviderReceipt(provider_id=str(message.sid), status=str(message.status))

    def find_sent(self, text: OutgoingText, since: datetime) -> ProviderReceipt | None:
        """Twilio's Message with this recipient (and sender) and exactly this body, created
        since `since`: the Messages list, newest first. Bodies carry the case number and,
        for links, a random token, so an exact match is this text and no other."""
        filters: dict[str, Any] = {"to": text.to}
        if not text.messaging_service_sid and text.sender_number:
            filters["from_"] = text.sender_number
        try:
            for message in self._client.messages.stream(
                **filters, page_size=RECONCILE_PAGE_SIZE, limit=RECONCILE_LIMIT
            ):
                created = cast("datetime | None", message.date_created)
                if created is not None and created < since:
                    break  # newest first: the rest are older still
                if message.body == text.body:
                    return ProviderReceipt(provider_id=str(message.sid), status=str(message.status))
        except TwilioRestException as error:
            raise retry_error(error) from None  # cannot tell now: look again later
        except requests.RequestException as error:
            raise TransientProviderError("connection", str(error)) from None
        return None

    def lookup_line_type(self, phone: str) -> LineType:
        """The line type from Lookup v2. Raises TransientProviderError when a retry can
        help (throttled, Twilio down, no connection, bad credentials); an error about the
        number itself (e.g. 404 for an impossible number) answers UNKNOWN."""
        try:
            number = self._client.lookups.v2.phone_numbers(phone).fetch(
                fields="line_type_intelligence"
            )
        except TwilioRestException as error:
            if classify(error.status, error.code).outcome == "retry":
                raise retry_error(error) from None
            logger.warning("line type lookup failed", extra={"twilio_code": error.code})
            return LineType.UNKNOWN
        except requests.RequestException as error:
            # A lookup changes nothing at Twilio, so any transport failure is safe to retry.
            raise TransientProviderError("connection", str(error)) from None
        intelligence = cast("dict[str, Any] | None", number.line_type_intelligence) or {}
        return LINE_TYPES.get(str(intelligence.get("type")), LineType.UNKNOWN)


def message_fields(text: OutgoingText) -> dict[str, Any]:
    """Arguments for `messages.create`. A Messaging Service wins over a sender number: it
    carries the agency's sender pool and Advanced Opt-Out settings."""
    fields: dict[str, Any] = {
        "to": text.to,
        "body": text.body,
        "validity_period": text.validity_seconds,
    }
    if text.status_callback:
        fields["status_callback"] = text.status_callback
    if text.messaging_service_sid:
        fields["messaging_service_sid"] = text.messaging_service_sid
    else:
        fields["from_"] = text.sender_number
    return fields


def send_error(error: TwilioRestException) -> Exception:
    rule = classify(error.status, error.code)
    if rule.outcome == "retry":
        return retry_error(error)
    code = str(error.code or error.status)
    if rule.outcome == "failed":
        logger.warning(
            "Twilio refused this text (%s)",
            rule.description,
            extra={"twilio_code": code, "http_status": error.status},
        )
    return PermanentProviderError(PERMANENT_FAILURES[rule.outcome], code, error_message(error))


def retry_error(error: TwilioRestException) -> TransientProviderError:
    code = str(error.code or error.status)
    if error.status == 401:
        logger.error("Twilio rejected the credentials", extra={"twilio_code": code})
        return TwilioAuthenticationError(
            code,
            "Twilio rejected the account SID/auth token: check CALLERLOOP_TWILIO_ACCOUNT_SID "
            "and CALLERLOOP_TWILIO_AUTH_TOKEN",
        )
    return TransientProviderError(code, error_message(error))


def error_message(error: TwilioRestException) -> str:
    return str(error.msg) or f"HTTP {error.status}"


def never_connected(error: requests.ConnectionError) -> bool:
    """True when the TCP connection was never made (refused, unknown host, connect
    timeout). A reset or an aborted response is not this: the request may have arrived."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    cause = error.args[0] if error.args else None
    return isinstance(cause, MaxRetryError) and isinstance(cause.reason, NewConnectionError)


def twilio_provider_from_settings(settings: Settings) -> TwilioProvider:
    """The provider for CALLERLOOP_SMS_PROVIDER=twilio; a clear error when the account
    is not configured, rather than a 401 on the first text."""
    account_sid = settings.twilio_account_sid
    auth_token = settings.twilio_auth_token.get_secret_value()
    missing = [
        variable
        for variable, value in (
            ("CALLERLOOP_TWILIO_ACCOUNT_SID", account_sid),
            ("CALLERLOOP_TWILIO_AUTH_TOKEN", auth_token),
        )
        if not value
    ]
    if missing:
        raise ValueError(f"the twilio SMS provider needs {' and '.join(missing)}")
    if not ACCOUNT_SID.match(account_sid):
        raise ValueError(
            "CALLERLOOP_TWILIO_ACCOUNT_SID must be an Account SID: AC and 32 hex digits"
        )
    if settings.time_scale != 1 and settings.sends_through_real_twilio:
        # `Settings` refuses this too; settings copied or changed after validation get here.
        raise ValueError(
            f"CALLERLOOP_TIME_SCALE={settings.time_scale:g} would multiply the send rate "
            "to a real Twilio account: use CALLERLOOP_TIME_SCALE=1 with Twilio"
        )
    return TwilioProvider(
        account_sid,
        auth_token,
        api_base_url=settings.twilio_api_base_url,
        lookups_base_url=settings.twilio_lookups_base_url,
    )
