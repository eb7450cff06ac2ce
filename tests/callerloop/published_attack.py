"""An attacker with only the published CSV files: can they learn about a group of fewer
than k answers? Used by the open-data tests on generated and on replayed data.

Every published row is a sum of cells; rows are rebuilt from their labels alone
(breakdown, month, priority, call-type group, language), then two attacks are run:

- subtraction: a published total minus its published parts leaves the suppressed parts
  taken together; that must be nothing, or k answers or more;
- linear algebra: a suppressed row must not be a combination of published rows (numpy's
  rank, independent of the exporter's own arithmetic).
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable

import numpy as np

LABELS = ("priority", "call_type_group", "language")

Row = dict[str, str]


def read_csv(content: bytes) -> list[Row]:
    return list(csv.DictReader(io.StringIO(content.decode("utf-8"))))


def _blocks(rows: Iterable[Row], by: tuple[str, ...]) -> dict[tuple[str, ...], list[Row]]:
    blocks: dict[tuple[str, ...], list[Row]] = defaultdict(list)
    for row in rows:
        blocks[tuple(row[name] for name in by)].append(row)
    return blocks


def _cells_of(row: Row, cells: list[Row]) -> set[int]:
    if row["breakdown"] == "cell":
        return {i for i, cell in enumerate(cells) if cell is row}
    if row["breakdown"] == "month":
        return set(range(len(cells)))
    name = row["breakdown"]
    return {i for i, cell in enumerate(cells) if cell[name] == row[name]}


def attack(rows: list[Row], count: str, k: int, by: tuple[str, ...] = ("month",)) -> list[str]:
    """What the attacker finds: published rows under k, and suppressed rows recovered."""
    found: list[str] = []
    for block_key, block in _blocks(rows, (*by, "agency")).items():
        cells = [row for row in block if row["breakdown"] == "cell"]
        published = [row for row in block if row["suppressed"] == "false"]
        suppressed = [row for row in block if row["suppressed"] == "true"]
        for row in published:
            if int(row[count]) < k:
                found.append(f"{block_key}: published {count} {row[count]} < {k}: {row}")
        found += _subtraction(block, cells, count, k, block_key)
        found += _linear_algebra(published, suppressed, cells, block_key)
    return found


def _subtraction(
    block: list[Row], cells: list[Row], count: str, k: int, block_key: tuple[str, ...]
) -> list[str]:
    found = []
    by_breakdown = _blocks(block, ("breakdown",))
    totals_and_parts: list[tuple[Row, list[Row]]] = []
    for whole in by_breakdown.get(("month",), []):
        totals_and_parts.append((whole, cells))
        for name in LABELS:
            totals_and_parts.append((whole, by_breakdown.get((name,), [])))
    for name in LABELS:
        for margin in by_breakdown.get((name,), []):
            totals_and_parts.append((margin, [c for c in cells if c[name] == margin[name]]))
    for total, parts in totals_and_parts:
        if total["suppressed"] == "true":
            continue
        hidden = [part for part in parts if part["suppressed"] == "true"]
        if not hidden:
            continue
        remainder = int(total[count]) - sum(
            int(part[count]) for part in parts if part["suppressed"] == "false"
        )
        if remainder < k:
            found.append(
                f"{block_key}: {total['breakdown']} total minus published parts gives "
                f"{remainder} < {k} for {len(hidden)} suppressed row(s)"
            )
    return found


def _linear_algebra(
    published: list[Row], suppressed: list[Row], cells: list[Row], block_key: tuple[str, ...]
) -> list[str]:
    def vector(row: Row) -> np.ndarray:
        v = np.zeros(len(cells))
        v[list(_cells_of(row, cells))] = 1
        return v

    if not suppressed:
        return []
    known = np.array([vector(row) for row in published]).reshape(-1, len(cells))
    rank = np.linalg.matrix_rank(known) if len(published) else 0
    found = []
    for row in suppressed:
        extended = np.vstack([known, vector(row)])
        if np.linalg.matrix_rank(extended) == rank:
            found.append(f"{block_key}: suppressed row recovered from published rows: {row}")
    return found
