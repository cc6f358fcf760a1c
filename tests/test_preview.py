import json
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bot.campaign.model import (
    Account,
    AccountLimits,
    Config,
    Image,
    Part,
    PlatformConfig,
    PlatformOptions,
    Post,
    Queue,
    Schedule,
)
from bot.commands.preview import build_preview, format_preview, preview_records
from bot.planning.xbudget import busiest_window, x_budget_problems

NY = ZoneInfo("America/New_York")


def make_config(tier: str = "free", x_accounts: tuple[str, ...] = ("main",), **limits: Any) -> Config:
    def accounts(platform: Any, names: tuple[str, ...]) -> tuple[Account, ...]:
        return tuple(
            Account(platform, n, "http://127.0.0.1", limits=AccountLimits(**limits), line=20 + i)
            for i, n in enumerate(names)
        )

    return Config(
        path=Path("config.yaml"),
        campaign="NoTechForICE",
        timezone="America/New_York",
        platforms={
            "x": PlatformConfig("x", True, accounts("x", x_accounts), tier=tier),  # type: ignore[arg-type]
            "bluesky": PlatformConfig("bluesky", True, accounts("bluesky", ("main",))),
            "mastodon": PlatformConfig("mastodon", True, accounts("mastodon", ("main", "second"))),
        },
    )


PHOTO = Image("images/rally.png", "People holding a banner that reads No Tech for ICE")


def campaign_queue(**kw: Any) -> Queue:
    posts = (
        Post(
            id="petition-launch",
            parts=(
                Part(
                    "Tech companies selling tools to ICE: drop the contracts. Sign: https://example.org/p",
                    (PHOTO,),
                ),
            ),
            line=14,
            overrides={
                "x": PlatformOptions(parts=(Part("A shorter text for X", (PHOTO,)),)),
                "mastodon": PlatformOptions(spoiler_text="immigration detention", visibility="unlisted"),
            },
        ),
        Post(
            id="thread-employees",
            parts=(
                Part("Hundreds of Microsoft employees asked their company to drop its ICE contract."),
                Part("Salesforce employees asked the same about Border Patrol."),
            ),
            line=22,
        ),
        Post(
            id="day-of-action",
            parts=(Part("Today: call your representative. #NoTechForICE"),),
            line=30,
            at=datetime(2026, 12, 10, 12, tzinfo=NY),
        ),
    )
    kw.setdefault("schedule", Schedule(kind="cron", timezone="America/New_York", cron="0 9,13,17 * * 1-5"))
    return Queue(
        name="calls-to-action",
        file=Path("content/calls-to-action.yaml"),
        posts=posts,
        platforms=("x", "bluesky", "mastodon"),
        hashtags=("#NoTechForICE",),
        language="en",
        when_exhausted="repeat",
        **kw,
    )


def expected_weekday_slots(first: date, days: int) -> list[datetime]:
    """The slot rules (docs/design.md) by hand: 9, 13 and 17 o'clock New York time, Monday to Friday."""
    out = []
    for n in range(days):
        day = first + timedelta(days=n)
        if day.isoweekday() <= 5:
            out += [datetime.combine(day, time(h), NY) for h in (9, 13, 17)]
    return out


def test_preview_lists_the_slots_an_independent_reading_of_the_rules_gives() -> None:
    now = datetime(2026, 12, 7, 0, 0, tzinfo=NY)  # a Monday
    entries = build_preview(make_config(), [campaign_queue()], now, 7)
    regular = [e for e in entries if not e.planned.slot.pinned]
    assert [e.planned.slot.fire_at for e in regular] == expected_weekday_slots(now.date(), 7)
    # Sequential and repeating: the two regular posts alternate, the pinned one stays outside.
    assert [e.planned.post.id for e in regular[:3] if e.planned.post] == [
        "petition-launch",
        "thread-employees",
        "petition-launch",
    ]
    pinned = [e for e in entries if e.planned.slot.pinned]
    assert [(e.planned.slot.fire_at, e.planned.post.id if e.planned.post else None) for e in pinned] == [
        (datetime(2026, 12, 10, 12, tzinfo=NY), "day-of-action")
    ]
    times = [e.planned.slot.fire_at for e in entries]
    assert times == sorted(times)


