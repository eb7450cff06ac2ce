"""Every change to the call workflow that calls already running must replay around: its
patch id (`workflow.patched`), when it landed, and why. Each implies the ones above it: a
call started under the newest asks for that one only (one marker instead of five), and
older calls replay on the branch they took. Retire a patch (`workflow.deprecate_patch`,
then remove) only when no call started before it is running: see docs/workflow-changes.md.
tests/workflows/test_versions.py holds the workflows to this list.

A change that only acts on a field of the policy a call records at its start (its
`AgencyPolicy`, kept in history and carried across continue-as-new) needs no patch: calls
that started before it recorded a policy without the field and replay as they ran. The
survey in the text thread (2026-12-04, `AgencyPolicy.survey_delivery`) is such a change."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class Patch:
    id: str
    landed: date
    reason: str


DEADLINE_REACHED_ON_TIMER = Patch(
    "deadline-reached-on-timer",
    date(2026, 11, 22),
    "A fired timer means its deadline has come, whatever workflow.now() says on replay.",
)
RECORD_THEN_CHECK_OPT_OUT = Patch(
    "record-then-check-opt-out",
    date(2026, 11, 22),
    "Recording a call looks its number up in the opt-out registry after the record is "
    "committed: a STOP from then on reaches the call as a signal, so texts no longer each "
    "wait for a look at the registry first (two local activities fewer before the first).",
)
PURGE_LOCALLY = Patch(
    "purge-locally",
    date(2026, 11, 23),
    "The purge at the end runs as a local activity in the workflow task that ends the call: "
    "no activity task and no workflow task after it, four server requests fewer per call.",
)
SURVEY_WINDOW_AFTER_DEFERRAL = Patch(
    "survey-window-after-deferral",
    date(2026, 11, 23),
    "A closed call's survey window counts from when the survey falls due, after any quiet "
    "hours, so a window shorter than the night loses no survey. Also skips the registry "
    "look before the first record (the record looks right after committing).",
)
SAFE_SENDS = Patch(
    "safe-sends",
    date(2026, 12, 2),
    "Safety stops withdraw a text on its way (revoked in the database, its activity "
    "cancelled), no stage text goes stale, a closed call stays closed until CAD reopens "
    "it, an event without an id gets its content's, and the event ids kept are bounded.",
)
EVERY_FACT_KEPT = Patch(
    "every-fact-kept",
    date(2026, 12, 3),
    "A safety fact CAD changes (a type, priority, source or flag) is kept as a superseded "
    "fact the safety rules read, so a call sensitive at any moment is never texted even when "
    "the correction lands in the same workflow task (an export row's initial and final type).",
)

# Oldest first: each implies every one before it.
PATCHES = (
    DEADLINE_REACHED_ON_TIMER,
    RECORD_THEN_CHECK_OPT_OUT,
    PURGE_LOCALLY,
    SURVEY_WINDOW_AFTER_DEFERRAL,
    SAFE_SENDS,
    EVERY_FACT_KEPT,
)
