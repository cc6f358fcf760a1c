"""When a queue fires: slot names and times, exactly the rules of docs/design.md (slot rules).

A slot is one scheduled time of a queue, named by that time before jitter, written as the
local ISO time with its UTC offset (`2026-03-08T03:00-04:00`), so that a time that happens
twice in the autumn still gives two distinct names for `every` slots, and every worker derives
the same name. The rules, in the order they apply:

1. cron slots in the queue's local time, day of week 0/7 = Sunday, crontab's OR rule when both
   day fields are restricted; a local time that happens twice fires once (at its first
   occurrence), one that does not exist fires at the first minute after the gap, and several
   such times collapse into that one minute. `every` slots are counted in elapsed time from the
   queue's `start` (default midnight, 1 January 2026, local). `at` slots as listed.
2. the queue's `start` and `expires` (no slot before `start`, none at or after `expires`,
   which the loader makes exclusive: a bare date means the end of that day);
3. quiet hours `[start, end)` local: slots inside are skipped, except that the first skipped
   slot of each quiet period moves to the period's end unless a slot already falls there (the
   moved slot is named by its new time);
4. jitter: a delay in `[0, jitter]` whole seconds, taken from a SHA-256 of queue name and slot
   name, so every worker (and every preview) computes the same time.

Pinned posts (`at:` on a post) make their own slots, outside this order: no jitter, no quiet
hours (a person chose that minute), named `pinned:<post id>`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.campaign.cron import CronSpec, parse_cron
from bot.campaign.model import Queue, Schedule

# `every` slots are counted from here when the queue gives no `start` (docs/design.md, slot rules).
DEFAULT_EVERY_ANCHOR = (2026, 1, 1)
# A quiet period is shorter than a day, so a day before a window holds every slot that the
# quiet-hours rule could move into it.
_QUIET_LOOKBACK = timedelta(days=1)


@dataclass(frozen=True)
class Slot:
    """One firing of a queue. Times are aware UTC; `nominal` is the time the name stands for."""

    queue: str
    name: str
    nominal: datetime
    fire_at: datetime
    pinned: str | None = None  # the post id, for a pinned post's slot


def slot_name(when: datetime, tz: ZoneInfo) -> str:
    local = when.astimezone(tz)
    return local.isoformat(timespec="minutes" if local.second == 0 else "seconds")


def jitter_for(queue_name: str, name: str, jitter: timedelta) -> timedelta:
    """The same delay in [0, jitter] for every worker: a hash, never Python's salted `hash()`."""
    span = int(jitter.total_seconds())
    if span <= 0:
        return timedelta(0)
    digest = hashlib.sha256(f"{queue_name}\x00{name}".encode()).digest()
    return timedelta(seconds=int.from_bytes(digest[:8], "big") % (span + 1))


# --- nominal times ------------------------------------------------------------------------------


def resolve_local(wall: datetime, tz: ZoneInfo) -> datetime:
    """The instant a naive local wall time stands for, by the slot rules' DST handling, in UTC.

    Twice-happening times take their first occurrence (fold=0); a time inside a spring-forward
    gap moves to the first wall-clock minute that exists after the gap.
    """
    candidate = wall
    while True:
        aware = candidate.replace(tzinfo=tz, fold=0)
        back = aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None)
        if back == candidate:
            return aware.astimezone(UTC)
        candidate = (candidate + timedelta(minutes=1)).replace(second=0, microsecond=0)


def _cron_times(spec: CronSpec, tz: ZoneInfo, lo: datetime, hi: datetime) -> Iterator[datetime]:
    # Wall times a few hours outside [lo, hi) cannot land inside it whatever the UTC offset does,
    # so only the rest are resolved (the daemon asks for a few seconds' worth on every tick).
    margin = timedelta(hours=3)
    lo_wall = lo.astimezone(tz).replace(tzinfo=None) - margin
    hi_wall = hi.astimezone(tz).replace(tzinfo=None) + margin
    day = lo_wall.date()
    hours, minutes = sorted(spec.hours), sorted(spec.minutes)
    while day <= hi_wall.date():
        if spec.matches_day(day.year, day.month, day.day):
            for hour in hours:
                for minute in minutes:
                    wall = datetime.combine(day, time(hour, minute))
                    if lo_wall <= wall <= hi_wall:
                        yield resolve_local(wall, tz)
        day += timedelta(days=1)


def every_anchor(queue: Queue, tz: ZoneInfo) -> datetime:
    if queue.start is not None:
        return queue.start.astimezone(UTC)
    y, m, d = DEFAULT_EVERY_ANCHOR
    return resolve_local(datetime.combine(date(y, m, d), time(0)), tz)


