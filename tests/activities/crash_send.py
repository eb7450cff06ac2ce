"""One send attempt in a process of its own, which SIGKILLs itself at a chosen point.

    python -m tests.activities.crash_send DATABASE_URL STANDIN_URL CRASH_POINT [--no-records]

The send activity runs as a worker runs it (`ActivityEnvironment`), with the real twilio
client against a Twilio stand-in. CRASH_POINT is where the process dies:
`before_provider` (the outbox row is `handing_over`, the request never left),
`after_provider` (Twilio has the text, its id is not recorded), `after_record` (all done),
or `none`. On success the result is printed as JSON; a send that cannot tell its outcome
yet exits with OUTCOME_NOT_KNOWN_YET. `--no-records` hides the provider's message records,
as a provider without them would.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from dataclasses import asdict
from datetime import datetime

from temporalio.testing import ActivityEnvironment

from activities.sms_providers.base import OutgoingText, ProviderReceipt
from activities.sms_providers.twilio import TwilioProvider
from activities.texts import OutcomeNotKnownYet, TextActivities
from callerloop.db import Database
from callerloop.twilio_standin import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN
from tests.factories import make_agency
from workflows.model import LineType, SendTextInput, TextKind

CRASH_POINTS = ("before_provider", "after_provider", "after_record", "none")
OUTCOME_NOT_KNOWN_YET = 3
PROVIDER_TIMEOUT = 30.0  # a long in-flight window: "too soon" must hold while a process starts


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class CrashingProvider:
    """The twilio provider, dying just before or just after the provider call."""

    name = "twilio"

    def __init__(self, real: TwilioProvider, crash_at: str) -> None:
        self.real, self.crash_at = real, crash_at

    def send(self, text: OutgoingText) -> ProviderReceipt:
        if self.crash_at == "before_provider":
            die()
        receipt = self.real.send(text)
        if self.crash_at == "after_provider":
            die()
        return receipt

    def lookup_line_type(self, phone: str) -> LineType:
        return self.real.lookup_line_type(phone)


class CrashingProviderWithRecords(CrashingProvider):
    """The same, with Twilio's message records to reconcile with."""

    @property
    def in_flight_seconds(self) -> float:
        return self.real.in_flight_seconds

    def find_sent(self, text: OutgoingText, since: datetime) -> ProviderReceipt | None:
        return self.real.find_sent(text, since)


SEND = SendTextInput(
    workflow_id="call/testville/CRASH-1",
    agency="testville",
    incident_id="CRASH-1",
    case_number="25-099001",
    kind=TextKind.CONFIRMATION,
    language="en",
    to="+17035550142",
)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("database_url")
    parser.add_argument("standin_url")
    parser.add_argument("crash_at", choices=CRASH_POINTS)
    parser.add_argument("--no-records", action="store_true")
    args = parser.parse_args(argv)
    real = TwilioProvider(
        DEFAULT_ACCOUNT_SID,
        DEFAULT_AUTH_TOKEN,
        api_base_url=args.standin_url,
        timeout=PROVIDER_TIMEOUT,
    )
    kind = CrashingProvider if args.no_records else CrashingProviderWithRecords
    provider = kind(real, args.crash_at)
    agency = make_agency()
    db = Database(args.database_url)
    activities = TextActivities(db, {agency.id: agency}, provider, "https://callerloop.test")
    try:
        result = ActivityEnvironment().run(activities.send_text, SEND)
    except OutcomeNotKnownYet as error:
        print(error, file=sys.stderr)
        return OUTCOME_NOT_KNOWN_YET
    if args.crash_at == "after_record":
        die()
    print(json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
