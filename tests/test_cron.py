from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.campaign.cron import CronError, parse_cron
from bot.campaign.durations import format_duration, parse_duration


def test_fields_ranges_steps_lists_and_names() -> None:
    spec = parse_cron("*/15 9-17/4 1,15 jan-mar,DEC mon-fri")
    assert spec.minutes == {0, 15, 30, 45}
    assert spec.hours == {9, 13, 17}
    assert spec.days == {1, 15}
    assert spec.months == {1, 2, 3, 12}
    assert spec.weekdays == {1, 2, 3, 4, 5}
    assert spec.day_restricted and spec.weekday_restricted


def test_sunday_is_zero_or_seven_and_a_start_with_step_runs_to_the_end() -> None:
    assert parse_cron("0 0 * * 7").weekdays == {0}
    assert parse_cron("0 0 * * 5-7").weekdays == {5, 6, 0}
    assert parse_cron("10/20 0 * * *").minutes == {10, 30, 50}
    assert parse_cron("@daily") == parse_cron("0 0 * * *")


def test_day_of_month_and_week_follow_the_or_rule_only_when_both_are_restricted() -> None:
    both = parse_cron("0 9 13 * fri")  # the 13th, or any Friday
    assert both.matches(datetime(2026, 3, 13, 9))  # Friday the 13th
    assert both.matches(datetime(2026, 4, 13, 9))  # a Monday, but the 13th
    assert both.matches(datetime(2026, 4, 17, 9))  # a Friday
    assert not both.matches(datetime(2026, 4, 14, 9))
    weekdays_only = parse_cron("0 9 * * 1-5")
    assert not weekdays_only.day_restricted
    assert weekdays_only.matches(datetime(2026, 12, 1, 9))  # a Tuesday
    assert not weekdays_only.matches(datetime(2026, 12, 6, 9))  # a Sunday
    starred_step = parse_cron("0 9 */2 * mon")  # `*/2` starts with `*`: not restricted (Vixie cron)
    assert not starred_step.day_restricted
    assert starred_step.matches(datetime(2026, 12, 7, 9)) and not starred_step.matches(
        datetime(2026, 12, 8, 9)
    )


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("0 9 * *", "cron '0 9 * *' has 4 fields; it needs 5: minute hour day-of-month month day-of-week"),
        ("60 * * * *", "minute field '60': 60 is outside 0-59"),
        ("0 9 * * mon-fry", "day of week field 'mon-fry': 'fry' is not a day of week (0-7 or sun-sat)"),
        ("0 17-9 * * *", "hour field '17-9': range runs backwards (17 > 9)"),
        ("*/0 * * * *", "minute field '*/0': the step after / must be a whole number of at least 1"),
        ("0 0 31 feb *", "cron '0 0 31 feb *' never fires: no month in it has those days"),
        ("0 0 ,1 * *", "day of month field ',1' has an empty item"),
    ],
)
def test_invalid_expressions_say_which_field_is_wrong(expr: str, message: str) -> None:
    with pytest.raises(CronError) as caught:
        parse_cron(expr)
    assert str(caught.value) == message


@given(st.integers(0, 59), st.integers(0, 23), st.integers(1, 28), st.integers(1, 12))
def test_a_single_minute_expression_matches_exactly_that_minute(
    minute: int, hour: int, day: int, month: int
) -> None:
    spec = parse_cron(f"{minute} {hour} {day} {month} *")
    moment = datetime(2027, month, day, hour, minute)
    assert spec.matches(moment)
    assert not spec.matches(moment + timedelta(minutes=1))


def test_durations() -> None:
    assert parse_duration("30s") == timedelta(seconds=30)
    assert parse_duration("5m") == timedelta(minutes=5)
    assert parse_duration("2h") == timedelta(hours=2)
    assert parse_duration("1d") == timedelta(days=1)
    assert parse_duration("1h30m") == timedelta(minutes=90)
    for bad in ("", "5", "m5", "1w", "-1h", "1.5h"):
        with pytest.raises(ValueError, match="is not a duration"):
            parse_duration(bad)


@given(st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=400)))
def test_a_formatted_duration_parses_back_to_itself(duration: timedelta) -> None:
    whole = timedelta(seconds=int(duration.total_seconds()))
    assert parse_duration(format_duration(whole)) == whole
