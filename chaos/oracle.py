"""What a replayed day must have texted, worked out from the CAD CSV and the agency's TOML
alone: its own CSV reading, its own list of sensitive call types, no policy module.

The rules are the ones DESIGN.md and the workflow document: default-deny eligibility
(caller-originated source, eligible priority, no sensitive, excluded or in-progress call
type; replayed callers all have a mobile number); an eligible call gets one confirmation
(or, closed before it could be confirmed, none: the closing note says it all), at most
one update per kind, a closing note and one survey when it is cleared, nothing when it is
cancelled; an ineligible call gets nothing.
"""

from __future__ import annotations

import csv
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

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


@dataclass(frozen=True)
class AgencyRules:
    sources: Mapping[str, str]  # the CAD's words -> callerloop's source
    eligible_sources: frozenset[str]
    priorities: frozenset[int]
    excluded: tuple[str, ...]
    in_progress: tuple[str, ...]
    cancelled: tuple[str, ...]
    columns: Mapping[str, str]

    @classmethod
    def from_toml(cls, path: Path) -> AgencyRules:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
        eligibility = data["eligibility"]
        return cls(
            sources=data.get("cad", {}).get("sources", {}),
            eligible_sources=frozenset(eligibility.get("sources", CALLER_SOURCES)),
            priorities=frozenset(eligibility["priorities"]),
            excluded=tuple(eligibility.get("excluded_call_types", [])),
            in_progress=tuple(eligibility.get("in_progress_patterns", [])),
            cancelled=tuple(data.get("replay", {}).get("cancelled_dispositions", [])),
            columns=data["replay"]["columns"],
        )


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
