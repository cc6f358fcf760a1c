"""The report's period (steps, local days, DST) and its counts on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.campaign.model import Part, Post, Queue, Schedule
from bot.ledger.deliveries import DELIVERY_LEASE, open_ledger
from bot.ledger.mentions import MentionRecord, MonitorStore
from bot.ledger.schema import DeliveryKey
from bot.planning.planner import Progress
from bot.report.figures import Figures, Link, RankedPost, Voice, activity_span, read_figures
from bot.report.page import render_page
from bot.report.period import Period
from bot.report.runway import queue_runway
from bot.report.summary import last_day_counts

BERLIN = ZoneInfo("Europe/Berlin")
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("length", "step"),
    [
        (timedelta(minutes=1), timedelta(seconds=10)),
        (timedelta(minutes=30), timedelta(minutes=1)),
        (timedelta(hours=12), timedelta(minutes=15)),
        (timedelta(hours=13), timedelta(hours=1)),
        (timedelta(days=3), timedelta(hours=1)),
        (timedelta(days=3, seconds=1), timedelta(days=1)),
    ],
)
def test_the_step_follows_the_length_of_the_period(length: timedelta, step: timedelta) -> None:
    period = Period(T0, T0 + length, BERLIN)
    assert period.step == step
    bars = -(-length // step)  # rounded up; one more when `since` is not on a step's start
    assert bars <= len(period.buckets()) <= bars + 1


def test_days_are_the_campaigns_and_a_dst_day_is_one_bar() -> None:
    # Europe/Berlin leaves summer time on 25 October 2026: that day has 25 hours.
    period = Period(datetime(2026, 10, 23, 22, tzinfo=UTC), datetime(2026, 10, 28, 12, tzinfo=UTC), BERLIN)
    days = period.buckets()
    assert [d.strftime("%m-%d %H:%M") for d in days] == [
        "10-24 00:00", "10-25 00:00", "10-26 00:00", "10-27 00:00", "10-28 00:00"
    ]  # fmt: skip
    late_on_the_long_day = datetime(2026, 10, 25, 22, 30, tzinfo=UTC)  # 23:30 in Berlin
    assert period.bucket(late_on_the_long_day) == days[1]
    assert period.bucket(datetime(2026, 10, 25, 23, 30, tzinfo=UTC)) == days[2]


def test_hours_are_local_hours() -> None:
    period = Period(T0, T0 + timedelta(days=1), ZoneInfo("Asia/Kolkata"))  # +05:30
    assert period.bucket(T0 + timedelta(minutes=40)).strftime("%H:%M") == "15:00"
    assert period.label(period.buckets()[0]) == "Tue 14:00"


def _mention(
    n: int, kind: str, platform: str, author: str, seen_at: datetime, to: str | None = None
) -> MentionRecord:
    return MentionRecord(platform, f"m{n}", kind, None, None, author, "text", (), to, None, seen_at)  # type: ignore[arg-type]


def test_counts_come_from_the_ledger_within_the_period(database_url: str) -> None:
    ledger = open_ledger(database_url)
    try:
        for minute, (post, platform, ok) in enumerate(
            [("a", "x", True), ("a", "bluesky", True), ("b", "x", False), ("c", "x", True)]
        ):
            now = T0 + timedelta(minutes=minute)
            key = DeliveryKey("calls", post, 1, 0, platform, "main")
            ledger.claim_delivery(key, "w", now, DELIVERY_LEASE, lambda n=minute: f"n{n}")
            if ok:
                ledger.confirm_delivery(key, f"id{minute}", f"https://{platform}/{post}", now)
            else:
                ledger.fail_delivery(key, "rejected: no", now)
        store = MonitorStore(ledger.engine)
        store.record_mentions(
            [
                _mention(1, "reply", "x", "alice", T0 + timedelta(minutes=5), "https://x/a"),
                _mention(2, "reply", "bluesky", "bob", T0 + timedelta(minutes=5), "https://bluesky/a"),
                _mention(3, "hashtag", "x", "dana", T0 + timedelta(minutes=6)),
                _mention(4, "hashtag", "x", "Mallory", T0 + timedelta(minutes=6)),
                _mention(5, "hashtag", "x", "dana", T0 - timedelta(days=2)),  # before the period
                _mention(6, "hashtag", "x", "old", T0 + timedelta(minutes=7)),
                # Instagram's hashtag search names nobody: two people, never one voice.
                _mention(7, "hashtag", "instagram", "Instagram user", T0 + timedelta(minutes=8)),
                _mention(8, "hashtag", "instagram", "Instagram user", T0 + timedelta(minutes=9)),
            ]
        )
        # A report made 31 days later over the whole time: `old` is past retention (30 days).
        later = read_figures(
            ledger.engine, Period(T0, T0 + timedelta(days=31), BERLIN), T0 + timedelta(days=31)
        )
        last_day = last_day_counts(ledger.engine, T0 + timedelta(hours=1))
        span = activity_span(ledger.engine)
        period = Period(T0, T0 + timedelta(hours=1), BERLIN)
        figures = read_figures(ledger.engine, period, T0 + timedelta(hours=1), ignore=("@mallory",))
    finally:
        ledger.close()
    assert figures.sent == {("x", "main"): 2, ("bluesky", "main"): 1}
    assert figures.failed == {("x", "main"): 1}
    assert (figures.total("reply"), figures.total("hashtag")) == (2, 5)
    assert [(p.post_id, p.replies) for p in figures.ranked] == [("a", 2), ("c", 0)]
    assert [(v.author, v.posts) for v in figures.voices] == [("dana", 1), ("old", 1)]
    assert later.voices == []
    assert span == (T0 - timedelta(days=2), T0 + timedelta(minutes=9))  # a report's default period
    # `status` counts in SQL what the report counts row by row: the two must agree.
    assert last_day == {"sent": 3, "failed": 1, "replies": 2, "mentions": 0, "hashtag_posts": 5, "reposts": 0}


def test_a_queue_runs_dry_when_its_schedule_sends_the_last_post() -> None:
    posts = tuple(Post(id=f"p{n}", parts=(Part(f"post {n}"),), line=0) for n in range(3))
    queue = Queue(
        name="daily",
        file=__file__,  # type: ignore[arg-type]
        schedule=Schedule(kind="cron", timezone="Europe/Berlin", cron="0 9 * * *"),
        posts=posts,
        platforms=("x",),
    )
    runway = queue_runway(queue, Progress(sent=frozenset({"p0"})), T0)  # 10:00 in Berlin: today's slot passed
    assert (runway.left, runway.state) == (2, "runs dry")
    assert runway.last_at == datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
    done = queue_runway(queue, Progress(sent=frozenset({"p0", "p1", "p2"})), T0)
    assert (done.left, done.state, done.last_at) == (0, "exhausted", None)


def test_strangers_handles_and_our_texts_are_escaped_on_the_page() -> None:
    period = Period(T0, T0 + timedelta(hours=1), BERLIN)
    figures = Figures(period, voices=[Voice('<img src=x onerror="alert(1)">', ("x",), 3)])
    figures.ranked = [
        RankedPost("calls", "p<1>", 1, "We & <b>you</b>", T0, [Link("x", "main", 'https://x/"a')])
    ]
    page = render_page("A <campaign>", figures, [], [("x", "main")], {}, T0)
    assert "<img" not in page and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page
    assert "We &amp; &lt;b&gt;you&lt;/b&gt;" in page and 'href="https://x/&quot;a"' in page
    assert "<title>A &lt;campaign&gt;: campaign report</title>" in page
