"""Quiet hours: no survey is sent at night in the agency's time zone."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from workflows.policy import QuietHours


def parse_clock(value: str) -> time:
    """'21:00' → time(21, 0). Raises ValueError with the offending text."""
    try:
        hours, minutes = value.split(":")
        return time(int(hours), int(minutes))
    except ValueError as error:
        raise ValueError(f"expected a time of day as HH:MM, got {value!r}") from error


def _in_quiet_hours(local: time, start: time, end: time) -> bool:
    if start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end  # spans midnight


def wait_out_quiet_hours(at: datetime, quiet: QuietHours | None, time_zone: str) -> timedelta:
    """How long after `at` the quiet hours end; zero when `at` is outside them."""
    if quiet is None:
        return timedelta(0)
    start, end = parse_clock(quiet.start), parse_clock(quiet.end)
    local = at.astimezone(ZoneInfo(time_zone))
    if not _in_quiet_hours(local.time(), start, end):
        return timedelta(0)
    end_today = local.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
    quiet_end = end_today if end_today > local else end_today + timedelta(days=1)
    # Subtract in UTC: datetimes sharing a tzinfo subtract as wall clocks, which is an
    # hour off across a DST change.
    return quiet_end.astimezone(UTC) - at.astimezone(UTC)
