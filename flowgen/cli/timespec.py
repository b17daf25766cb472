"""Durations and points in time as users write them on the command line.

`90s`, `30m`, `1h`, `7d`, `1h30m` (units s, m, h, d, w; Go-style like the
hubble CLI, plus days and weeks), and RFC 3339 times (`2026-11-20T09:00:00Z`).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from flowgen.errors import UsageError

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str, option: str) -> timedelta:
    """`1h30m` -> 1:30:00. Raises UsageError naming the option and the accepted forms."""
    compact = text.strip().lower()
    parts = _PART.findall(compact)
    if not compact or "".join(number + unit for number, unit in parts) != compact:
        raise UsageError(f"{option}: {text!r} is not a duration; write it like 90s, 30m, 1h, 7d or 1h30m")
    return timedelta(seconds=sum(float(number) * _UNITS[unit] for number, unit in parts))


def parse_time(text: str, option: str) -> datetime:
    """An RFC 3339 time; a time without a zone is taken as UTC."""
    try:
        when = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        raise UsageError(f"{option}: {text!r} is not a time; write it like 2026-11-20T09:00:00Z") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def parse_since(text: str, option: str, now: datetime) -> datetime:
    """A duration back from `now` (`7d`) or an absolute time."""
    if text.strip()[:1].isdigit() and not re.match(r"^\d{4}-", text.strip()):
        return now - parse_duration(text, option)
    return parse_time(text, option)
