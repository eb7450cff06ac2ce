"""What each Twilio error means for callerloop, as data.

Codes come from Twilio's error dictionary (https://www.twilio.com/docs/api/errors/<code>).
The same table serves API errors (raised by `messages.create`) and delivery errors (the
`ErrorCode` of a status callback, e.g. 30006).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

Outcome = Literal["opted_out", "number_unusable", "retry", "failed"]


@dataclass(frozen=True)
class TwilioErrorRule:
    outcome: Outcome
    description: str


ERROR_RULES: Mapping[int, TwilioErrorRule] = MappingProxyType(
    {
        21610: TwilioErrorRule("opted_out", "recipient replied STOP; blocked until START"),
        21211: TwilioErrorRule("number_unusable", "invalid 'To' phone number"),
        21265: TwilioErrorRule("number_unusable", "'To' number is a short code"),
        21268: TwilioErrorRule("number_unusable", "'To' number is a premium-rate number"),
        21614: TwilioErrorRule("number_unusable", "'To' number is not a valid mobile number"),
        21635: TwilioErrorRule("number_unusable", "'To' number is a landline"),
        30006: TwilioErrorRule("number_unusable", "landline or unreachable carrier"),
        20429: TwilioErrorRule("retry", "too many concurrent requests; never processed"),
        # Geo permissions are account configuration, fixed in the Console, so this one
        # message fails but the number stays usable.
        21408: TwilioErrorRule("failed", "destination region not enabled (Geo Permissions)"),
    }
)

# For responses whose code is not in ERROR_RULES (or that have none).
STATUS_RULES: Mapping[int, TwilioErrorRule] = MappingProxyType(
    {
        429: TwilioErrorRule("retry", "throttled (HTTP 429); never processed"),
        # Wrong account SID or auth token (code 20003): nothing was sent, so retrying with
        # backoff loses nothing and succeeds once an operator fixes the settings.
        401: TwilioErrorRule("retry", "credentials rejected (HTTP 401)"),
    }
)
SERVER_ERROR = TwilioErrorRule("retry", "Twilio server error (HTTP 5xx)")
UNKNOWN_ERROR = TwilioErrorRule("failed", "unmapped Twilio error: this message fails")


def classify(status: int, code: int | None) -> TwilioErrorRule:
    """The rule for an error response: by its code, else its HTTP status, else failed."""
    by_code = ERROR_RULES.get(code) if code is not None else None
    by_status = STATUS_RULES.get(status) or (SERVER_ERROR if status >= 500 else None)
    return by_code or by_status or UNKNOWN_ERROR
