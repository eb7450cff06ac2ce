"""Which published rows to blank so that no group of fewer than k answers shows.

Every published row is a sum of cells (a cell itself, or a total over many cells). Blanking
the rows under k is not enough: a total minus the published cells under it gives back the
blanked ones. So, until nothing changes:

1. Primary: every row under k is blanked.
2. Complementary: in each published total, the blanked parts taken together (what a
   subtraction recovers) must be none, or k or more; otherwise the smallest published part
   is blanked too.
3. Audit: a blanked row must not be a linear combination of published rows (which catches
   recoveries that take several totals, e.g. by priority and by language at once); if one
   is, the smallest published row that overlaps it is blanked too.

Only the structure matters (which rows are published), never the values, so one pass
serves every additive measure of a row: counts, sums of scores, numbers satisfied.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import TypeVar

Row = TypeVar("Row", bound=Hashable)
Cell = TypeVar("Cell", bound=Hashable)

# Exact linear algebra modulo a large prime: rows are 0/1 vectors over at most a few
# hundred cells, so a combination that exists over the rationals exists modulo P.
_P = (1 << 61) - 1


def suppress(
    counts: Mapping[Row, int],
    members: Mapping[Row, frozenset[Cell]],
    totals: Sequence[tuple[Row, Sequence[Row]]],
    k: int,
    order: Callable[[Row], tuple[object, ...]],
    initially: Iterable[Row] = (),
) -> set[Row]:
    """The rows to blank. `counts`: answers per row; `members`: the cells each row adds
    up; `totals`: (total, its parts) pairs whose parts add up to the total; `order`: a
    sort key that makes the choice of complementary rows deterministic."""
    hidden = {row for row, count in counts.items() if count < k}
    hidden.update(initially)
    while True:
        if _complement_once(counts, totals, k, order, hidden):
            continue
        exposed = _first_recoverable(members, order, hidden)
        if exposed is None:
            return hidden
        overlapping = [
            row for row in members if row not in hidden and members[row] & members[exposed]
        ]
        hidden.add(min(overlapping, key=lambda row: (counts[row], order(row))))


def _complement_once(
    counts: Mapping[Row, int],
    totals: Sequence[tuple[Row, Sequence[Row]]],
    k: int,
    order: Callable[[Row], tuple[object, ...]],
    hidden: set[Row],
) -> bool:
    for total, parts in totals:
        if total in hidden:
            continue
        blanked = [part for part in parts if part in hidden]
        if blanked and sum(counts[part] for part in blanked) < k:
            shown = [part for part in parts if part not in hidden]
            if shown:
                hidden.add(min(shown, key=lambda part: (counts[part], order(part))))
            else:  # every part blanked and together under k: so is the total
                hidden.add(total)
            return True
    return False


def _first_recoverable(
    members: Mapping[Row, frozenset[Cell]],
    order: Callable[[Row], tuple[object, ...]],
    hidden: set[Row],
) -> Row | None:
    """A blanked row that published rows determine, or None. Cells published on their own
    are known, so only the cells not published alone are unknowns."""
    # A published row of a single cell (a cell, or a total over one cell) shows that cell.
    known = {
        next(iter(cells)) for row, cells in members.items() if row not in hidden and len(cells) == 1
    }
    unknown_cells = sorted({cell for row in hidden for cell in members[row]} - known, key=repr)
    column = {cell: index for index, cell in enumerate(unknown_cells)}
    span = _Span(len(unknown_cells))
    for row in members:
        if row not in hidden:
            span.add(_vector(members[row], column, len(unknown_cells)))
    for row in sorted(hidden, key=order):
        vector = _vector(members[row], column, len(unknown_cells))
        if span.contains(vector):  # all zeros too: every cell of it is published
            return row
    return None


def _vector(cells: frozenset[Cell], column: Mapping[Cell, int], size: int) -> list[int]:
    vector = [0] * size
    for cell in cells:
        if cell in column:
            vector[column[cell]] = 1
    return vector


class _Span:
    """The span of the rows added so far, kept in echelon form (modulo _P)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._basis: dict[int, list[int]] = {}  # pivot column -> row with 1 at the pivot

    def _reduce(self, vector: list[int]) -> list[int]:
        vector = list(vector)
        for pivot, row in self._basis.items():
            factor = vector[pivot]
            if factor:
                vector = [(v - factor * r) % _P for v, r in zip(vector, row, strict=True)]
        return vector

    def add(self, vector: list[int]) -> None:
        reduced = self._reduce(vector)
        pivot = next((i for i, v in enumerate(reduced) if v), None)
        if pivot is None:
            return
        inverse = pow(reduced[pivot], _P - 2, _P)
        normalised = [(v * inverse) % _P for v in reduced]
        for other_pivot, row in self._basis.items():
            factor = row[pivot]
            if factor:
                self._basis[other_pivot] = [
                    (r - factor * n) % _P for r, n in zip(row, normalised, strict=True)
                ]
        self._basis[pivot] = normalised

    def contains(self, vector: list[int]) -> bool:
        return not any(self._reduce(vector))
