"""A local Twilio stand-in: the Messages and Lookup endpoints the real `twilio` client calls,
on 127.0.0.1, for tests and for `make run` with CALLERLOOP_SMS_PROVIDER=twilio.

    with TwilioStandIn() as twilio:
        provider = TwilioProvider(twilio.account_sid, twilio.auth_token,
                                  api_base_url=twilio.base_url,
                                  lookups_base_url=twilio.base_url)

It checks basic auth (401, code 20003), answers sends with a Message resource shaped like
Twilio's (201), lists and fetches messages (for reconciling a send whose answer was lost),
returns Twilio error bodies on demand (`fail_next`, `set_error_for`), answers late on demand
(`stall_next`), records every request, and posts signed status callbacks
(`send_status_callback`, `auto_callbacks`; `drop_next_callbacks` loses some, as a
webhook outage would).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import requests
from twilio.request_validator import (  # type: ignore[import-untyped, unused-ignore]
    RequestValidator,
)

from callerloop.core.sms_encoding import measure

logger = logging.getLogger(__name__)

DEFAULT_ACCOUNT_SID = "AC" + "0" * 32
DEFAULT_AUTH_TOKEN = "standin-auth-token"
SERVICE_SENDER = "+15005550006"  # the "from" of texts sent through a Messaging Service
E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
MESSAGES_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages\.json$")
MESSAGE_PATH = re.compile(
    r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages/(?P<sid>SM\w+)\.json$"
)
LOOKUP_PATH = re.compile(r"^/v2/PhoneNumbers/(?P<number>[^/]+)$")

# Messages Twilio gives for the codes tests use most; any other code gets a generic one.
ERROR_MESSAGES = {
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    21211: "The 'To' number is not a valid phone number.",
    21602: "Message body is required.",
    21603: "A 'From' or 'MessagingServiceSid' parameter is required to send a message.",
    21604: "A 'To' phone number is required.",
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number is not a valid mobile number",
    21635: "'To' number cannot be a landline",
}

Endpoint = Literal["messages", "lookups"]


@dataclass(frozen=True)
class TwilioError:
    code: int
    status: int = 400
    message: str | None = None

    def body(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message or ERROR_MESSAGES.get(self.code, f"Error {self.code}"),
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }


@dataclass
class _Outage:
    until: float  # time.monotonic()
    at_least: int  # requests still to refuse, whatever the time
    error: TwilioError


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    fields: dict[str, str]  # the form of a POST, the query of a GET
    status: int  # what the stand-in answered


@dataclass
class StandInMessage:
    sid: str
    to: str
    body: str
    sender: str | None  # From, if given
    messaging_service_sid: str | None
    status_callback: str | None
    validity_period: int | None
    status: str
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class SignedCallback:
    url: str
    params: dict[str, str]
    signature: str  # the X-Twilio-Signature header


@dataclass(frozen=True)
class CallbackResult:
    message_sid: str
    status: str
    http_status: int | None  # None when the webhook could not be reached
    error: str | None = None


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]
    delay: float = 0.0  # seconds to wait before answering


class TwilioStandIn:
    def __init__(
        self,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        auto_callbacks: bool = False,
        callback_delay: float = 0.2,
    ) -> None:
        self.account_sid, self.auth_token = account_sid, auth_token
        self.auto_callbacks, self.callback_delay = auto_callbacks, callback_delay
        self.requests: list[RecordedRequest] = []
        self.messages: list[StandInMessage] = []  # accepted sends only
        self.callbacks: list[CallbackResult] = []
        self._failures: dict[Endpoint, deque[TwilioError]] = {
            "messages": deque(),
            "lookups": deque(),
        }
        self._number_errors: dict[str, TwilioError] = {}
        self._outages: dict[Endpoint, _Outage] = {}
        self._line_types: dict[str, str | None] = {}
        self._stalls: deque[float] = deque()
        self.stalls_started = 0  # stalled answers begun (a test may act while one waits)
        self._callbacks_to_drop = 0
        self.callbacks_dropped = 0
        self._lock = threading.Lock()
        self._callback_threads: list[threading.Thread] = []
        self._server = _Server((host, port), self)
        self._thread: threading.Thread | None = None

    # Lifecycle

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> TwilioStandIn:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # how long stop() waits for the loop to notice
            name="twilio-standin",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, after waiting (a few seconds at most) for pending callbacks."""
        if self._thread is not None:
            self._server.shutdown()  # blocks until serve_forever returns: only if started
            self._thread.join(timeout=5)
        self._server.server_close()
        with self._lock:
            callback_threads = list(self._callback_threads)
        for thread in callback_threads:
            thread.join(timeout=5)

    def __enter__(self) -> TwilioStandIn:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # Programming the stand-in

    def fail_next(
        self,
        code: int = 21610,
        status: int = 400,
        times: int = 1,
        *,
        endpoint: Endpoint = "messages",
        message: str | None = None,
    ) -> None:
        """The next `times` requests to `endpoint` get this Twilio error."""
        with self._lock:
            self._failures[endpoint].extend([TwilioError(code, status, message)] * times)

    def fail_for(
        self,
        seconds: float,
        code: int = 20500,
        status: int = 500,
        *,
        at_least: int = 1,
        endpoint: Endpoint = "messages",
        message: str | None = None,
    ) -> None:
        """Every request to `endpoint` gets this error for the next `seconds`, and until
        `at_least` requests got it: an outage, where `fail_next` fails a count of requests."""
        with self._lock:
            self._outages[endpoint] = _Outage(
                time.monotonic() + seconds, at_least, TwilioError(code, status, message)
            )

    def set_error_for(
        self, number: str, code: int, status: int = 400, message: str | None = None
    ) -> None:
        """Every send to `number` gets this error, until `clear_error_for`."""
        with self._lock:
            self._number_errors[number] = TwilioError(code, status, message)

    def clear_error_for(self, number: str) -> None:
        with self._lock:
            self._number_errors.pop(number, None)

    def set_line_type(self, number: str, line_type: str | None) -> None:
        """Lookup's `line_type_intelligence.type` for `number` (default "mobile"); None
        answers `line_type_intelligence: null`, as Twilio does when it has no data."""
        with self._lock:
            self._line_types[number] = line_type

    def stall_next(self, seconds: float) -> None:
        """The next send is accepted and recorded, but answered `seconds` late: a client
        that times out cannot know that Twilio has the text."""
        with self._lock:
            self._stalls.append(seconds)

    def drop_next_callbacks(self, count: int = 1) -> None:
        """The next `count` status callbacks are never posted (the message still takes the
        new status), as when Twilio gives up on a webhook that is down."""
        with self._lock:
            self._callbacks_to_drop += count

    # Looking at what happened

    def message(self, sid: str) -> StandInMessage:
        with self._lock:
            return self._find(sid)

    def _find(self, sid: str) -> StandInMessage:
        for message in self.messages:
            if message.sid == sid:
                return message
        raise KeyError(f"the stand-in has no message {sid}")

    def requests_to(self, endpoint: Endpoint) -> list[RecordedRequest]:
        prefix = "/v2/PhoneNumbers/" if endpoint == "lookups" else "/2010-04-01/"
        with self._lock:
            return [request for request in self.requests if request.path.startswith(prefix)]

    # Status callbacks

    def signed_status_callback(
        self, message_sid: str, status: str, error_code: int | None = None
    ) -> SignedCallback:
        """The form Twilio would post to the message's StatusCallback, and its signature."""
        message = self.message(message_sid)
        if not message.status_callback:
            raise ValueError(f"message {message_sid} was sent without a StatusCallback")
        params = {
            "MessageSid": message.sid,
            "SmsSid": message.sid,
            "MessageStatus": status,
            "SmsStatus": status,
            "AccountSid": self.account_sid,
            "To": message.to,
            "From": message.sender or SERVICE_SENDER,
            "ApiVersion": "2010-04-01",
        }
        if message.messaging_service_sid:
            params["MessagingServiceSid"] = message.messaging_service_sid
        if error_code is not None:
            params["ErrorCode"] = str(error_code)
        url = message.status_callback
        signature = RequestValidator(self.auth_token).compute_signature(url, params)
        return SignedCallback(url, params, str(signature))

    def signed_inbound(
        self, url: str, from_number: str, to_number: str, body: str
    ) -> SignedCallback:
        """The form Twilio would post to an agency's inbound webhook (`url`, as configured
        at Twilio) for a text a resident sent, and its signature: a new MessageSid each time."""
        return signed_inbound(url, self.account_sid, self.auth_token, from_number, to_number, body)

    def send_status_callback(
        self, message_sid: str, status: str, error_code: int | None = None
    ) -> int | None:
        """Post a signed status callback; returns the webhook's HTTP status (None if it
        could not be reached). The message takes the new status either way."""
        callback = self.signed_status_callback(message_sid, status, error_code)
        with self._lock:
            self._find(message_sid).status = status
            if self._callbacks_to_drop:
                self._callbacks_to_drop -= 1
                self.callbacks_dropped += 1
                self.callbacks.append(CallbackResult(message_sid, status, None, "dropped"))
                return None
        try:
            response = requests.post(
                callback.url,
                data=callback.params,
                headers={"X-Twilio-Signature": callback.signature},
                timeout=10,
            )
            result = CallbackResult(message_sid, status, response.status_code)
        except requests.RequestException as error:
            result = CallbackResult(message_sid, status, None, str(error))
        with self._lock:
            self.callbacks.append(result)
        return result.http_status

    def _schedule_callbacks(self, message: StandInMessage) -> None:
        """Twilio posts no callback for the first status: sent, then delivered."""

        def post_in_order() -> None:
            for status in ("sent", "delivered"):
                time.sleep(self.callback_delay)
                self.send_status_callback(message.sid, status)

        thread = threading.Thread(target=post_in_order, name=f"callbacks-{message.sid}")
        with self._lock:
            self._callback_threads.append(thread)
        thread.start()

    # Answering requests (called from the server's threads)

    def respond(
        self, method: str, path: str, fields: dict[str, str], authorization: str | None
    ) -> Reply:
        reply = self._route(method, path, fields, authorization)
        with self._lock:
            self.requests.append(RecordedRequest(method, path, fields, reply.status))
        return reply

    def _route(
        self, method: str, path: str, fields: dict[str, str], authorization: str | None
    ) -> Reply:
        if basic_credentials(authorization) != (self.account_sid, self.auth_token):
            return error_reply(TwilioError(20003, 401))
        if method == "POST" and (match := MESSAGES_PATH.match(path)):
            return self._for_account(match["account"]) or self._create_message(fields)
        if method == "GET" and (match := MESSAGES_PATH.match(path)):
            return self._for_account(match["account"]) or self._list_messages(fields)
        if method == "GET" and (match := MESSAGE_PATH.match(path)):
            return self._for_account(match["account"]) or self._fetch_message(match["sid"])
        if method == "GET" and (match := LOOKUP_PATH.match(path)):
            return self._lookup(unquote(match["number"]), fields)
        return error_reply(TwilioError(20404, 404))

    def _for_account(self, account_sid: str) -> Reply | None:
        return None if account_sid == self.account_sid else error_reply(TwilioError(20404, 404))

    def _create_message(self, form: dict[str, str]) -> Reply:
        error = invalid_message(form) or self._programmed_error("messages", form.get("To"))
        if error is not None:
            return error_reply(error)
        message = StandInMessage(
            sid=f"SM{uuid.uuid4().hex}",
            to=form["To"],
            body=form["Body"],
            sender=form.get("From"),
            messaging_service_sid=form.get("MessagingServiceSid"),
            status_callback=form.get("StatusCallback"),
            validity_period=int(form["ValidityPeriod"]) if "ValidityPeriod" in form else None,
            # A Messaging Service first "accepts" the text, then picks a sender and queues it.
            status="queued" if "From" in form else "accepted",
        )
        with self._lock:
            self.messages.append(message)
            delay = self._stalls.popleft() if self._stalls else 0.0
            if delay:
                self.stalls_started += 1
        if self.auto_callbacks and message.status_callback:
            self._schedule_callbacks(message)
        return Reply(201, self.message_resource(message), delay)

    def _fetch_message(self, sid: str) -> Reply:
        try:
            message = self.message(sid)
        except KeyError:
            return error_reply(TwilioError(20404, 404))
        return Reply(200, self.message_resource(message))

    def _list_messages(self, query: dict[str, str]) -> Reply:
        """Messages newest first, filtered by To and From, a page at a time (PageSize up
        to 1000, Page from 0), with Twilio's paging fields."""
        try:
            size = min(max(int(query.get("PageSize", "50")), 1), 1000)
            page = max(int(query.get("Page", "0")), 0)
        except ValueError:
            return error_reply(TwilioError(20001, message="PageSize and Page must be integers"))
        with self._lock:
            matching = [
                m
                for m in reversed(self.messages)
                if query.get("To", m.to) == m.to
                and query.get("From", m.sender or SERVICE_SENDER) == (m.sender or SERVICE_SENDER)
            ]
        start = page * size
        chunk = matching[start : start + size]
        uri = f"/2010-04-01/Accounts/{self.account_sid}/Messages.json"
        filters: dict[str, str] = {k: query[k] for k in ("To", "From") if k in query}

        def page_uri(number: int) -> str:
            params: dict[str, str | int] = {"PageSize": size, "Page": number, **filters}
            return f"{uri}?{urlencode(params)}"

        more = start + size < len(matching)
        return Reply(
            200,
            {
                "messages": [self.message_resource(m) for m in chunk],
                "end": start + len(chunk) - 1,
                "first_page_uri": page_uri(0),
                "next_page_uri": page_uri(page + 1) if more else None,
                "previous_page_uri": page_uri(page - 1) if page else None,
                "page": page,
                "page_size": size,
                "start": start,
                "uri": page_uri(page),
            },
        )

    def _programmed_error(self, endpoint: Endpoint, number: str | None) -> TwilioError | None:
        with self._lock:
            outage = self._outages.get(endpoint)
            if outage is not None and (time.monotonic() < outage.until or outage.at_least > 0):
                outage.at_least -= 1
                return outage.error
            if self._failures[endpoint]:
                return self._failures[endpoint].popleft()
            if endpoint == "messages" and number is not None:
                return self._number_errors.get(number)
        return None

    def _lookup(self, number: str, query: dict[str, str]) -> Reply:
        error = self._programmed_error("lookups", number)
        if error is not None:
            return error_reply(error)
        valid = bool(E164.match(number))
        fields = query.get("Fields", "").split(",")
        with self._lock:
            line_type = self._line_types.get(number, "mobile")
        intelligence = (
            {
                "carrier_name": "Stand-in Wireless",
                "error_code": None,
                "mobile_country_code": "310",
                "mobile_network_code": "456",
                "type": line_type,
            }
            if valid and "line_type_intelligence" in fields and line_type is not None
            else None
        )
        return Reply(200, lookup_resource(number, valid, intelligence))

    def message_resource(self, message: StandInMessage) -> dict[str, Any]:
        """The Message resource as Twilio's API returns it (api.v2010.account.message)."""
        created = format_datetime(message.created_at)
        uri = f"/2010-04-01/Accounts/{self.account_sid}/Messages/{message.sid}"
        return {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": message.body,
            "date_created": created,
            "date_sent": None,
            "date_updated": created,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": message.sender,
            "messaging_service_sid": message.messaging_service_sid,
            "num_media": "0",
            "num_segments": str(measure(message.body).segments),
            "price": None,
            "price_unit": "USD",
            "sid": message.sid,
            "status": message.status,
            "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": message.to,
            "uri": f"{uri}.json",
        }


