"""The period a report covers, in the campaign's timezone, and the steps its charts count by.

Per day for periods over three days, per hour up to three days; periods up to 12 hours (a
rehearsal of a few minutes) count by 10 s, 1, 5 or 15 min, the first that keeps 48 bars or fewer.
Steps start on local boundaries (midnight, the hour), so a day is the campaign's day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from bot.campaign.moments import localize

HOURLY_UP_TO = timedelta(days=3)
FINE_UP_TO = timedelta(hours=12)
FINE_STEPS = (timedelta(seconds=10), timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15))
MAX_BARS = 48


@dataclass(frozen=True)
class Period:
    since: datetime  # aware UTC, inclusive
    until: datetime  # aware UTC, exclusive
    zone: ZoneInfo

    def __contains__(self, moment: datetime | None) -> bool:
        return moment is not None and self.since <= moment < self.until

    @property
    def step(self) -> timedelta:
        length = self.until - self.since
        if length > HOURLY_UP_TO:
            return timedelta(days=1)
        if length > FINE_UP_TO:
            return timedelta(hours=1)
        for step in FINE_STEPS:
            if length / step <= MAX_BARS:
                return step
        return timedelta(hours=1)

    def bucket(self, moment: datetime) -> datetime:
        """The start (aware, local) of the step `moment` falls in."""
        local = moment.astimezone(self.zone)
        step = self.step
        if step >= timedelta(days=1):
            return localize(local.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None), self.zone)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        into_day = local - midnight  # wall-clock arithmetic: hours stay on the hour across DST
        return midnight + (into_day // step) * step

    def buckets(self) -> list[datetime]:
        """Every step's start from `since` to `until`, in order (at least one)."""
        found: list[datetime] = []
        moment = self.since
        while moment < self.until or not found:
            start = self.bucket(moment)
            if not found or start != found[-1]:
                found.append(start)
            # Next step: from the start of this one, in UTC so DST days (23 or 25 h) are walked whole.
            after = start.astimezone(UTC) + self.step
            moment = max(after, moment + timedelta(seconds=1))
        return found

    def label(self, start: datetime) -> str:
        """A bar's label: the day, the hour or the time, local."""
        if self.step >= timedelta(days=1):
            return start.strftime("%d %b")
        if self.step >= timedelta(hours=1):
            return start.strftime("%a %H:00")
        return start.strftime("%H:%M:%S" if self.step < timedelta(minutes=1) else "%H:%M")

    def describe(self) -> str:
        """'2026-12-01 09:00 – 2026-12-03 10:44 (Europe/Berlin)'."""
        since, until = (t.astimezone(self.zone).strftime("%Y-%m-%d %H:%M") for t in (self.since, self.until))
        return f"{since} – {until} ({self.zone.key})"
