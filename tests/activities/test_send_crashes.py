"""Exactly-once sending under crash: a process running the send activity is SIGKILLed at
each point of the outbox protocol, then a fresh process retries. The provider (the real
twilio client against the Twilio stand-in) must hold the text at most once, and once
whenever the retry could prove it had none; the outbox row ends in the documented state.

Each attempt is a process of its own, forked by one server process that imported the
activity's modules once (tests/activities/crash_send.py --fork-server): a start-up of
seconds paid once per module, not per attempt.
"""

from __future__ import annotations

import json
import select as io_select
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import requests
from sqlmodel import select
from temporalio.testing import ActivityEnvironment

from activities.sms_providers.base import OutgoingText
from activities.sms_providers.twilio import TwilioProvider
from activities.texts import (
    HANDING_OVER,
    IN_FLIGHT_WITHOUT_RECORDS_SECONDS,
    OutcomeNotKnownYet,
    TextActivities,
)
from callerloop.core.db import Database, OutboxMessage
from callerloop.core.settings import PROJECT_ROOT
from devtools.twilio_standin import TwilioStandIn
from tests.activities.crash_send import OUTCOME_NOT_KNOWN_YET, PROVIDER_TIMEOUT, SEND
from tests.factories import hand_over_long_ago, make_agency


@pytest.fixture
def standin() -> Iterator[TwilioStandIn]:
    with TwilioStandIn() as running:
        yield running


ATTEMPT_TIMEOUT = 60.0


