"""Small, pure statistics for the bench: percentiles and latency summaries."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between closest ranks, like
    numpy's default; NaN for no values."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Summary:
    """Latency figures in milliseconds."""

    count: int
    p50: float
    p95: float
    p99: float
    max: float
    mean: float

    def as_dict(self) -> dict[str, Any]:
        return {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in asdict(self).items()
        }


def summarize(seconds: Iterable[float]) -> Summary:
    """p50/p95/p99/max/mean in milliseconds of latencies given in seconds."""
    values = [s * 1000 for s in seconds]
    if not values:
        return Summary(0, math.nan, math.nan, math.nan, math.nan, math.nan)
    return Summary(
        count=len(values),
        p50=round(percentile(values, 50), 1),
        p95=round(percentile(values, 95), 1),
        p99=round(percentile(values, 99), 1),
        max=round(max(values), 1),
        mean=round(sum(values) / len(values), 1),
    )


def per_second_counts(times: Sequence[float]) -> list[int]:
    """How many of `times` (seconds) fall into each whole second from the first one."""
    if not times:
        return []
    start = math.floor(min(times))
    counts = [0] * (math.floor(max(times)) - start + 1)
    for moment in times:
        counts[math.floor(moment) - start] += 1
    return counts


def max_in_window(times: Sequence[float], window: float = 1.0) -> int:
    """The most of `times` inside any half-open window [t, t + window): a sliding count,
    stricter than counting per calendar second."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, moment in enumerate(ordered):
        while moment - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else math.nan
