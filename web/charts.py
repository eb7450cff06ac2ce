"""Charts as SVG, drawn on the server with matplotlib (Agg, no pyplot), sized to stay
readable when a phone shrinks them to its width. One chart is drawn at a time (a lock):
matplotlib's font and text caches are not made for threads."""

from __future__ import annotations

import functools
import io
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, ParamSpec

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Okabe-Ito: told apart by people with any common colour-vision deficiency.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000"]
SIZE = (4.8, 3.2)  # inches: a 375 px phone shows it at 0.7 times: 13 pt text is ~12 px
MAX_TICKS = 6

Values = Sequence[float | None]
# Per series, the low and the high end of each value's interval (None: none).
Intervals = Mapping[str, tuple[Values, Values]]
INTERVAL_COLOUR = "#1b1b1b"


_drawing = threading.Lock()
P = ParamSpec("P")


def one_at_a_time(draw: Callable[P, str]) -> Callable[P, str]:
    def locked(*args: P.args, **kwargs: P.kwargs) -> str:
        with _drawing:
            return draw(*args, **kwargs)

    return locked


@functools.cache
def _matplotlib() -> None:
    """matplotlib, imported on the first chart (not with the web app: it is a third of
    the app's start-up, and most processes never draw) and styled once: this process
    draws no other kind of figure, so the style is set for all."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rc("font", size=13)
    matplotlib.rc("axes.spines", top=False, right=False)
    matplotlib.rc("svg", fonttype="none", hashsalt="callerloop")  # text stays text; same bytes


def _figure() -> Figure:
    _matplotlib()
    from matplotlib.figure import Figure

    return Figure(figsize=SIZE, layout="constrained")


def _svg(figure: Figure) -> str:
    out = io.StringIO()
    figure.savefig(out, format="svg", metadata={"Date": None, "Creator": "callerloop"})
    return out.getvalue()


def _empty(message: str = "No data for these filters.") -> str:
    figure = _figure()
    figure.text(0.5, 0.5, message, ha="center", va="center", fontsize=14)
    return _svg(figure)


def _thin(axis_labels: Sequence[str]) -> tuple[list[int], list[str]]:
    """At most MAX_TICKS labels; days ("2025-09-14") shown as "09-14" so they fit."""
    step = max(1, -(-len(axis_labels) // MAX_TICKS))
    shown = list(range(0, len(axis_labels), step))
    return shown, [_short(axis_labels[i]) for i in shown]


def _short(label: str) -> str:
    return label[5:] if len(label) == 10 and label[4] == label[7] == "-" else label


def _error_offsets(values: Values, interval: tuple[Values, Values]) -> list[list[float]]:
    """matplotlib's error bars: how far below and above each value its interval reaches
    (nan where there is none: no bar is drawn)."""
    nan = float("nan")
    lows, highs = interval
    below = [nan if v is None or lo is None else v - lo for v, lo in zip(values, lows, strict=True)]
    above = [
        nan if v is None or hi is None else hi - v for v, hi in zip(values, highs, strict=True)
    ]
    return [below, above]


def _legend(figure: Figure, count: int) -> None:
    """Above the plot, never over the data."""
    if count > 1:
        figure.legend(frameon=False, fontsize=12, ncols=min(count, 3), loc="outside upper center")


@one_at_a_time
def bars(
    categories: Sequence[str],
    series: Mapping[str, Values],
    *,
    stacked: bool = False,
    horizontal: bool = False,
    percent: bool = False,
    label: str = "",
    axis: str = "",
    intervals: Intervals | None = None,
) -> str:
    """`label` names the values, `axis` the categories; `intervals` draws each series'
    intervals as error bars."""
    if not categories:
        return _empty()
    figure = _figure()
    axes = figure.add_subplot()
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    positions = list(range(len(categories)))
    width = 0.8 if stacked else 0.8 / max(1, len(series))
    bottom = [0.0] * len(categories)
    for index, (name, raw) in enumerate(series.items()):
        values = [v or 0.0 for v in raw]
        offset = 0.0 if stacked else (index - (len(series) - 1) / 2) * width
        where = [p + offset for p in positions]
        colour = PALETTE[index % len(PALETTE)]
        offsets = None
        if intervals is not None and name in intervals:
            offsets = _error_offsets(raw, intervals[name])
        error_bars = {"ecolor": INTERVAL_COLOUR, "elinewidth": 1.2, "capsize": 3}
        if horizontal:
            axes.barh(where, values, height=width, left=bottom, label=name, color=colour,
                      xerr=offsets, error_kw=error_bars)  # fmt: skip
        else:
            axes.bar(where, values, width=width, bottom=bottom, label=name, color=colour,
                     yerr=offsets, error_kw=error_bars)  # fmt: skip
        if stacked:
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    value_axis = axes.xaxis if horizontal else axes.yaxis
    if percent:
        value_axis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    else:
        value_axis.set_major_locator(MaxNLocator(integer=True))
    if horizontal:
        axes.set_yticks(positions, list(categories))
        axes.invert_yaxis()  # the first (largest) on top
        axes.set_xlabel(label)
        axes.set_ylabel(axis)
    else:
        shown, labels = _thin(categories)
        axes.set_xticks([positions[i] for i in shown], labels)
        axes.set_ylabel(label)
        axes.set_xlabel(axis)
    _legend(figure, len(series))
    return _svg(figure)


@one_at_a_time
def stacked_steps(
    categories: Sequence[str], series: Mapping[str, Values], *, label: str = ""
) -> str:
    """Stacked bars for many categories (days), drawn as one stepped area per series:
    the same picture as a bar per day and kind, a fraction of the drawing."""
    if not categories:
        return _empty()
    figure = _figure()
    axes = figure.add_subplot()
    from matplotlib.ticker import MaxNLocator

    edges = [p - 0.5 for p in range(len(categories) + 1)]
    bottom = [0.0] * len(categories)
    for index, (name, raw) in enumerate(series.items()):
        top = [b + (v or 0.0) for b, v in zip(bottom, raw, strict=True)]
        axes.stairs(top, edges, baseline=bottom, fill=True, label=name,
                    color=PALETTE[index % len(PALETTE)])  # fmt: skip
        bottom = top
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    shown, labels = _thin(categories)
    axes.set_xticks(shown, labels)
    axes.set_xlim(edges[0], edges[-1])
    axes.set_ylabel(label)
    _legend(figure, len(series))
    return _svg(figure)


@one_at_a_time
def lines(
    x: Sequence[str],
    series: Mapping[str, Values],
    *,
    percent: bool = False,
    label: str = "",
    intervals: Intervals | None = None,
) -> str:
    """`intervals` shades each series' intervals as a band around its line."""
    if not x:
        return _empty()
    figure = _figure()
    axes = figure.add_subplot()
    from matplotlib.ticker import PercentFormatter

    positions = list(range(len(x)))
    for index, (name, values) in enumerate(series.items()):
        points = [(p, v) for p, v in zip(positions, values, strict=True) if v is not None]
        xs, ys = [p for p, _ in points], [v for _, v in points]
        colour = PALETTE[index % len(PALETTE)]
        axes.plot(xs, ys, marker="o", label=name, color=colour)
        if intervals is not None and name in intervals:
            lows, highs = intervals[name]
            band = [(p, lo, hi) for p, lo, hi in zip(positions, lows, highs, strict=True)
                    if lo is not None and hi is not None]  # fmt: skip
            axes.fill_between([p for p, _, _ in band], [lo for _, lo, _ in band],
                              [hi for _, _, hi in band], color=colour, alpha=0.2,
                              linewidth=0)  # fmt: skip
    if percent:
        axes.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        axes.set_ylim(0, 1.05)
    shown, labels = _thin(x)
    axes.set_xticks([positions[i] for i in shown], labels)
    axes.set_ylabel(label)
    _legend(figure, len(series))
    return _svg(figure)
