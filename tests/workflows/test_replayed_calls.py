"""Every call of a CAD export, replayed through the lifecycle the workflow runs, against
an oracle of what must never be texted (independent keyword list, not the policy's).

Runs on a synthetic day always, and on the whole real export when ../shared is there."""

from __future__ import annotations

import re
from collections import Counter
from datetime import date

from callerloop.cad.replay import ParsedExport, ReplayCall, parse_cad_export
from callerloop.cad.synthetic_day import synthetic_day, to_csv_lines
from callerloop.core.agency_config import AgencyConfig, load_agency_file
from callerloop.core.settings import PROJECT_ROOT
from tests.requirements import real_cad_export
from tests.workflows.scenarios import Event, Wait
from tests.workflows.simulation import Simulation
from workflows.model import CallSource, CallState, TextKind

EXAMPLE: AgencyConfig = load_agency_file(PROJECT_ROOT / "agencies" / "example.toml")
NEVER_TEXTED = re.compile(
    r"SEX|RAPE|DOMESTIC|ABDUCT|KIDNAP|BOMB|ALARM|DEMONSTR|PROTEST|SUICID|PROTECTIVE ORDER"
    r"|STALK|IN PROG|WEAPON|ROBBERY|ASSAULT|911 HANG UP|MISSING PERSON"
)


def simulate(call: ReplayCall) -> Simulation:
    simulation = Simulation(
        EXAMPLE.to_policy(), call=CallState(agency="example", incident_id=call.incident_id)
    )
    previous = call.events[0].occurred_at
    for step, event in enumerate(call.events):
        gap = int((event.occurred_at - previous).total_seconds() // 60)
        if gap > 0:
            simulation.act(Wait(gap), step)
        simulation.act(Event(event), step)
        previous = event.occurred_at
    simulation.play_until(simulation.now.replace(year=simulation.now.year + 1), len(call.events))
    return simulation


def must_never_be_texted(call: ReplayCall) -> bool:
    created = call.events[0]
    return (
        created.source not in (CallSource.PHONE, CallSource.E911, CallSource.TEXT)
        or created.priority not in (2, 3, 4)
        or any(e.call_type and NEVER_TEXTED.search(e.call_type) for e in call.events)
    )


def check_export(export: ParsedExport) -> Counter[str]:
    texts: Counter[str] = Counter()
    for call in export.calls:
        simulation = simulate(call)
        kinds = [kind for _, kind in simulation.sends]
        if must_never_be_texted(call):
            assert kinds == [], f"{call.incident_id} ({call.events[0].call_type}) texted {kinds}"
        texts.update(kind.value for kind in kinds)
        assert simulation.finished, f"{call.incident_id} never finished"
        assert len(kinds) == len(set(kinds))
    return texts


def test_synthetic_day_texts_only_what_it_may() -> None:
    rows = synthetic_day(EXAMPLE, date(2025, 9, 12))
    export = parse_cad_export(to_csv_lines(rows), EXAMPLE)
    assert export.errors == []
    texts = check_export(export)
    assert 0 < texts[TextKind.CONFIRMATION.value] < len(export.calls)
    assert texts[TextKind.SURVEY.value] > 0


def test_whole_real_export_texts_only_what_it_may() -> None:
    with real_cad_export().open(encoding="utf-8") as csv_file:
        export = parse_cad_export(csv_file, EXAMPLE)
    assert export.rows_read == 14_589
    texts = check_export(export)
    eligible = sum(not must_never_be_texted(call) for call in export.calls)
    # Most callers the oracle allows are confirmed; delay notices happen for real.
    assert texts[TextKind.CONFIRMATION.value] > 0.8 * eligible
    assert texts[TextKind.DELAYED.value] > 0.05 * texts[TextKind.CONFIRMATION.value]
    print(
        f"\n{len(export.calls)} calls, {eligible} not excluded by the oracle; texts: {dict(texts)}"
    )