def test_preview_payloads_per_platform_and_account() -> None:
    now = datetime(2026, 12, 7, 0, 0, tzinfo=NY)
    first = build_preview(make_config(), [campaign_queue()], now, 1)[0]
    by_target = {(p.platform, p.account): p for p in first.payloads}
    assert set(by_target) == {
        ("x", "main"),
        ("bluesky", "main"),
        ("mastodon", "main"),
        ("mastodon", "second"),
    }
    x = by_target["x", "main"]
    assert x.parts[0].text == "A shorter text for X #NoTechForICE"
    assert (x.parts[0].length, x.parts[0].limit) == (34, 280)
    assert x.parts[0].images == (PHOTO,)
    bsky = by_target["bluesky", "main"].parts[0]
    assert [f.kind for f in bsky.facets] == ["link", "tag"]
    masto = by_target["mastodon", "main"]
    assert masto.spoiler_text == "immigration detention" and masto.visibility == "unlisted"
    assert masto.language == "en"


def test_preview_filters_by_queue_and_platform_and_prints_json() -> None:
    now = datetime(2026, 12, 7, 0, 0, tzinfo=NY)
    config, queues = make_config(), [campaign_queue()]
    assert build_preview(config, queues, now, 7, queue_name="other") == []
    entries = build_preview(config, queues, now, 2, platform="bluesky")
    records = json.loads(json.dumps(preview_records(entries)))
    assert records[0]["slot"] == "2026-12-07T09:00-05:00"
    assert records[0]["post_id"] == "petition-launch"
    (payload,) = records[0]["payloads"]
    assert payload["platform"] == "bluesky"
    part = payload["parts"][0]
    link = part["facets"][0]
    assert (link["kind"], link["value"]) == ("link", "https://example.org/p")
    assert part["text"].encode()[link["start"] : link["end"]] == b"https://example.org/p"
    assert part["images"] == [{"path": "images/rally.png", "alt": PHOTO.alt}]
    thread = records[1]["payloads"][0]["parts"]
    assert [p["text"] for p in thread] == [
        "Hundreds of Microsoft employees asked their company to drop its ICE contract. #NoTechForICE",
        "Salesforce employees asked the same about Border Patrol.",
    ]


def test_preview_text_shows_lengths_cw_images_and_thread_parts() -> None:
    now = datetime(2026, 12, 7, 0, 0, tzinfo=NY)
    text = format_preview(build_preview(make_config(), [campaign_queue()], now, 1))
    assert (
        "Mon 2026-12-07 09:00:00 EST  calls-to-action  slot 2026-12-07T09:00-05:00  "
        "post petition-launch (cycle 1)" in text
    )
    assert "CW: 'immigration detention'" in text
    assert "image images/rally.png  alt: 'People holding a banner" in text
    assert "part 2/2" in text
    assert "34/280" in text


# --- X budget ----------------------------------------------------------------------------------


def test_busiest_window_slides() -> None:
    t0 = datetime(2026, 12, 1, tzinfo=NY)
    events = [(t0 + timedelta(hours=h), 1) for h in (0, 1, 23, 24, 25, 26)]
    best = busiest_window(events, timedelta(hours=24))
    assert best is not None and best.posts == 4 and best.start == t0 + timedelta(hours=23)


def hourly_queue(name: str, parts: int = 1) -> Queue:
    post = Post(id="p", parts=tuple(Part(f"part {i}") for i in range(parts)), line=5)
    return Queue(
        name=name,
        file=Path(f"content/{name}.yaml"),
        schedule=Schedule(kind="every", timezone="UTC", every=timedelta(hours=2)),
        posts=(post,),
        platforms=("x",),
        when_exhausted="repeat",
    )


def test_x_free_tier_warning_counts_every_queue_and_thread_part() -> None:
    now = datetime(2026, 12, 1, tzinfo=NY)
    # 12 slots a day, one part: fits Free's 17.
    assert x_budget_problems(make_config("free"), [hourly_queue("a")], now) == []
    # Two queues: 24 a day.
    (problem,) = x_budget_problems(make_config("free"), [hourly_queue("a"), hourly_queue("b")], now)
    assert problem.severity == "warning" and problem.line == 20
    assert "up to 24 posts in 24 hours" in problem.message and "the free tier allows 17" in problem.message
    # Threads of two parts: 24 a day on Free, well within Basic's 100.
    assert len(x_budget_problems(make_config("free"), [hourly_queue("a", parts=2)], now)) == 1
    assert x_budget_problems(make_config("basic"), [hourly_queue("a", parts=2)], now) == []


def test_x_account_own_daily_limit_is_checked_too() -> None:
    now = datetime(2026, 12, 1, tzinfo=NY)
    (problem,) = x_budget_problems(make_config("basic", posts_per_day=10), [hourly_queue("a")], now)
    assert "posts_per_day is 10" in problem.message
