"""The short chaos run (`make chaos`'s little sibling, run by `make test` and CI): the
day's first 40 short calls replayed through the real stack (dev server on SQLite, worker
and web app under uvicorn as processes, real twilio client against the stand-in) while
every kind of fault is injected on a fixed seed, and CAD reclassifies calls and callers
reply STOP then START while their texts are on their way; every invariant must hold.

SLOW: about two minutes on two shared cores, most of it the last calls' 60 s survey
window after the faults' last lost send attempt (30 s) is retried.
Replays the synthetic day when ../shared/data is missing, so it never skips."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from chaos import facts
from chaos.faults import SHORT_RUN, Fault
from chaos.invariants import (
    CALLERS_STOP,
    CLOSED_STAYS_CLOSED,
    IN_ORDER,
    NO_DELAY_ONCE_ASSIGNED,
    NOTHING_STALE_AFTER_START,
    SAFETY_FACT,
)
from chaos.run import ChaosOptions, print_report, run_chaos

pytestmark = pytest.mark.slow

SEED = 1


async def test_short_chaos_run_loses_nothing_and_sends_nothing_twice(tmp_path: Path) -> None:
    console = Console(soft_wrap=True)
    result = await run_chaos(
        ChaosOptions(seed=SEED, short=True, data_dir=tmp_path / "chaos"), console
    )
    print_report(result, console)

    assert result.verdict.breaches == []
    assert result.injected.done == SHORT_RUN  # every kind of fault, as planned
    assert set(result.injected.done) == set(Fault)
    effects = result.observed_effects
    assert effects["Twilio answers 500"] >= 1 and effects["Twilio answers 429"] >= 1
    assert effects["Twilio answers held back (timeout or mid-send)"] >= 1
    assert effects["status callbacks dropped"] >= 1
    assert effects["mid-send kills that caught a text in Twilio's hands"] >= 1
    checks = result.verdict.checks
    assert checks["every accepted CAD event was applied"] == result.summary["CAD events accepted"]
    assert result.summary["CAD events accepted"] > 0
    assert checks["no ineligible call got any text"] > 0
    assert result.summary["eligible calls"] > 0 and result.summary["texts at the provider"] > 0
    texts = result.summary["texts at the provider"]
    assert checks["every provider message is an outbox row's"] == texts
    # Every kind of safety fact was told, one of them while Twilio refused a text it races,
    # and a text on its way was withdrawn; each timing rule was checked.
    assert result.facts.done == facts.SHORT_RUN
    assert {fact for fact, _ in result.facts.done} == set(facts.Fact)
    assert effects["safety facts told while Twilio refused their call's text"] >= 1
    assert effects["texts withdrawn on their way (outbox withheld)"] >= 1
    assert result.summary["calls interrupted by a safety fact"] >= facts.SHORT_RUN.total()
    timing_rules = (SAFETY_FACT, CALLERS_STOP, IN_ORDER, CLOSED_STAYS_CLOSED)
    for rule in (*timing_rules, NO_DELAY_ONCE_ASSIGNED, NOTHING_STALE_AFTER_START):
        assert checks[rule] > 0, rule
