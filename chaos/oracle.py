"""What a replayed day must have texted, worked out from the CAD CSV and the agency's TOML
alone: its own CSV reading, its own list of sensitive call types, no policy module.

The rules are the ones DESIGN.md and the workflow document: default-deny eligibility
(caller-originated source, eligible priority, no sensitive, excluded or in-progress call
type; replayed callers all have a mobile number); an eligible call gets one confirmation
(or, closed before it could be confirmed, none: the closing note says it all), at most
one update per kind, a closing note and one survey when it is cleared, nothing when it is
cancelled; an ineligible call gets nothing.

The chaos schedule's own facts change that (`after_schedule`): a call CAD reclassified
unsafe, or whose caller replied STOP, may have lost any text from then on, so only "at
most" holds for it; but a caller who replied START before CAD closed the call (every
close after the START) still gets its closing note and survey: those stages come after.
"""

from __future__ import annotations

import csv
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from chaos.timeline import FACT_GRACE, CadSent, Journal, opt_out_windows

# DESIGN.md's never-text list, in this module's own words (on top of the agency's list).
SENSITIVE = (
    r"\bSEX",
    r"\bRAPE\b",
    r"\bDOMESTIC",
    r"\bDV\b",
    r"\bINTIMATE",
    r"\bIPV\b",
    r"\bFAMILY VIOL",
    r"\bABDUCT",
    r"\bKIDNAP",
    r"\bBOMB",
    r"\bEXPLOSIVE",
    r"\bALARM",
    r"\bDEMONSTRAT",
    r"\bPROTEST",
    r"\bSUICID",
    r"\b(PROTECTIVE|PROTECTION|RESTRAINING) ORDER",
    r"\bSTALK",
    r"\bTRAFFICKING",
    r"\b(CHILD|ELDER) ABUSE",
)
# The sources DESIGN.md calls caller-originated.
CALLER_SOURCES = frozenset({"phone", "911", "text"})
Closing = Literal["cleared", "cancelled", "open"]


@dataclass(frozen=True)
class Expectation:
    incident_id: str
    eligible: bool
    why: str  # the first rule that says no, or "eligible"
    dispatched: bool
    closing: Closing
    interrupted: str | None = None  # the schedule's fact after which its texts may stop
    resumed: bool = False  # opted out, then START before every close: closing texts due


@dataclass(frozen=True)
class AgencyRules:
    sources: Mapping[str, str]  # the CAD's words -> callerloop's source
    eligible_sources: frozenset[str]
    priorities: frozenset[int]
    excluded: tuple[str, ...]
    in_progress: tuple[str, ...]
    cancelled: tuple[str, ...]
    columns: Mapping[str, str]
    lower_is_more_urgent: bool = True
    priority_scale: tuple[int, int] = (0, 9)

    @classmethod
    def from_toml(cls, path: Path) -> AgencyRules:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
        eligibility = data["eligibility"]
        scale = data.get("cad", {}).get("priority_scale", {})
        return cls(
            sources=data.get("cad", {}).get("sources", {}),
            eligible_sources=frozenset(eligibility.get("sources", CALLER_SOURCES)),
            priorities=frozenset(eligibility["priorities"]),
            excluded=tuple(eligibility.get("excluded_call_types", [])),
            in_progress=tuple(eligibility.get("in_progress_patterns", [])),
            cancelled=tuple(data.get("replay", {}).get("cancelled_dispositions", [])),
            columns=data["replay"]["columns"],
            lower_is_more_urgent=eligibility.get("lower_priority_is_more_urgent", True),
            priority_scale=(scale.get("min", 0), scale.get("max", 9)),
        )

    def escalated_priority(self) -> int:
        """A priority more urgent than every eligible one, on the CAD's scale."""
        if self.lower_is_more_urgent:
            priority = min(self.priorities) - 1
        else:
            priority = max(self.priorities) + 1
        low, high = self.priority_scale
        if not low <= priority <= high:
            raise ValueError(f"no priority above {sorted(self.priorities)} on {low}..{high}")
        return priority

    def unsafe_change(
        self, call_type: str | None, priority: int | None, do_not_text: bool | None
    ) -> str | None:
        """Why CAD's change makes a call unsafe to text, by this module's rules (None: it
        does not)."""
        never = SENSITIVE + self.excluded + self.in_progress
        if call_type is not None and (pattern := _matches(never, call_type)):
            return f"call type {call_type} ~ {pattern}"
        if priority is not None and priority not in self.priorities:
            return f"priority {priority}"
        return "do not text" if do_not_text else None