def _every_times(
    queue: Queue, every: timedelta, tz: ZoneInfo, lo: datetime, hi: datetime
) -> Iterator[datetime]:
    anchor = every_anchor(queue, tz)
    k = max(0, -((anchor - lo) // every))  # ceil((lo - anchor) / every), never before the anchor
    when = anchor + k * every
    while when < hi:
        yield when
        when += every


def _nominal_times(queue: Queue, lo: datetime, hi: datetime) -> list[datetime]:
    """Every nominal slot time in [lo, hi), before quiet hours, sorted and without repeats."""
    schedule = queue.schedule
    tz = ZoneInfo(schedule.timezone)
    if schedule.kind == "cron":
        assert schedule.cron is not None, "the loader guarantees a cron expression"
        times: Iterator[datetime] = _cron_times(parse_cron(schedule.cron), tz, lo, hi)
    elif schedule.kind == "every":
        assert schedule.every is not None and schedule.every > timedelta(0), "the loader checks `every`"
        times = _every_times(queue, schedule.every, tz, lo, hi)
    else:
        times = (t.astimezone(UTC) for t in schedule.at)
    return sorted({t for t in times if lo <= t < hi and _within_queue(queue, t)})


def _within_queue(queue: Queue, when: datetime) -> bool:
    return (queue.start is None or when >= queue.start) and (queue.expires is None or when < queue.expires)


# --- quiet hours --------------------------------------------------------------------------------


def in_quiet_hours(local: time, quiet: tuple[time, time]) -> bool:
    start, end = quiet
    if start == end:
        return False  # an empty period, not a whole day
    if start < end:
        return start <= local < end
    return local >= start or local < end


def _quiet_end(when: datetime, schedule: Schedule, tz: ZoneInfo) -> datetime:
    """The end of the quiet period holding `when`: the next local `end` time after it."""
    assert schedule.quiet_hours is not None
    end = schedule.quiet_hours[1]
    local = when.astimezone(tz)
    day = local.date() if local.time() < end else local.date() + timedelta(days=1)
    return resolve_local(datetime.combine(day, end), tz)


def _apply_quiet_hours(times: list[datetime], schedule: Schedule, tz: ZoneInfo) -> list[datetime]:
    quiet = schedule.quiet_hours
    if quiet is None:
        return times
    kept = [t for t in times if not in_quiet_hours(t.astimezone(tz).time(), quiet)]
    present = set(kept)
    moved: set[datetime] = set()
    for t in times:  # sorted: the first skipped slot of each period is met first
        if in_quiet_hours(t.astimezone(tz).time(), quiet):
            end = _quiet_end(t, schedule, tz)
            if end not in present:
                moved.add(end)
                present.add(end)
    return sorted(present)


# --- public -------------------------------------------------------------------------------------


def slots_between(queue: Queue, lo: datetime, hi: datetime) -> list[Slot]:
    """The queue's slots, pinned ones included, that fire in [lo, hi), in firing order."""
    schedule = queue.schedule
    tz = ZoneInfo(schedule.timezone)
    reach = schedule.jitter + (_QUIET_LOOKBACK if schedule.quiet_hours else timedelta(0))
    times = _apply_quiet_hours(_nominal_times(queue, lo - reach, hi), schedule, tz)
    slots = []
    for t in times:
        if not _within_queue(queue, t):
            continue  # a slot moved to the end of quiet hours may land past `expires`
        name = slot_name(t, tz)
        fire = t + jitter_for(queue.name, name, schedule.jitter)
        if lo <= fire < hi:
            slots.append(Slot(queue.name, name, t, fire))
    for post in queue.posts:
        if post.at is None:
            continue
        at = post.at.astimezone(UTC)
        if lo <= at < hi and _within_queue(queue, at):
            slots.append(Slot(queue.name, f"pinned:{post.id}", at, at, pinned=post.id))
    return sorted(slots, key=lambda s: (s.fire_at, s.name))


def next_slots(
    queue: Queue, after: datetime, count: int, horizon: timedelta = timedelta(days=400)
) -> list[Slot]:
    """The first `count` slots firing at or after `after`, looking no further than `horizon`."""
    found: list[Slot] = []
    window = timedelta(days=7)
    lo = after
    while len(found) < count and lo < after + horizon:
        hi = min(lo + window, after + horizon)
        found.extend(slots_between(queue, lo, hi))
        lo = hi
        window *= 2  # sparse schedules (a yearly cron) are found in a few widening steps
    return found[:count]
