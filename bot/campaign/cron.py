"""Standard five-field crontab expressions, parsed into sets the planner can test a minute against.

Fields: minute (0-59), hour (0-23), day of month (1-31), month (1-12 or jan-dec), day of week
(0-7 or sun-sat; 0 and 7 are both Sunday, 1 is Monday). Each field is `*`, a number or name, a
range `a-b`, a step `*/n`, `a-b/n` or `a/n` (from a to the field's end), or a comma list of them.
The macros @hourly, @daily (@midnight), @weekly, @monthly and @yearly (@annually) are accepted.

Day of month and day of week follow the standard (Vixie cron) OR rule: when both are restricted,
a day matches if either matches; a field counts as restricted unless it starts with `*`.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime

_MONTH_NAMES = {
    name: i
    for i, name in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1
    )
}
_WEEKDAY_NAMES = {name: i for i, name in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


class CronError(ValueError):
    """The expression does not parse; the message names the field and what is wrong."""


@dataclass(frozen=True)
class CronSpec:
    """The minutes, hours, days, months and weekdays (0 = Sunday .. 6) a cron expression allows."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    day_restricted: bool  # day-of-month field did not start with `*`
    weekday_restricted: bool  # day-of-week field did not start with `*`

    def matches_day(self, year: int, month: int, day: int) -> bool:
        """Whether the date is allowed, with the standard OR rule for day of month and week."""
        if month not in self.months:
            return False
        weekday = (calendar.weekday(year, month, day) + 1) % 7  # calendar: Monday = 0
        in_days = day in self.days
        in_weekdays = weekday in self.weekdays
        if self.day_restricted and self.weekday_restricted:
            return in_days or in_weekdays
        return in_days and in_weekdays

    def matches(self, local: datetime) -> bool:
        """Whether this wall-clock minute (seconds ignored) is one the expression names."""
        return (
            local.minute in self.minutes
            and local.hour in self.hours
            and self.matches_day(local.year, local.month, local.day)
        )


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int]


_FIELDS = (
    _Field("minute", 0, 59, {}),
    _Field("hour", 0, 23, {}),
    _Field("day of month", 1, 31, {}),
    _Field("month", 1, 12, _MONTH_NAMES),
    _Field("day of week", 0, 7, _WEEKDAY_NAMES),
)


def parse_cron(expr: str) -> CronSpec:
    """Parse five crontab fields (or a macro such as @daily); raises CronError."""
    text = _MACROS.get(expr.strip().lower(), expr)
    parts = text.split()
    if len(parts) != 5:
        raise CronError(
            f"cron {expr!r} has {len(parts)} fields; it needs 5: minute hour day-of-month month day-of-week"
        )
    values = [_parse_field(part, spec) for part, spec in zip(parts, _FIELDS, strict=True)]
    weekdays = frozenset(d % 7 for d in values[4])  # 7 is Sunday too
    spec = CronSpec(
        minutes=values[0],
        hours=values[1],
        days=values[2],
        months=values[3],
        weekdays=weekdays,
        day_restricted=not parts[2].startswith("*"),
        weekday_restricted=not parts[4].startswith("*"),
    )
    if spec.day_restricted and not spec.weekday_restricted and not _any_valid_day(spec):
        raise CronError(f"cron {expr!r} never fires: no month in it has those days")
    return spec


def _any_valid_day(spec: CronSpec) -> bool:
    # 2024 is a leap year, so 29 February counts as possible.
    return any(day <= calendar.monthrange(2024, month)[1] for month in spec.months for day in spec.days)


def _parse_field(text: str, field: _Field) -> frozenset[int]:
    if not text:
        raise CronError(f"empty {field.name} field")
    result: set[int] = set()
    for item in text.split(","):
        if not item:
            raise CronError(f"{field.name} field {text!r} has an empty item")
        result.update(_parse_item(item, field))
    return frozenset(result)


def _parse_item(item: str, field: _Field) -> range:
    where = f"{field.name} field {item!r}"
    base, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not step_text.isdigit() or int(step_text) == 0:
            raise CronError(f"{where}: the step after / must be a whole number of at least 1")
        step = int(step_text)
    if base == "*":
        low, high = field.low, field.high
    elif "-" in base:
        first, _, last = base.partition("-")
        low, high = _parse_value(first, field, where), _parse_value(last, field, where)
        if low > high:
            raise CronError(f"{where}: range runs backwards ({low} > {high})")
    else:
        low = _parse_value(base, field, where)
        # `a/n` means from a to the field's end, in steps of n.
        high = field.high if slash else low
    return range(low, high + 1, step)


def _parse_value(text: str, field: _Field, where: str) -> int:
    lowered = text.lower()
    if lowered in field.names:
        return field.names[lowered]
    if not text.isdigit():
        allowed = f"{field.low}-{field.high}"
        if field.names:
            names = list(field.names)
            first, last = names[0], names[-1]
            allowed += f" or {first}-{last}"
        raise CronError(f"{where}: {text!r} is not a {field.name} ({allowed})")
    value = int(text)
    if not field.low <= value <= field.high:
        raise CronError(f"{where}: {value} is outside {field.low}-{field.high}")
    return value
