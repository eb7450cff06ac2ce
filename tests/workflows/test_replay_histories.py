"""Safe deploys: every recorded history replays through the current workflow code.

Calls live for days, so a worker started with new code picks up calls that began under
the old code and replays their histories. tests/histories/ keeps real runs of each
lifecycle path (`pytest -m record_history --record-histories`); a change that would send,
wait or record differently for any of them fails here, before it reaches calls in flight,
unless it is guarded with `workflow.patched`.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner
from temporalio.workflow import NondeterminismError

from callerloop.codec import ENCODING as ENCRYPTED
from callerloop.codec import data_converter
from tests.harness import HISTORIES
from workflows.call_for_service import CallForServiceWorkflow
from workflows.model import CallInput, CallOutcome

# The current code's runs at the top; older code's runs, kept as long as calls started
# under that code may be in flight, in a folder named for the change they predate.
CURRENT = sorted(HISTORIES.glob("*.json"))
RECORDED = sorted(HISTORIES.rglob("*.json"))

# The paths a call can take; each must have at least one recorded history.
LIFECYCLE_PATHS = [
    "test_eligible_call_is_texted_through_to_survey_and_purge",
    "test_call_that_is_never_eligible_sends_nothing_and_finishes_at_close",
    "test_call_closed_before_confirmation_gets_only_the_closing_note",
    "test_delay_notice_when_no_unit_within_threshold",
    "test_explicit_delay_event_sends_the_notice_at_most_once",
    "test_opt_out_mid_call_stops_every_later_text",
    "test_opt_in_after_opt_out_resumes_texting",
    "test_reclassified_to_a_sensitive_type_stops_texting_for_good",
    "test_escalation_above_eligible_priorities_stops_texting",
    "test_do_not_text_flag_and_operator_suppression",
    "test_suppress_stops_texts_and_is_recorded_with_who_and_why",
    "test_mark_language_sets_the_language_of_later_texts",
    "test_a_confirmation_that_never_arrived_is_sent_again",
    "test_lookup_makes_an_unknown_number_textable_when_it_is_a_mobile",
    "test_carrier_opt_out_marks_the_call_opted_out",
    "test_unusable_number_stops_texting_that_number",
    "test_reopened_call_resumes_and_is_surveyed_once",
    "test_first_event_may_be_any_kind",
    "test_a_window_shorter_than_the_quiet_hours_still_gets_its_survey",
]


PAYLOAD_ENCODING = re.compile(r'"encoding": "([A-Za-z0-9+/=]+)"')


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def test_every_lifecycle_path_has_a_recorded_history() -> None:
    recorded = {path.stem.rsplit("-", 1)[0] for path in CURRENT}
    missing = [name for name in LIFECYCLE_PATHS if name not in recorded]
    assert not missing, f"no history in {HISTORIES} for: {missing}"


def test_recorded_histories_are_unencrypted() -> None:
    """A history recorded with the session's (random) test key could never be read again."""
    for path in RECORDED:
        text = path.read_text()
        encodings = {base64.b64decode(found) for found in PAYLOAD_ENCODING.findall(text)}
        assert ENCRYPTED not in encodings, f"{path.name} is encrypted"
        assert b"json/plain" in encodings, f"{path.name} has no readable payloads"
        assert json.loads(text)["events"][0]["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED"


@pytest.mark.parametrize(
    "path", RECORDED, ids=[str(path.relative_to(HISTORIES).with_suffix("")) for path in RECORDED]
)
async def test_recorded_history_replays_on_the_current_code(path: Path) -> None:
    # The workers' own payload converter (the recorded histories are unencrypted).
    replayer = Replayer(workflows=[CallForServiceWorkflow], data_converter=data_converter(None))
    await replayer.replay_workflow(load(path))


@workflow.defn(name="CallForServiceWorkflow")
class ChangedWithoutPatch:
    """What a careless change looks like: the call now waits before doing anything."""

    @workflow.run
    async def run(self, input: CallInput) -> CallOutcome:
        await workflow.sleep(60)
        return CallOutcome(workflow.info().workflow_id, None, None, "", [])  # type: ignore[arg-type]


async def test_a_change_that_would_break_calls_in_flight_fails_the_replay() -> None:
    history = load(RECORDED[0])
    replayer = Replayer(
        workflows=[ChangedWithoutPatch], workflow_runner=UnsandboxedWorkflowRunner()
    )
    with pytest.raises(NondeterminismError):
        await replayer.replay_workflow(history)
