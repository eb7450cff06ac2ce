"""Quiet-hours arithmetic in the agency's time zone, across midnight and DST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from workflows.policy import QuietHours
from workflows.quiet_hours import parse_clock, wait_out_quiet_hours

NEW_YORK = ZoneInfo("America/New_York")
NIGHT = QuietHours(start="21:00", end="08:00")


def local(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=NEW_YORK)


@pytest.mark.parametrize(
    ("at", "wait"),
    [
        (local(2025, 9, 1, 12, 0), timedelta(0)),
        (local(2025, 9, 1, 20, 59), timedelta(0)),
        (local(2025, 9, 1, 21, 0), timedelta(hours=11)),
        (local(2025, 9, 1, 23, 30), timedelta(hours=8, minutes=30)),
        (local(2025, 9, 2, 7, 45), timedelta(minutes=15)),
        (local(2025, 9, 2, 8, 0), timedelta(0)),
    ],
)
def test_wait_until_quiet_hours_end(at: datetime, wait: timedelta) -> None:
    assert wait_out_quiet_hours(at.astimezone(UTC), NIGHT, "America/New_York") == wait


def test_dst_night_is_an_hour_shorter_and_ends_at_local_eight() -> None:
    # 2025-03-09: clocks in New York jump from 02:00 to 03:00.
    at = local(2025, 3, 8, 23, 0)
    wait = wait_out_quiet_hours(at.astimezone(UTC), NIGHT, "America/New_York")
    assert wait == timedelta(hours=8)
    assert (at.astimezone(UTC) + wait).astimezone(NEW_YORK).hour == 8


def test_daytime_quiet_hours_and_none() -> None:
    lunch = QuietHours(start="12:00", end="13:00")
    assert wait_out_quiet_hours(local(2025, 9, 1, 12, 30), lunch, "America/New_York") == timedelta(
        minutes=30
    )
    assert wait_out_quiet_hours(local(2025, 9, 1, 23, 0), None, "America/New_York") == timedelta(0)


def test_bad_clock_names_the_value() -> None:
    with pytest.raises(ValueError, match="'25h'"):
        parse_clock("25h")
