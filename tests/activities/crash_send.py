"""One send attempt in a process of its own, which SIGKILLs itself at a chosen point.

    python -m tests.activities.crash_send DATABASE_URL STANDIN_URL CRASH_POINT [--no-records]
    python -m tests.activities.crash_send --fork-server

The send activity runs as a worker runs it (`ActivityEnvironment`), with the real twilio
client against a Twilio stand-in. CRASH_POINT is where the process dies:
`before_provider` (the outbox row is `handing_over`, the request never left),
`after_provider` (Twilio has the text, its id is not recorded), `after_record` (all done),
or `none`. On success the result is printed as JSON; a send that cannot tell its outcome
yet exits with OUTCOME_NOT_KNOWN_YET. `--no-records` hides the provider's message records,
as a provider without them would.

`--fork-server` imports all that once (seconds), then for each line of arguments read
from stdin forks a fresh process that runs that one attempt and dies or exits as above,
and answers with a line of JSON: its exit code (-9 when SIGKILLed), stdout and stderr.
Each attempt is still a process of its own: a child of this one, which has only imported
modules (no thread, no connection, no send), never of an earlier attempt, so nothing an
attempt held in memory reaches the next; only the start-up is saved.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
from dataclasses import asdict
from datetime import datetime

from temporalio.testing import ActivityEnvironment

from activities.sms_providers.base import OutgoingText, ProviderReceipt
from activities.sms_providers.twilio import TwilioProvider
from activities.texts import OutcomeNotKnownYet, TextActivities
from callerloop.core.db import Database
from devtools.twilio_standin import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN
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


def attempt_in_child(argv: list[str]) -> dict[str, object]:
    """Fork; the child runs `main(argv)` with its output in files; wait for it."""
    assert threading.active_count() == 1, "forking with threads running"
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: one attempt, then gone without the parent's clean-up
            code = 70
            try:
                os.dup2(out.fileno(), 1)
                os.dup2(err.fileno(), 2)
                code = main(argv)
            except BaseException as error:  # reported as a crashed process would be
                print(f"{type(error).__name__}: {error}", file=sys.stderr)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        out.seek(0)
        err.seek(0)
        return {
            "returncode": os.waitstatus_to_exitcode(status),
            "stdout": out.read().decode(),
            "stderr": err.read().decode(),
        }


def fork_server() -> int:
    print("ready", flush=True)
    for line in sys.stdin:
        print(json.dumps(attempt_in_child(json.loads(line))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(fork_server() if sys.argv[1:] == ["--fork-server"] else main(sys.argv[1:]))
