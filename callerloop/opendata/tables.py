"""The published rows: each month's cells and their totals (by priority, by call-type
group, by language, the whole month), with small groups blanked (see `suppression`).

Two tables: `responses` (texts, surveys, responses, response rate, and the row's share
of the month's invitations and responses: one row per cell or total) and `scores` (per
scale question: answers, mean score, share satisfied). Rates and shares come with their
95 % Wilson interval (`callerloop.survey.figures`). A row that is blanked keeps its
labels, has empty values and `suppressed` set.

Every published figure is worked out from published counts only (its row's, and for a
share of the month, the month's): so no interval or share gives away a blanked count.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from callerloop.opendata.gather import CellKey, Tally
from callerloop.opendata.suppression import suppress
from callerloop.survey.figures import (
    Basis,
    Share,
    basis,
    invitations,
    represented,
    response_rate,
    share,
)

CELL = "cell"
TOTAL = "month"
# Dimensions a total is broken down by; a row of breakdown "priority" is the month's
# total for one priority (call-type group and language left empty).
DIMENSIONS = ("priority", "call_type_group", "language")
BREAKDOWNS = (CELL, *DIMENSIONS, TOTAL)


@dataclass(frozen=True)
class RowKey:
    breakdown: str
    month: str
    priority: int | None = None
    call_type_group: str | None = None
    language: str | None = None

    def order(self) -> tuple[object, ...]:
        return (
            self.month,
            BREAKDOWNS.index(self.breakdown),
            -1 if self.priority is None else self.priority,
            self.call_type_group or "",
            self.language or "",
        )


DECIMALS = 3


@dataclass(frozen=True)
class Bounded:
    """A published share and its 95 % interval, rounded; all None: not published."""

    value: float | None = None
    low: float | None = None
    high: float | None = None

    @classmethod
    def of(cls, found: Share | None) -> Bounded:
        if found is None:
            return cls()
        return cls(*(round(v, DECIMALS) for v in (found.value, found.low, found.high)))


NOT_PUBLISHED = Bounded()


@dataclass(frozen=True)
class ResponsesRow:
    agency: str
    key: RowKey
    texts_sent: int | None
    surveys_sent: int | None
    surveys_delivered: int | None  # None too when the month's basis is "sent"
    responses: int | None
    response_rate_basis: Basis | None
    response_rate: Bounded  # responses / surveys delivered (or sent: the basis)
    share_of_surveys: float | None  # of the month's invitations (the basis's)
    share_of_responses: Bounded  # of the month's responses
    suppressed: bool


@dataclass(frozen=True)
class ScoresRow:
    agency: str
    key: RowKey
    question: str
    answered: int | None  # answers on the scale (skipped and "does not apply" left out)
    mean_score: float | None  # 1 to 5
    share_satisfied: Bounded  # share of answers of 4 or 5
    suppressed: bool


@dataclass(frozen=True)
class Tables:
    responses: list[ResponsesRow]
    scores: list[ScoresRow]


def build_tables(
    agency_id: str, tallies: Mapping[CellKey, Tally], questions: Iterable[str], k: int
) -> Tables:
    questions = list(questions)
    by_month: dict[str, dict[CellKey, Tally]] = defaultdict(dict)
    for cell, tally in tallies.items():
        by_month[cell.month][cell] = tally
    responses: list[ResponsesRow] = []
    scores: list[ScoresRow] = []
    for month in sorted(by_month):
        block = _Block(month, by_month[month])
        hidden = block.suppress(lambda t: t.responses, k, ())
        whole = RowKey(TOTAL, month)
        # The whole month, for the rows' shares of it: only when it is published itself.
        month_total = None if whole in hidden else block.tallies[whole]
        counted_as = basis(block.tallies[whole].surveys_without_receipts)
        for row in sorted(block.members, key=RowKey.order):
            responses.append(
                _responses_row(
                    agency_id,
                    row,
                    block.tallies[row],
                    row in hidden,
                    counted_as,
                    None if row == whole else month_total,
                )
            )
        for question in questions:
            hidden_q = block.suppress(_answers_to(question), k, hidden)
            for row in sorted(block.members, key=RowKey.order):
                scores.append(
                    _scores_row(agency_id, row, question, block.tallies[row], row in hidden_q)
                )
    return Tables(responses, scores)


class _Block:
    """One month: its cells, every total over them, and which totals add up to which."""

    def __init__(self, month: str, cells: Mapping[CellKey, Tally]) -> None:
        self.members: dict[RowKey, frozenset[CellKey]] = {}
        for cell in cells:
            for row in _rows_of(cell):
                self.members[row] = self.members.get(row, frozenset()) | {cell}
        self.tallies: dict[RowKey, Tally] = {}
        for row, members in self.members.items():
            total = Tally()
            for cell in members:
                total.add(cells[cell])
            self.tallies[row] = total
        whole = RowKey(TOTAL, month)
        cell_rows = {cell: _cell_row(cell) for cell in cells}
        self.totals: list[tuple[RowKey, list[RowKey]]] = [(whole, list(cell_rows.values()))]
        for dimension in DIMENSIONS:
            margins = [row for row in self.members if row.breakdown == dimension]
            self.totals.append((whole, margins))
            for margin in margins:
                self.totals.append((margin, [cell_rows[c] for c in self.members[margin]]))

    def suppress(
        self, count: Callable[[Tally], int], k: int, initially: Iterable[RowKey]
    ) -> set[RowKey]:
        counts = {row: int(count(tally)) for row, tally in self.tallies.items()}
        return suppress(counts, self.members, self.totals, k, RowKey.order, initially)


def _answers_to(question: str) -> Callable[[Tally], int]:
    return lambda tally: tally.answered[question]


def _cell_row(cell: CellKey) -> RowKey:
    return RowKey(CELL, cell.month, cell.priority, cell.call_type_group, cell.language)


def _rows_of(cell: CellKey) -> list[RowKey]:
    """Every published row a cell counts in."""
    return [
        _cell_row(cell),
        RowKey("priority", cell.month, priority=cell.priority),
        RowKey("call_type_group", cell.month, call_type_group=cell.call_type_group),
        RowKey("language", cell.month, language=cell.language),
        RowKey(TOTAL, cell.month),
    ]


def _responses_row(
    agency: str,
    key: RowKey,
    tally: Tally,
    hidden: bool,
    counted_as: Basis,
    month: Tally | None,
) -> ResponsesRow:
    """`month`: the month's published total, for this row's share of it (None: the row
    is the month, or the month is blanked)."""
    if hidden:
        return ResponsesRow(
            agency, key, None, None, None, None, None, NOT_PUBLISHED, None, NOT_PUBLISHED, True
        )
    invited = invitations(counted_as, tally.surveys_sent, tally.surveys_delivered)
    of_month = None
    if month is not None:
        month_invited = invitations(counted_as, month.surveys_sent, month.surveys_delivered)
        of_month = represented(tally.responses, month.responses, invited, month_invited)
    return ResponsesRow(
        agency,
        key,
        tally.texts_sent,
        tally.surveys_sent,
        tally.surveys_delivered if counted_as is Basis.DELIVERED else None,
        tally.responses,
        counted_as if tally.surveys_sent else None,
        Bounded.of(response_rate(tally.responses, invited)),
        None
        if of_month is None or of_month.of_invitations is None
        else round(of_month.of_invitations, DECIMALS),
        NOT_PUBLISHED if of_month is None else Bounded.of(of_month.of_responses),
        False,
    )


def _scores_row(agency: str, key: RowKey, question: str, tally: Tally, hidden: bool) -> ScoresRow:
    answered = tally.answered[question]
    if hidden or not answered:
        return ScoresRow(agency, key, question, None, None, NOT_PUBLISHED, hidden)
    return ScoresRow(
        agency,
        key,
        question,
        answered,
        round(tally.score_sum[question] / answered, 2),
        Bounded.of(share(tally.satisfied[question], answered)),
        False,
    )
