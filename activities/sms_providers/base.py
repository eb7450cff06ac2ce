"""The one interface every SMS provider adapter implements."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from callerloop.core.logging import mask_phone_numbers
from workflows.activity_errors import SmsFailure
from workflows.model import LineType


@dataclass(frozen=True)
class OutgoingText:
    to: str
    body: str
    sender_number: str | None
    messaging_service_sid: str | None
    validity_seconds: int
    reference: str  # the outbox row, echoed in provider logs and callbacks
    status_callback: str | None = None  # where the provider posts delivery receipts


@dataclass(frozen=True)
class ProviderReceipt:
    provider_id: str
    status: str  # provider's first status, e.g. "queued" or "sent"


# Provider errors quote the number they refused (Twilio's 21211: "The 'To' number
# +15551234567 is not a valid phone number."). Their text goes into Temporal failures, logs
# and the outbox's error_message: it is masked here, once, for every provider.


class PermanentProviderError(Exception):
    """The provider refused this text for good; retrying cannot help."""

    def __init__(self, failure: SmsFailure, code: str, message: str) -> None:
        message = mask_phone_numbers(message)
        super().__init__(f"{failure.value} ({code}): {message}")
        self.failure, self.code, self.message = failure, code, message


class TransientProviderError(Exception):
    """The provider certainly did not accept the text (throttled, down): safe to retry."""

    def __init__(self, code: str, message: str) -> None:
        message = mask_phone_numbers(message)
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


class SmsProvider(Protocol):
    name: str

    def send(self, text: OutgoingText) -> ProviderReceipt:
        """Hand the text to the provider. Raises PermanentProviderError or
        TransientProviderError; any other exception means the outcome is unknown."""
        ...

    def lookup_line_type(self, phone: str) -> LineType:
        """What kind of line the number is (mobile, landline, VoIP), or UNKNOWN."""
        ...


@runtime_checkable
class MessageRecords(Protocol):
    """A provider that keeps records of the messages it accepted, so a send whose outcome
    is unknown (the worker died mid-send, the answer timed out) can be looked up instead
    of guessed. A provider without records leaves such a send `unknown`, never resent."""

    @property
    def in_flight_seconds(self) -> float:
        """How long after a send attempt was cut off its request may still reach the
        provider (the client's timeout and a margin): before that, "no such message"
        proves nothing."""
        ...

    def find_sent(self, text: OutgoingText, since: datetime) -> ProviderReceipt | None:
        """The provider's message with this text's recipient and body created since
        `since`, or None when it certainly has none. Raises TransientProviderError when
        it cannot tell now."""
        ...