class ForkServer:
    """tests.activities.crash_send --fork-server: one attempt per line, each in a fresh
    child process; the answer is the child's exit code and output."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.activities.crash_send", "--fork-server"],
            cwd=PROJECT_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._line(ATTEMPT_TIMEOUT) == "ready\n"

    def _line(self, timeout: float) -> str:
        assert self.process.stdout is not None and self.process.stdin is not None
        readable, _, _ = io_select.select([self.process.stdout], [], [], timeout)
        assert readable, f"the fork server did not answer within {timeout:.0f} s"
        line = self.process.stdout.readline()
        assert line, f"the fork server exited ({self.process.poll()})"
        return line

    def run(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(argv) + "\n")
        self.process.stdin.flush()
        answer = json.loads(self._line(ATTEMPT_TIMEOUT))
        return subprocess.CompletedProcess(
            argv, answer["returncode"], answer["stdout"], answer["stderr"]
        )

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture(scope="module")
def fork_server() -> Iterator[ForkServer]:
    server = ForkServer()
    yield server
    server.close()


Attempt = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def attempt(fork_server: ForkServer) -> Attempt:
    """One send attempt in a process of its own (SIGKILLed at `crash_at`)."""

    def one(
        database: Database, standin: TwilioStandIn, crash_at: str, *, records: bool = True
    ) -> subprocess.CompletedProcess[str]:
        argv = [database.url, standin.base_url, crash_at]
        return fork_server.run(argv + ([] if records else ["--no-records"]))

    return one


def killed(process: subprocess.CompletedProcess[str]) -> bool:
    return process.returncode == -signal.SIGKILL


def result_of(process: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert process.returncode == 0, process.stderr
    answer: dict[str, Any] = json.loads(process.stdout)
    return answer


def the_row(database: Database) -> OutboxMessage:
    with database.session() as session:
        [row] = session.exec(select(OutboxMessage)).all()
    return row


IN_FLIGHT = TwilioProvider("AC" + "0" * 32, "t", timeout=PROVIDER_TIMEOUT).in_flight_seconds


def test_crash_before_the_provider_call_is_sent_once_after_reconciling(
    database: Database, standin: TwilioStandIn, attempt: Attempt
) -> None:
    assert killed(attempt(database, standin, "before_provider"))
    assert standin.messages == [] and the_row(database).status == HANDING_OVER

    # Too soon: the cut-off request could still be on its way, so absence proves nothing.
    too_soon = attempt(database, standin, "none")
    assert too_soon.returncode == OUTCOME_NOT_KNOWN_YET, too_soon.stderr
    assert standin.messages == [] and the_row(database).status == HANDING_OVER

    hand_over_long_ago(database, IN_FLIGHT)
    retried = result_of(attempt(database, standin, "none"))
    [message] = standin.messages  # the provider never had it: sent now, once
    assert retried["already_sent"] is False and retried["provider_id"] == message.sid
    row = the_row(database)
    assert row.status == "queued" and row.provider_id == message.sid and row.attempts == 2


def test_crash_after_the_provider_call_is_found_at_the_provider_not_resent(
    database: Database, standin: TwilioStandIn, attempt: Attempt
) -> None:
    assert killed(attempt(database, standin, "after_provider"))
    [message] = standin.messages
    row = the_row(database)
    assert row.status == HANDING_OVER and row.provider_id is None

    hand_over_long_ago(database, IN_FLIGHT)
    retried = result_of(attempt(database, standin, "none"))
    assert len(standin.messages) == 1  # not sent twice
    assert retried["already_sent"] is True and retried["provider_id"] == message.sid
    row = the_row(database)
    assert row.status == "queued" and row.provider_id == message.sid and row.attempts == 1


def test_crash_after_recording_is_already_sent(
    database: Database, standin: TwilioStandIn, attempt: Attempt
) -> None:
    assert killed(attempt(database, standin, "after_record"))
    [message] = standin.messages
    assert the_row(database).provider_id == message.sid

    retried = result_of(attempt(database, standin, "none"))
    assert len(standin.messages) == 1
    assert retried["already_sent"] is True and retried["provider_id"] == message.sid
    assert the_row(database).status == "queued"


@pytest.mark.parametrize("crash_at", ["before_provider", "after_provider"])
def test_without_provider_records_a_cut_off_send_stays_unknown_and_is_never_resent(
    database: Database, standin: TwilioStandIn, attempt: Attempt, crash_at: str
) -> None:
    assert killed(attempt(database, standin, crash_at, records=False))
    held = len(standin.messages)
    assert held == (1 if crash_at == "after_provider" else 0)

    too_soon = attempt(database, standin, "none", records=False)
    assert too_soon.returncode == OUTCOME_NOT_KNOWN_YET, too_soon.stderr
    assert the_row(database).status == HANDING_OVER

    hand_over_long_ago(database, IN_FLIGHT_WITHOUT_RECORDS_SECONDS)
    retried = result_of(attempt(database, standin, "none", records=False))
    again = result_of(attempt(database, standin, "none", records=False))
    assert len(standin.messages) == held  # at most once: the safe side for a confirmation
    assert retried["status"] == again["status"] == "unknown" and again["already_sent"]
    assert the_row(database).status == "unknown"


def test_a_lost_answer_is_reconciled_from_the_provider_records(
    database: Database, standin: TwilioStandIn
) -> None:
    """Twilio takes the text but its answer never comes (the client times out): the
    outcome is unknown to the worker, and the retry finds the message instead of resending."""
    provider = TwilioProvider(
        standin.account_sid, standin.auth_token, api_base_url=standin.base_url, timeout=0.5
    )
    agency = make_agency()
    activities = TextActivities(database, {agency.id: agency}, provider, "https://callerloop.test")
    env = ActivityEnvironment()
    standin.stall_next(2.0)
    with pytest.raises(requests.Timeout):
        env.run(activities.send_text, SEND)
    [message] = standin.messages
    with pytest.raises(OutcomeNotKnownYet):
        env.run(activities.send_text, SEND)
    hand_over_long_ago(database, provider.in_flight_seconds)
    result = env.run(activities.send_text, SEND)
    assert len(standin.messages) == 1
    assert result.already_sent and result.provider_id == message.sid
    assert the_row(database).status == "queued"


def test_provider_records_are_searched_across_pages_and_by_exact_body(
    standin: TwilioStandIn,
) -> None:
    """The stand-in's Messages list pages like Twilio's; the twilio client follows it."""
    provider = TwilioProvider(
        standin.account_sid, standin.auth_token, api_base_url=standin.base_url
    )

    def text(body: str, to: str = "+17035550142") -> OutgoingText:
        return OutgoingText(to, body, "+17035550100", None, 600, "ref")

    target = text("case 25-000001: the one we look for")
    first = provider.send(target)
    for n in range(130):  # newer texts to the same number push it to the second page
        provider.send(text(f"case 25-000001: other {n}"))
    provider.send(text(target.body, to="+17035550143"))  # same body, someone else
    since = standin.messages[0].created_at - timedelta(minutes=1)
    found = provider.find_sent(target, since)
    assert found is not None and found.provider_id == first.provider_id
    assert provider.find_sent(text("case 25-000001: never sent"), since) is None