def _present(value: str | None) -> bool:
    return value is not None and value.strip().upper() not in ("", "NULL")


def _matches(patterns: Iterable[str], text: str) -> str | None:
    folded = re.sub(r"[^0-9A-Z]+", " ", text.upper()).strip()
    return next((p for p in patterns if re.search(p, folded, re.IGNORECASE)), None)


def expect(row: Mapping[str, str], rules: AgencyRules) -> Expectation:
    column = rules.columns
    incident = row[column["incident_id"]].strip()
    source = rules.sources.get((row.get(column["source"]) or "").strip(), "unknown")
    raw_priority = (row.get(column["priority"]) or "").strip()
    call_type = (row.get(column["call_type"]) or "").strip()
    why = "eligible"
    if source not in CALLER_SOURCES or source not in rules.eligible_sources:
        why = f"source {source}"
    elif not raw_priority.isdigit() or int(raw_priority) not in rules.priorities:
        why = f"priority {raw_priority or 'none'}"
    elif (
        pattern := _matches(SENSITIVE + rules.excluded + rules.in_progress, call_type)
    ) is not None:
        why = f"call type {call_type} ~ {pattern}"
    closed = any(_present(row.get(column[key])) for key in ("first_closed", "final_closed"))
    disposition = (row.get(column.get("disposition", "")) or "").strip()
    closing: Closing = "open"
    if closed:
        cancelled = any(re.search(p, disposition) for p in rules.cancelled)
        closing = "cancelled" if cancelled else "cleared"
    return Expectation(
        incident_id=incident,
        eligible=why == "eligible",
        why=why,
        dispatched=_present(row.get(column["dispatched"])),
        closing=closing,
    )


def expectations(
    csv_lines: Iterable[str], rules: AgencyRules, incidents: set[str]
) -> dict[str, Expectation]:
    """The expectation of each incident in `incidents` (the calls the replay delivered);
    a repeated incident id counts once, as its first row."""
    found: dict[str, Expectation] = {}
    for row in csv.DictReader(line.lstrip("\ufeff") for line in csv_lines):
        incident = (row.get(rules.columns["incident_id"]) or "").strip()
        if incident in incidents and incident not in found:
            found[incident] = expect(row, rules)
    return found


CLOSES = frozenset({"cleared", "cancelled"})


def after_schedule(expected: Mapping[str, Expectation], journal: Journal) -> dict[str, Expectation]:
    """The expectations once the schedule's facts are in: `interrupted` for each call CAD
    reclassified unsafe or whose number replied STOP while it was open (or before it),
    `resumed` for the latter when every STOP was followed by a START before CAD closed it."""
    events = journal.events_of()
    unsafe = {fact.incident_id: f"CAD: {fact.unsafe}" for fact in journal.safety_facts()}
    opted_out: dict[str, str] = {}
    back_before_close: dict[str, bool] = {}
    for window in opt_out_windows(journal.replies):
        for incident in journal.incidents_of(window.phone):
            sent = events.get(incident, [])
            if _called_after(sent, window.start_accepted):
                continue  # its caller had opted back in: the STOP was not about it
            opted_out.setdefault(incident, f"STOP from {window.phone}")
            back = _closed_after(sent, window.start_accepted)
            back_before_close[incident] = back_before_close.get(incident, True) and back

    def adjusted(incident: str, expectation: Expectation) -> Expectation:
        why = unsafe.get(incident) or opted_out.get(incident)
        if why is None:
            return expectation
        resumed = incident not in unsafe and back_before_close.get(incident, False)
        return replace(expectation, interrupted=why, resumed=resumed)

    return {incident: adjusted(incident, e) for incident, e in expected.items()}


def _called_after(events: Iterable[CadSent], moment: datetime | None) -> bool:
    created = [sent.posted_at for sent in events if sent.event_type == "created"]
    return moment is not None and bool(created) and min(created) > moment + FACT_GRACE


def _closed_after(events: Iterable[CadSent], moment: datetime | None) -> bool:
    """Every close of the call was posted once the stack had seen `moment`'s START."""
    closes = [sent.posted_at for sent in events if sent.event_type in CLOSES]
    return moment is not None and bool(closes) and min(closes) > moment + FACT_GRACE