def signed_inbound(
    url: str,
    account_sid: str,
    auth_token: str,
    from_number: str,
    to_number: str,
    body: str,
    messaging_service_sid: str | None = None,
) -> SignedCallback:
    """The form Twilio posts to an inbound webhook (`url`, as configured at Twilio) for a
    text a resident sent, signed with the account's auth token: a new MessageSid each time.
    A text to a number of a Messaging Service's pool carries the service's sid too."""
    sid = f"SM{uuid.uuid4().hex}"
    params = {
        "MessageSid": sid,
        "SmsMessageSid": sid,
        "SmsSid": sid,
        "SmsStatus": "received",
        "AccountSid": account_sid,
        "From": from_number,
        "To": to_number,
        "Body": body,
        "NumMedia": "0",
        "NumSegments": str(measure(body).segments),
        "ApiVersion": "2010-04-01",
    }
    if messaging_service_sid:
        params["MessagingServiceSid"] = messaging_service_sid
    signature = RequestValidator(auth_token).compute_signature(url, params)
    return SignedCallback(url, params, str(signature))


def invalid_message(form: dict[str, str]) -> TwilioError | None:
    """The checks Twilio makes before accepting a text, with its codes."""
    if not form.get("To"):
        return TwilioError(21604)
    if not E164.match(form["To"]):
        return TwilioError(
            21211, message=f"The 'To' number {form['To']} is not a valid phone number."
        )
    if not (form.get("From") or form.get("MessagingServiceSid")):
        return TwilioError(21603)
    if not form.get("Body"):
        return TwilioError(21602)
    return None


