import subprocess
import sys
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.campaign.model import Part, Post, Queue, Schedule
from bot.planning.planner import Progress, choose_post, cycle_order, due_slots, plan, progress_from_history
from bot.planning.slots import in_quiet_hours, jitter_for, next_slots, slots_between

NY = ZoneInfo("America/New_York")
ROOT = Path(__file__).resolve().parents[1]


def ny(*args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=NY, fold=fold)  # type: ignore[misc]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def posts(*ids: str) -> tuple[Post, ...]:
    return tuple(Post(id=i, parts=(Part(f"text of {i}"),), line=n) for n, i in enumerate(ids, start=10))


def queue(schedule: Schedule, *, post_ids: tuple[str, ...] = ("a", "b", "c"), **kw: Any) -> Queue:
    kw.setdefault("posts", posts(*post_ids))
    return Queue(
        name="calls", file=Path("content/calls.yaml"), schedule=schedule, platforms=("mastodon",), **kw
    )


def cron(expr: str, **kw: Any) -> Schedule:
    return Schedule(kind="cron", timezone="America/New_York", cron=expr, **kw)


def every(delta: timedelta, **kw: Any) -> Schedule:
    return Schedule(kind="every", timezone="America/New_York", every=delta, **kw)


def local_fires(q: Queue, lo: datetime, hi: datetime) -> list[str]:
    return [s.fire_at.astimezone(NY).isoformat(timespec="minutes") for s in slots_between(q, lo, hi)]


# --- DST ---------------------------------------------------------------------------------------


def test_spring_forward_a_missing_time_fires_at_the_first_minute_after_the_gap() -> None:
    q = queue(cron("30 2 * * *"))
    assert local_fires(q, ny(2026, 3, 7), ny(2026, 3, 10)) == [
        "2026-03-07T02:30-05:00",
        "2026-03-08T03:00-04:00",
        "2026-03-09T02:30-04:00",
    ]


def test_spring_forward_several_missing_times_fire_once() -> None:
    q = queue(cron("0,30 2,3 * * *"))
    assert local_fires(q, ny(2026, 3, 8), ny(2026, 3, 8, 12)) == [
        "2026-03-08T03:00-04:00",
        "2026-03-08T03:30-04:00",
    ]


def test_fall_back_a_repeated_time_fires_once() -> None:
    q = queue(cron("30 1 * * *"))
    slots = slots_between(q, ny(2026, 10, 31, 12), ny(2026, 11, 2, 12))
    assert [s.fire_at for s in slots] == [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]
    hourly = queue(cron("0 * * * *"))
    assert local_fires(hourly, ny(2026, 11, 1, 0), ny(2026, 11, 1, 3)) == [
        "2026-11-01T00:00-04:00",
        "2026-11-01T01:00-04:00",
        "2026-11-01T02:00-05:00",
    ]


def test_every_counts_elapsed_time_so_the_repeated_hour_has_two_distinct_slots() -> None:
    q = queue(every(timedelta(minutes=30)))
    names = [s.name for s in slots_between(q, ny(2026, 11, 1, 0, 45), ny(2026, 11, 1, 2, 15, fold=1))]
    assert names == [
        "2026-11-01T01:00-04:00",
        "2026-11-01T01:30-04:00",
        "2026-11-01T01:00-05:00",
        "2026-11-01T01:30-05:00",
        "2026-11-01T02:00-05:00",
    ]


def test_every_is_anchored_at_midnight_1_january_local_and_ignores_dst() -> None:
    q = queue(every(timedelta(hours=5)))
    # 2026-01-01 00:00 EST = 05:00Z; 5h steps stay on a 5h grid in UTC across the March change.
    fires = [s.fire_at for s in slots_between(q, utc(2026, 3, 9), utc(2026, 3, 10))]
    assert fires and all((f - utc(2026, 1, 1, 5)) % timedelta(hours=5) == timedelta(0) for f in fires)
    assert local_fires(q, ny(2026, 1, 1), ny(2026, 1, 1, 12)) == [
        "2026-01-01T00:00-05:00",
        "2026-01-01T05:00-05:00",
        "2026-01-01T10:00-05:00",
    ]


def test_every_counts_from_the_queue_start() -> None:
    q = queue(every(timedelta(hours=4)), start=ny(2026, 12, 1, 9))
    assert local_fires(q, ny(2026, 11, 30), ny(2026, 12, 1, 18)) == [
        "2026-12-01T09:00-05:00",
        "2026-12-01T13:00-05:00",
        "2026-12-01T17:00-05:00",
    ]


# --- crontab fields ------------------------------------------------------------------------------


