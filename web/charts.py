"""Charts as SVG, drawn on the server with matplotlib (Agg, no pyplot), sized to stay
readable when a phone shrinks them to its width. One chart is drawn at a time (a lock):
matplotlib's font and text caches are not made for threads."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import ParamSpec

import matplotlib

matplotlib.use("Agg")

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter

# Okabe-Ito: told apart by people with any common colour-vision deficiency.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000"]
# This process draws no other kind of figure, so the style is set once, for all.
matplotlib.rc("font", size=12)
matplotlib.rc("axes.spines", top=False, right=False)
matplotlib.rc("svg", fonttype="none", hashsalt="callerloop")  # text stays text; same bytes
SIZE = (6.4, 3.6)  # inches: a phone shows it at about half size, text still ~10 px
MAX_TICKS = 8

Values = Sequence[float | None]


_drawing = threading.Lock()
P = ParamSpec("P")


def one_at_a_time(draw: Callable[P, str]) -> Callable[P, str]:
    def locked(*args: P.args, **kwargs: P.kwargs) -> str:
        with _drawing:
            return draw(*args, **kwargs)

    return locked


def _figure() -> Figure:
    return Figure(figsize=SIZE, layout="constrained")


def _svg(figure: Figure) -> str:
    out = io.StringIO()
    figure.savefig(out, format="svg", metadata={"Date": None, "Creator": "callerloop"})
    return out.getvalue()


def _empty(message: str = "No data for these filters.") -> str:
    figure = _figure()
    figure.text(0.5, 0.5, message, ha="center", va="center", fontsize=14)
    return _svg(figure)


def _thin(axis_labels: Sequence[str]) -> list[int]:
    step = max(1, -(-len(axis_labels) // MAX_TICKS))
    return list(range(0, len(axis_labels), step))


def _legend(axes: Axes, count: int) -> None:
    if count > 1:
        axes.legend(frameon=False, fontsize=10, ncols=min(count, 3), loc="upper left")


@one_at_a_time
def bars(
    categories: Sequence[str],
    series: Mapping[str, Values],
    *,
    stacked: bool = False,
    horizontal: bool = False,
    percent: bool = False,
    label: str = "",
) -> str:
    if not categories:
        return _empty()
    figure = _figure()
    axes = figure.add_subplot()
    positions = list(range(len(categories)))
    width = 0.8 if stacked else 0.8 / max(1, len(series))
    bottom = [0.0] * len(categories)
    for index, (name, raw) in enumerate(series.items()):
        values = [v or 0.0 for v in raw]
        offset = 0.0 if stacked else (index - (len(series) - 1) / 2) * width
        where = [p + offset for p in positions]
        if horizontal:
            axes.barh(where, values, height=width, left=bottom, label=name)
        else:
            axes.bar(where, values, width=width, bottom=bottom, label=name)
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
    else:
        shown = _thin(categories)
        axes.set_xticks([positions[i] for i in shown], [categories[i] for i in shown])
        axes.set_ylabel(label)
    _legend(axes, len(series))
    return _svg(figure)


@one_at_a_time
def lines(
    x: Sequence[str], series: Mapping[str, Values], *, percent: bool = False, label: str = ""
) -> str:
    if not x:
        return _empty()
    figure = _figure()
    axes = figure.add_subplot()
    positions = list(range(len(x)))
    for index, (name, values) in enumerate(series.items()):
        points = [(p, v) for p, v in zip(positions, values, strict=True) if v is not None]
        xs, ys = [p for p, _ in points], [v for _, v in points]
        axes.plot(xs, ys, marker="o", label=name, color=PALETTE[index % len(PALETTE)])
    if percent:
        axes.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        axes.set_ylim(0, 1.05)
    shown = _thin(x)
    axes.set_xticks([positions[i] for i in shown], [x[i] for i in shown])
    axes.set_ylabel(label)
    _legend(axes, len(series))
    return _svg(figure)
