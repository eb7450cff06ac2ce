"""Safe deploys: every recorded history replays through the current workflow code.

Calls live for days, so a worker started with new code picks up calls that began under
the old code and replays their histories. tests/histories/ keeps real runs of each
lifecycle path (`pytest -m record_history --record-histories`); a change that would send,
wait or record differently for any of them fails here, before it reaches calls in flight,
unless it is guarded with `workflow.patched`. They replay with the runner production
workers use (`worker.workflow_runner`: the sandbox), so a non-deterministic call that only
the sandbox catches fails here too.

The recorded histories are unencrypted (the session's test key dies with it), so they are
read as a worker migrating to encryption reads old calls: with its keys, and plaintext
accepted explicitly (CALLERLOOP_ACCEPT_PLAINTEXT_PAYLOADS=1).
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from callerloop.core.codec import ENCODING as ENCRYPTED
from callerloop.core.codec import (
    PlaintextPayloadError,
    codec_from_spec,
    data_converter,
    new_key_spec,
)
from tests.harness import HISTORIES
from tests.workflows.changed_without_patch import ChangedWithoutPatch
from worker import workflow_runner
from workflows.call_for_service import CallForServiceWorkflow

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
    "test_an_attempt_that_never_hears_of_its_cancellation_is_refused_at_the_hand_off",
    "test_start_lets_through_only_texts_for_what_happens_after_it",
    "test_a_closing_note_is_never_followed_by_an_assigned_text_without_a_reopen",
]


PAYLOAD_ENCODING = re.compile(r'"encoding": "([A-Za-z0-9+/=]+)"')
# A worker's converter while it migrates to encryption: its own key, plaintext accepted.
MIGRATING = data_converter(codec_from_spec(new_key_spec("replay"), accept_plaintext=True))


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def production_replayer(**options: Any) -> Replayer:
    """A Replayer as a production worker runs the call workflow: its runner, its
    converter (plaintext accepted, see above)."""
    options.setdefault("workflows", [CallForServiceWorkflow])
    return Replayer(workflow_runner=workflow_runner(), data_converter=MIGRATING, **options)


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
    await production_replayer().replay_workflow(load(path))


async def test_a_plaintext_history_is_refused_without_the_migration_setting() -> None:
    """Outside a migration, a worker's codec refuses what was not encrypted."""
    strict = data_converter(codec_from_spec(new_key_spec("strict")))
    replayer = Replayer(
        workflows=[CallForServiceWorkflow], workflow_runner=workflow_runner(), data_converter=strict
    )
    result = await replayer.replay_workflow(load(CURRENT[0]), raise_on_replay_failure=False)
    assert PlaintextPayloadError.__name__ in str(result.replay_failure), result.replay_failure


async def test_a_change_that_would_break_calls_in_flight_fails_the_replay() -> None:
    history = load(RECORDED[0])
    with pytest.raises(NondeterminismError):
        await production_replayer(workflows=[ChangedWithoutPatch]).replay_workflow(history)