def test_crontab_day_of_week_7_is_sunday_and_day_fields_are_ored() -> None:
    sundays = queue(cron("0 9 * * 7"))
    fires = slots_between(sundays, ny(2026, 3, 1), ny(2026, 3, 31))
    assert [s.fire_at.astimezone(NY).day for s in fires] == [1, 8, 15, 22, 29]
    fridays_or_10th = queue(cron("0 9 10 * 5"))
    fires = slots_between(fridays_or_10th, ny(2026, 3, 1), ny(2026, 4, 1))
    assert [s.fire_at.astimezone(NY).day for s in fires] == [6, 10, 13, 20, 27]


def test_at_slots_as_listed_within_start_and_expires() -> None:
    listed = (ny(2026, 12, 1, 12), ny(2026, 12, 5, 12), ny(2027, 2, 1, 12))
    q = queue(
        Schedule(kind="at", timezone="America/New_York", at=listed),
        expires=ny(2027, 1, 31),
    )
    assert [s.name for s in slots_between(q, ny(2026, 1, 1), ny(2028, 1, 1))] == [
        "2026-12-01T12:00-05:00",
        "2026-12-05T12:00-05:00",
    ]


# --- quiet hours ----------------------------------------------------------------------------------


QUIET = (time(22), time(7))


def test_two_hourly_night_becomes_one_post_at_seven() -> None:
    q = queue(every(timedelta(hours=2), quiet_hours=QUIET), start=ny(2026, 12, 1, 20))
    assert local_fires(q, ny(2026, 12, 1, 20), ny(2026, 12, 2, 11)) == [
        "2026-12-01T20:00-05:00",
        "2026-12-02T07:00-05:00",
        "2026-12-02T08:00-05:00",
        "2026-12-02T10:00-05:00",
    ]


def test_hourly_night_just_has_the_usual_seven_oclock() -> None:
    q = queue(cron("0 * * * *", quiet_hours=QUIET))
    assert local_fires(q, ny(2026, 12, 1, 20), ny(2026, 12, 2, 8, 30)) == [
        "2026-12-01T20:00-05:00",
        "2026-12-01T21:00-05:00",
        "2026-12-02T07:00-05:00",
        "2026-12-02T08:00-05:00",
    ]


def test_a_window_starting_inside_quiet_hours_still_sees_the_moved_slot() -> None:
    q = queue(every(timedelta(hours=2), quiet_hours=QUIET), start=ny(2026, 12, 1, 20))
    assert local_fires(q, ny(2026, 12, 2, 5), ny(2026, 12, 2, 7, 30)) == ["2026-12-02T07:00-05:00"]


# --- jitter -------------------------------------------------------------------------------------


def test_jitter_is_within_bounds_and_derived_from_the_slot_name() -> None:
    q = queue(cron("0 9,13,17 * * *", jitter=timedelta(minutes=10)))
    slots = slots_between(q, ny(2026, 12, 1), ny(2026, 12, 8))
    delays = [s.fire_at - s.nominal for s in slots]
    assert all(timedelta(0) <= d <= timedelta(minutes=10) for d in delays)
    assert len(set(delays)) > 1
    assert slots == slots_between(q, ny(2026, 12, 1), ny(2026, 12, 8))


