"""Durations as staff write them: `30s`, `5m`, `2h`, `1d` (or combined, `1h30m`)."""

from __future__ import annotations

import re
from datetime import timedelta

_PIECE = re.compile(r"(\d+)([smhd])")
_WHOLE = re.compile(r"(?:\d+[smhd])+")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# Longer than any campaign, short enough that dates built from it never leave Python's range.
LONGEST = timedelta(days=3650)


def parse_duration(text: str) -> timedelta:
    """`"30s"` -> 30 seconds; raises ValueError with a message fit for a user."""
    cleaned = text.strip()
    if not _WHOLE.fullmatch(cleaned):
        raise ValueError(f"{text!r} is not a duration: write it like 30s, 5m, 2h or 1d")
    seconds = sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _PIECE.findall(cleaned))
    if seconds > LONGEST.total_seconds():
        raise ValueError(f"{text!r} is too long: at most {LONGEST.days}d")
    return timedelta(seconds=seconds)


def format_duration(duration: timedelta) -> str:
    """timedelta(minutes=90) -> "1h30m": the way staff write durations (whole seconds)."""
    seconds = int(duration.total_seconds())
    if seconds <= 0:
        return "0s"
    pieces = []
    for unit, size in _UNIT_SECONDS_DESCENDING:
        count, seconds = divmod(seconds, size)
        if count:
            pieces.append(f"{count}{unit}")
    return "".join(pieces)


_UNIT_SECONDS_DESCENDING = sorted(_UNIT_SECONDS.items(), key=lambda item: -item[1])
