"""Error types that cross from activities into the workflow, named as data (the
workflow names them as non-retryable; the activities raise them)."""

from __future__ import annotations

from enum import StrEnum

# ApplicationError types; the workflow's retry policies name them as non-retryable.
PERMANENT_SMS_ERROR = "PermanentSmsError"
UNKNOWN_AGENCY = "UnknownAgency"


class SmsFailure(StrEnum):
    """Why a provider permanently refused a text, and so what the call must do next."""

    OPTED_OUT = "opted_out"  # the recipient opted out at the carrier or provider
    NUMBER_UNUSABLE = "number_unusable"  # invalid, landline, unreachable: stop texting it
    REJECTED = "rejected"  # this message only: the next one may go through