def lookup_resource(
    number: str, valid: bool, intelligence: dict[str, Any] | None
) -> dict[str, Any]:
    """The Lookup v2 PhoneNumber resource, with only line type intelligence filled in."""
    return {
        "calling_country_code": "1" if number.startswith("+1") else None,
        "country_code": "US" if number.startswith("+1") else None,
        "phone_number": number,
        "national_format": number,
        "valid": valid,
        "validation_errors": [] if valid else ["NOT_A_NUMBER"],
        "caller_name": None,
        "sim_swap": None,
        "call_forwarding": None,
        "line_status": None,
        "line_type_intelligence": intelligence,
        "identity_match": None,
        "reassigned_number": None,
        "sms_pumping_risk": None,
        "phone_number_quality_score": None,
        "pre_fill": None,
        "url": f"https://lookups.twilio.com/v2/PhoneNumbers/{number}",
    }


def error_reply(error: TwilioError) -> Reply:
    return Reply(error.status, error.body())


def basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(encoded).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user, password


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], standin: TwilioStandIn) -> None:
        super().__init__(address, _Handler)
        self.standin = standin

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Mostly a client that timed out before a stalled answer: not worth a traceback.
        logger.debug("stand-in connection error from %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, like Twilio

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        self._answer("GET", url.path, dict(parse_qsl(url.query, keep_blank_values=True)))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = self.rfile.read(length).decode()
        self._answer(
            "POST", urlsplit(self.path).path, dict(parse_qsl(form, keep_blank_values=True))
        )

    def _answer(self, method: str, path: str, fields: dict[str, str]) -> None:
        reply = self.server.standin.respond(method, path, fields, self.headers.get("Authorization"))
        if reply.delay:
            time.sleep(reply.delay)
        payload = json.dumps(reply.body).encode()
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if reply.status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="Twilio API"')
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("stand-in: " + format, *args)
