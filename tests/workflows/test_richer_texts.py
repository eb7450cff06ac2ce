"""Richer texts, by the agency's choice: the officer named in the assigned text, and the
call-type group's resources after the closing note (through the real worker)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from callerloop.core.agency_config import AgencyConfigError
from callerloop.core.db import Database
from tests.conftest import start_harness
from tests.factories import (
    RecordingProvider,
    cad_event,
    eligible_call,
    make_agency,
    new_incident_id,
)
from tests.harness import Harness
from workflows.model import CadEventType

RICHER: dict[str, Any] = {
    "texts": {"name_the_officer": True},
    "templates": {
        "en": {
            "assigned_officer": "{agency_name}: {officer} is on the way for case {case_number}."
        },
        "es": {"assigned_officer": "{agency_name}: {officer} va en camino, caso {case_number}."},
        "fr": {
            "assigned_officer": "{agency_name} : {officer} est en route, dossier {case_number}."
        },
    },
    "survey": {"call_type_groups": {"property": ["^LARCENY"], "disorder": ["^NOISE"]}},
    "closing_notes": {
        "property": {
            "en": "Get your report at example.gov/reports",
            "es": "Su informe: example.gov/reports",
            "fr": "Votre rapport : example.gov/reports",
        }
    },
}


def body(harness: Harness, incident: str, kind: str) -> str:
    [row] = [r for r in harness.outbox(incident) if r.kind == kind]
    assert row.body is not None
    return row.body


async def test_the_officer_is_named_and_the_groups_resources_close_the_call(
    env: WorkflowEnvironment, database: Database, provider: RecordingProvider
) -> None:
    agency = make_agency(**RICHER)
    async for harness in start_harness(env, database, {"testville": agency}, provider):
        larceny, noise, unnamed = new_incident_id(), new_incident_id(), new_incident_id()
        await harness.send(eligible_call(larceny, call_type="LARCENY DELAY"))
        await harness.send(
            cad_event(larceny, CadEventType.ASSIGNED, minutes=5, officer="Ofc. Rivera #4411")
        )
        await harness.send(cad_event(larceny, CadEventType.CLEARED, minutes=30))
        await harness.send(eligible_call(noise, caller_language="es"))
        await harness.send(cad_event(noise, CadEventType.ASSIGNED, minutes=5, officer="Unit 12"))
        await harness.send(cad_event(noise, CadEventType.CLEARED, minutes=30))
        await harness.send(eligible_call(unnamed))
        await harness.send(cad_event(unnamed, CadEventType.ASSIGNED, minutes=5))

        assert body(harness, larceny, "assigned") == (
            f"Testville PD: Ofc. Rivera #4411 is on the way for case C{larceny}."
        )
        assert body(harness, larceny, "cleared").endswith(
            "Thank you for contacting us. Get your report at example.gov/reports"
        )
        assert (
            body(harness, noise, "assigned")
            == f"Testville PD: Unit 12 va en camino, caso C{noise}."
        )
        assert "example.gov" not in body(harness, noise, "cleared")  # disorder: no resources
        # CAD named no officer: the plain assigned text.
        assert body(harness, unnamed, "assigned") == (
            f"Testville PD: an officer has been assigned to case C{unnamed}."
        )


async def test_without_the_agencys_choice_no_officer_is_named(
    env: WorkflowEnvironment, database: Database, provider: RecordingProvider
) -> None:
    async for harness in start_harness(env, database, {"testville": make_agency()}, provider):
        incident = new_incident_id()
        await harness.send(eligible_call(incident))
        await harness.send(
            cad_event(incident, CadEventType.ASSIGNED, minutes=5, officer="Ofc. Rivera #4411")
        )
        assert "Rivera" not in provider.accepted[-1].body


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"texts": {"name_the_officer": True}, "templates": {"en": {"assigned_officer": ""}}},
            "templates.en.assigned_officer is missing",
        ),
        (
            {**RICHER, "templates": {"en": {"assigned_officer": "an officer is coming"}}},
            "templates.en.assigned_officer: must contain ['{officer}']",
        ),
        (
            {"closing_notes": {"burglary": {"en": "x", "es": "x", "fr": "x"}}},
            "closing_notes.burglary: not a call-type group",
        ),
        ({"closing_notes": {"other": {"en": "Tips: example.gov"}}}, "closing_notes.other: missing"),
        (
            {
                "closing_notes": {
                    "other": {"en": "Tip: " + "lock your car. " * 30, "es": "x", "fr": "x"}
                }
            },
            "closing_notes.other.en (after the closing note): 4 SMS segments (GSM-7",
        ),
    ],
)
def test_richer_texts_are_checked_at_load(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(AgencyConfigError, match=re.escape(message)):
        make_agency(**overrides)