def outputs_under_two_hash_seeds(code: str) -> set[str]:
    """What `code` prints in two processes whose str hashes differ (PYTHONHASHSEED)."""
    return {
        subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin"},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }


def test_jitter_is_the_same_in_every_process() -> None:
    code = (
        "from datetime import timedelta; from bot.planning.slots import jitter_for;"
        "print(jitter_for('calls', '2026-12-01T09:00-05:00', timedelta(minutes=10)).total_seconds())"
    )
    outputs = outputs_under_two_hash_seeds(code)
    assert outputs == {
        f"{jitter_for('calls', '2026-12-01T09:00-05:00', timedelta(minutes=10)).total_seconds()}\n"
    }


# --- which post ---------------------------------------------------------------------------------


def sent_ids(q: Queue, lo: datetime, hi: datetime, progress: Progress | None = None) -> list[str | None]:
    return [p.post.id if p.post else None for p in plan(q, lo, hi, progress)]


def test_sequential_queue_stops_when_exhausted() -> None:
    q = queue(cron("0 9 * * *"))
    planned = plan(q, ny(2026, 12, 1), ny(2026, 12, 10))
    assert [p.post.id if p.post else None for p in planned] == ["a", "b", "c", None]
    assert planned[-1].exhausted


def test_repeating_queue_starts_the_next_cycle() -> None:
    q = queue(cron("0 9 * * *"), when_exhausted="repeat")
    planned = plan(q, ny(2026, 12, 1), ny(2026, 12, 8))
    assert [(p.post.id if p.post else None, p.cycle) for p in planned] == [
        ("a", 1),
        ("b", 1),
        ("c", 1),
        ("a", 2),
        ("b", 2),
        ("c", 2),
        ("a", 3),
    ]


def test_plan_resumes_from_the_ledgers_progress() -> None:
    q = queue(cron("0 9 * * *"), when_exhausted="repeat")
    progress = Progress(cycle=4, sent=frozenset({"a", "c"}))
    assert sent_ids(q, ny(2026, 12, 1), ny(2026, 12, 3), progress) == ["b", "a"]


def test_shuffle_order_is_a_stable_seeded_permutation_per_cycle() -> None:
    ids = tuple(f"p{i}" for i in range(8))
    q = queue(cron("0 9 * * *"), post_ids=ids, order="shuffle", when_exhausted="repeat")
    orders = [tuple(p.id for p in cycle_order(q, cycle)) for cycle in range(1, 6)]
    assert all(sorted(o) == sorted(ids) for o in orders)
    assert len(set(orders)) > 1  # cycles differ
    assert orders[0] != ids
    assert orders == [tuple(p.id for p in cycle_order(q, cycle)) for cycle in range(1, 6)]
    # The plan follows that order, cycle after cycle.
    planned = plan(q, ny(2026, 12, 1), ny(2026, 12, 17))
    assert [p.post.id for p in planned if p.post] == [*orders[0], *orders[1]]


def test_shuffle_order_is_the_same_in_every_process() -> None:
    code = (
        "from pathlib import Path; from bot.campaign.model import *;"
        "from bot.planning.planner import cycle_order;"
        "q = Queue('calls', Path('x'), Schedule('every', 'UTC'), tuple(Post(f'p{i}', (Part('t'),), 1)"
        " for i in range(8)), ('x',), order='shuffle'); print([p.id for p in cycle_order(q, 3)])"
    )
    outputs = outputs_under_two_hash_seeds(code)
    assert len(outputs) == 1


def test_post_added_mid_cycle_joins_at_the_end() -> None:
    # The cycle started with a, b, c and sent a; staff then inserted "new" right after a.
    q = queue(cron("0 9 * * *"), post_ids=("a", "new", "b", "c"))
    progress = Progress(cycle=1, sent=frozenset({"a"}), members=frozenset({"a", "b", "c"}))
    assert sent_ids(q, ny(2026, 12, 1), ny(2026, 12, 6), progress) == ["b", "c", "new", None]


def test_post_added_to_a_shuffled_cycle_joins_at_the_end() -> None:
    ids = ("a", "b", "c", "d")
    q = queue(cron("0 9 * * *"), post_ids=(*ids, "new"), order="shuffle")
    progress = Progress(cycle=2, members=frozenset(ids))
    assert sent_ids(q, ny(2026, 12, 1), ny(2026, 12, 6), progress)[-1] == "new"


def test_expired_posts_are_skipped_and_posts_wait_for_their_start() -> None:
    base = posts("old", "later", "now")
    dated = (
        Post(id="old", parts=base[0].parts, line=10, expires=ny(2026, 11, 30)),
        Post(id="later", parts=base[1].parts, line=11, start=ny(2026, 12, 3)),
        base[2],
    )
    q = queue(cron("0 9 * * *"), posts=dated)
    assert sent_ids(q, ny(2026, 12, 1), ny(2026, 12, 5)) == ["now", None, "later", None]


def test_choose_post_records_the_cycle_members_for_the_ledger() -> None:
    q = queue(cron("0 9 * * *"))
    choice = choose_post(q, Progress(), ny(2026, 12, 1, 9))
    assert choice.post is not None and choice.post.id == "a"
    assert choice.progress == Progress(cycle=1, sent=frozenset({"a"}), members=frozenset({"a", "b", "c"}))


def test_pinned_posts_go_out_at_their_time_outside_the_order() -> None:
    pinned = Post(id="day-of-action", parts=(Part("Today!"),), line=30, at=ny(2026, 12, 2, 12))
    q = queue(cron("0 9 * * *"), posts=(*posts("a", "b"), pinned))
    planned = plan(q, ny(2026, 12, 1), ny(2026, 12, 5))
    assert [(p.slot.name, p.post.id if p.post else None, p.cycle) for p in planned] == [
        ("2026-12-01T09:00-05:00", "a", 1),
        ("2026-12-02T09:00-05:00", "b", 1),
        ("pinned:day-of-action", "day-of-action", 0),
        ("2026-12-03T09:00-05:00", None, 1),
    ]


# --- grace --------------------------------------------------------------------------------------


def test_after_downtime_only_the_latest_slot_within_grace_fires() -> None:
    q = queue(cron("0 * * * *"))
    due, missed = due_slots(
        q, since=ny(2026, 12, 1, 10, 0, 30), now=ny(2026, 12, 1, 12, 30), grace=timedelta(hours=1)
    )
    assert [s.name for s in due] == ["2026-12-01T12:00-05:00"]
    assert [s.name for s in missed] == ["2026-12-01T11:00-05:00"]


def test_a_slot_older_than_the_grace_is_only_reported() -> None:
    q = queue(cron("0 * * * *"))
    due, missed = due_slots(
        q, since=ny(2026, 12, 1, 11, 59), now=ny(2026, 12, 1, 12, 30), grace=timedelta(minutes=20)
    )
    assert due == [] and [s.name for s in missed] == ["2026-12-01T12:00-05:00"]


def test_a_running_daemon_fires_each_slot_once() -> None:
    q = queue(cron("*/15 * * * *", jitter=timedelta(minutes=3)))
    fired: list[str] = []
    tick = ny(2026, 12, 1, 9)
    while tick < ny(2026, 12, 1, 11):
        nxt = tick + timedelta(seconds=5)
        due, missed = due_slots(q, since=tick, now=nxt, grace=timedelta(hours=1))
        assert missed == []
        fired.extend(s.name for s in due)
        tick = nxt
    assert fired == [s.name for s in slots_between(q, ny(2026, 12, 1, 9), ny(2026, 12, 1, 11))]
    assert len(fired) == 8


def test_next_slots_finds_sparse_schedules() -> None:
    q = queue(cron("0 12 29 2 *"))  # only in leap years
    (slot,) = next_slots(q, ny(2026, 1, 1), 1, horizon=timedelta(days=3 * 366))
    assert slot.name == "2028-02-29T12:00-05:00"


@settings(max_examples=40, deadline=None)
@given(
    step_minutes=st.sampled_from([20, 45, 60, 90, 120, 180]),
    jitter_minutes=st.integers(0, 30),
    quiet=st.sampled_from([None, (time(22), time(7)), (time(1), time(5)), (time(23, 30), time(0, 15))]),
    start_hours=st.integers(0, 24 * 30),
    cut_minutes=st.integers(1, 48 * 60 - 1),
)
def test_slots_do_not_depend_on_how_the_time_is_cut_into_windows(
    step_minutes: int,
    jitter_minutes: int,
    quiet: tuple[time, time] | None,
    start_hours: int,
    cut_minutes: int,
) -> None:
    # Across the autumn DST change, so the windows straddle it too.
    q = queue(
        every(timedelta(minutes=step_minutes), jitter=timedelta(minutes=jitter_minutes), quiet_hours=quiet)
    )
    lo = ny(2026, 10, 15) + timedelta(hours=start_hours)
    hi = lo + timedelta(hours=48)
    cut = lo + timedelta(minutes=cut_minutes)
    whole = slots_between(q, lo, hi)
    assert slots_between(q, lo, cut) + slots_between(q, cut, hi) == whole
    names = [s.name for s in whole]
    assert len(names) == len(set(names))
    if quiet is not None:
        assert not any(in_quiet_hours(s.nominal.astimezone(NY).time(), quiet) for s in whole)


def test_progress_is_rebuilt_from_the_ledgers_fired_slots() -> None:
    assert progress_from_history([]) == Progress()
    history = [(1, "a"), (1, "b"), (0, "pinned-post"), (1, "c"), (2, "c"), (2, "a")]
    assert progress_from_history(history) == Progress(
        cycle=2, sent=frozenset({"a", "c"}), members=frozenset({"a", "b", "c"})
    )
    # A post added during cycle 2 (not sent in cycle 1) goes to the end of cycle 2.
    q = queue(cron("0 9 * * *"), post_ids=("a", "new", "b", "c"), when_exhausted="repeat")
    progress = progress_from_history(history)
    assert sent_ids(q, ny(2026, 12, 1), ny(2026, 12, 4), progress) == ["b", "new", "a"]


def test_expires_is_exclusive_as_the_loader_makes_it() -> None:
    # `expires: 2026-12-03` arrives as 00:00 on 4 December: a daily midnight slot then is out.
    q = queue(cron("0 0 * * *"), expires=ny(2026, 12, 4), when_exhausted="repeat")
    assert local_fires(q, ny(2026, 12, 2), ny(2026, 12, 10)) == [
        "2026-12-02T00:00-05:00",
        "2026-12-03T00:00-05:00",
    ]
    dated = Post(id="a", parts=(Part("t"),), line=1, expires=ny(2026, 12, 3))
    q = queue(cron("0 0 * * *"), posts=(dated, *posts("b")))
    assert sent_ids(q, ny(2026, 12, 2), ny(2026, 12, 4)) == ["a", "b"]
    assert sent_ids(q, ny(2026, 12, 3), ny(2026, 12, 5)) == ["b", None]
