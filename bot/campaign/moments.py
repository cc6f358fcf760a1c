"""Points in time as staff write them in content files, made timezone-aware.

A bare date means midnight local time at the start of that day, except for `expires`, where it
means the end of that day (so `expires: 2027-01-31` still allows slots on 31 January). A local
time that does not exist (skipped by a DST change) moves to the first minute after the gap; one
that happens twice is the first of the two, as for slots (docs/design.md, slot rules).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

Role = Literal["start", "expires", "at"]

FIRST_YEAR, LAST_YEAR = 2000, 2199
_DATE_SHAPE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}([T ]\d{1,2}:\d{2}(:\d{2})?)?$")


def parse_moment(value: object, zone: ZoneInfo, role: Role) -> datetime:
    """A YAML date, datetime or ISO string -> an aware datetime; raises ValueError for a user."""
    if isinstance(value, str):
        value = _parse_text(value.strip())
    if not isinstance(value, date):
        raise ValueError("should be a date (2026-12-01) or a date and time (2026-12-10T12:00)")
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        # A typo (0026, 9999) far from any campaign; also keeps slot arithmetic in range.
        raise ValueError(
            f"{value.isoformat()} is not a campaign date: the year should be {FIRST_YEAR}-{LAST_YEAR}"
        )
    moment = value if isinstance(value, datetime) else _day_boundary(value, role)
    if moment.tzinfo is None:
        return localize(moment, zone)
    return moment


def _parse_text(text: str) -> date:
    try:
        if len(text) == 10:  # YYYY-MM-DD
            return date.fromisoformat(text)
        return datetime.fromisoformat(text)
    except ValueError:
        if _DATE_SHAPE.match(text):  # the right shape, an impossible value: 2026-02-30
            raise ValueError(f"{text!r} is not a valid date") from None
        raise ValueError(
            f"{text!r} is not a date (2026-12-01) or a date and time (2026-12-10T12:00)"
        ) from None


def _day_boundary(day: date, role: Role) -> datetime:
    if role == "at":
        raise ValueError(f"{day.isoformat()} has no time of day; write it like {day.isoformat()}T12:00")
    if role == "expires":
        day += timedelta(days=1)
    return datetime.combine(day, time())


def localize(naive: datetime, zone: ZoneInfo) -> datetime:
    """Wall-clock time in `zone`: the first of a repeated time, the end of a skipped gap."""
    moment = naive.replace(tzinfo=zone, fold=0)
    # A time inside a DST gap does not survive a round trip through UTC; step to the gap's end.
    while moment.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != moment.replace(tzinfo=None):
        naive = naive.replace(second=0, microsecond=0) + timedelta(minutes=1)
        moment = naive.replace(tzinfo=zone, fold=0)
    return moment


# Legacy names that zoneinfo accepts but that never change for daylight saving, or that name a
# whole region's rules under an old alias: almost always a mistake for the city's zone.
_MEANT = {
    "EST": "America/New_York",
    "EST5EDT": "America/New_York",
    "EDT": "America/New_York",
    "CST6CDT": "America/Chicago",
    "MST": "America/Denver (America/Phoenix has no daylight saving)",
    "MST7MDT": "America/Denver",
    "PST8PDT": "America/Los_Angeles",
    "HST": "Pacific/Honolulu",
    "GMT": "Europe/London (or UTC)",
    "CET": "Europe/Berlin",
    "MET": "Europe/Berlin",
    "EET": "Europe/Athens",
    "WET": "Europe/Lisbon",
}


def zone_hint(name: str) -> str | None:
    """A warning for a zone name that is valid but probably not what was meant, or None."""
    if name in _MEANT:
        return f"timezone {name!r} is a legacy abbreviation; write the place's zone, probably {_MEANT[name]}"
    if name.startswith("Etc/GMT") and name not in ("Etc/GMT", "Etc/GMT0"):
        return f"timezone {name!r} is a fixed offset with no daylight saving (and its sign is reversed)"
    return None
