"""Monitoring's pure parts: classification, the output contract, rotation, pacing, sweeps, streams."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import subprocess
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from bot.campaign.model import Account, Config, MonitorConfig, PlatformConfig
from bot.ledger.deliveries import open_ledger
from bot.ledger.mentions import MentionRecord
from bot.ledger.ourposts import OurPost
from bot.monitoring.classification import Ours, classify
from bot.monitoring.mentionlog import RECORD_KEYS, MentionsLog, log_line, one_line, record_of, show_mentions
from bot.monitoring.pacing import Budget, RequestWindow, backoff, budget_for, poll_interval
from bot.monitoring.streams import StreamState, plan_streams
from bot.platforms import Mention
from bot.platforms.paging import Sweep
from bot.platforms.x_reads import search_query, snowflake_time, window_params
from tests.cli import REPO, run_bot

T0 = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
OURS = Ours.build({"100": "main", "200": "second"}, ["#NoTechForICE"], ["@OptedOut"])
DELIVERED = {"900": OurPost("main", "https://x.com/ntfi_main/status/900")}


def post(**fields: object) -> Mention:
    base: dict[str, object] = {
        "id": "1",
        "url": "https://x.com/alice/status/1",
        "author": "alice",
        "text": "hello",
        "created_at": T0,
        "author_id": "555",
    }
    return Mention(**(base | fields))  # type: ignore[arg-type]


# -- classification ----------------------------------------------------------------------------


def test_a_reply_to_a_delivery_is_a_reply_linked_to_it_even_when_it_also_mentions_and_tags() -> None:
    found = classify(
        post(in_reply_to="900", mentioned=("100",), hashtags=("notechforice",)), "x", OURS, DELIVERED
    )
    assert found is not None
    assert (found.kind, found.account, found.in_reply_to) == (
        "reply",
        "main",
        "https://x.com/ntfi_main/status/900",
    )


def test_a_quote_or_reply_to_one_of_our_posts_no_delivery_knows_is_still_a_reply() -> None:
    found = classify(
        post(in_reply_to="42", in_reply_to_author="200", in_reply_to_url="https://x.com/i/web/status/42"),
        "x",
        OURS,
        {},
    )
    assert found is not None
    assert (found.kind, found.account, found.in_reply_to) == (
        "reply",
        "second",
        "https://x.com/i/web/status/42",
    )


def test_a_reply_to_someone_else_that_names_us_is_a_mention() -> None:
    found = classify(
        post(in_reply_to="77", in_reply_to_author="999", mentioned=("200",)), "x", OURS, DELIVERED
    )
    assert found is not None
    assert (found.kind, found.account, found.in_reply_to) == ("mention", "second", None)


def test_a_notified_mention_names_the_polling_account() -> None:
    found = classify(post(mentions_us=True), "bluesky", OURS, {}, polled_by="main")
    assert found is not None and (found.kind, found.account) == ("mention", "main")


def test_hashtags_match_whatever_their_case_and_have_no_account() -> None:
    found = classify(post(hashtags=("NOTECHFORICE",)), "mastodon", OURS, {})
    assert found is not None
    assert (found.kind, found.account, found.in_reply_to, found.tracked) == ("hashtag", None, None, True)


def test_untracked_hashtags_are_not_reported() -> None:
    assert classify(post(hashtags=("NoTechForICEcream",)), "x", OURS, {}) is None


@pytest.mark.parametrize(
    "fields",
    [
        {"author_id": "100", "hashtags": ("NoTechForICE",)},  # our own post
        {"public": False, "mentions_us": True},  # a DM or followers-only post
        {"author": "optedout", "hashtags": ("NoTechForICE",)},  # monitor.ignore, any case
        {"author": "OptedOut", "in_reply_to": "900"},
    ],
)
def test_never_reported(fields: dict[str, object]) -> None:
    assert classify(post(**fields), "x", OURS, DELIVERED) is None


# -- output ------------------------------------------------------------------------------------


def test_log_line_is_kind_platform_author_quoted_text_url() -> None:
    sighting = classify(
        post(
            author="alice.example",
            hashtags=("NoTechForICE",),
            text='We "stand"\nwith workers',
            url="https://bsky.app/profile/alice.example/post/3k",
        ),
        "bluesky",
        OURS,
        {},
    )
    assert sighting is not None
    assert log_line(sighting) == (
        'hashtag bluesky @alice.example "We \\"stand\\" with workers" https://bsky.app/profile/alice.example/post/3k'
    )


def test_long_text_is_cut_with_an_ellipsis_and_cannot_forge_lines() -> None:
    text = "\u202eevil\r\n2026-12-01T00:00:00Z ERROR forged " + "x" * 300
    shown = one_line(text)
    assert "\n" not in shown and "\r" not in shown and "\u202e" not in shown
    assert len(shown) == 100 and shown.endswith("…")
    assert one_line("👩‍👩‍👧 family") == "👩‍👩‍👧 family"  # joiners inside emoji are kept


def test_json_record_has_exactly_the_contract_keys() -> None:
    sighting = classify(post(in_reply_to="900", hashtags=("NoTechForICE",)), "x", OURS, DELIVERED)
    assert sighting is not None
    record = record_of(sighting, T0 + timedelta(seconds=5))
    assert tuple(record) == RECORD_KEYS
    assert record == {
        "ts": "2026-12-01T14:00:05Z",
        "kind": "reply",
        "platform": "x",
        "account": "main",
        "id": "1",
        "url": "https://x.com/alice/status/1",
        "author": "alice",
        "text": "hello",
        "hashtags": ["NoTechForICE"],
        "in_reply_to": "https://x.com/ntfi_main/status/900",
        "created_at": "2026-12-01T14:00:00Z",
    }


def _record(ts: datetime, n: int) -> dict[str, object]:
    sighting = classify(post(id=str(n), hashtags=("NoTechForICE",)), "x", OURS, {})
    assert sighting is not None
    return record_of(sighting, ts)


def test_mentions_log_is_owner_only_rotated_daily_and_expired(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "mentions.jsonl"
    log = MentionsLog(path, retention_days=2)
    day = T0
    for n in range(5):  # five days, two records a day
        log.write(
            [_record(day + timedelta(days=n), 2 * n), _record(day + timedelta(days=n, hours=1), 2 * n + 1)]
        )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700  # the folder it created, too
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == ["8", "9"]
    rotated = log.rotated_files()
    # Day 5 is 2026-12-05: the files of 12-03 and 12-04 are kept, older ones deleted.
    assert [d for d, _ in rotated] == [date(2026, 12, 3), date(2026, 12, 4)]
    assert [json.loads(line)["id"] for line in rotated[0][1].read_text().splitlines()] == ["4", "5"]


def test_mentions_log_dash_writes_json_lines_to_stdout() -> None:
    out = io.StringIO()
    MentionsLog(None, stream=out).write([_record(T0, 1)])
    assert json.loads(out.getvalue())["id"] == "1"


# -- pacing ------------------------------------------------------------------------------------


def test_x_free_is_slowed_to_one_call_per_15_minutes_and_others_keep_the_configured_pace() -> None:
    every = timedelta(minutes=2)
    assert poll_interval(every, budget_for("x", "hashtags", "free")) == timedelta(minutes=15)
    assert poll_interval(every, budget_for("x", "notifications", "free")) == timedelta(minutes=15)
    assert poll_interval(every, budget_for("x", "hashtags", "basic")) == every
    assert poll_interval(every, budget_for("bluesky", "hashtags")) == every
    assert poll_interval(every, budget_for("mastodon", "notifications")) == every


def test_backoff_doubles_up_to_an_hour_and_honours_the_reset() -> None:
    step = timedelta(minutes=5)
    assert [backoff(step, n) for n in (1, 2, 3)] == [step, 2 * step, 4 * step]
    assert backoff(step, 20) == timedelta(hours=1)
    assert backoff(step, 1, retry_after=900) == timedelta(minutes=15)


def test_request_window_spends_the_budget_and_refills_after_the_window() -> None:
    window = RequestWindow(Budget(2, timedelta(minutes=15)))
    assert [window.take(T0), window.take(T0), window.take(T0 + timedelta(minutes=14))] == [True, True, False]
    assert window.take(T0 + timedelta(minutes=15))


def test_stream_state_survives_a_round_trip_and_garbage() -> None:
    state = StreamState('{"mark": "5"}', T0, 2)
    assert StreamState.load(state.dump()) == state
    assert StreamState.load("not json") == StreamState()


# -- sweeps ------------------------------------------------------------------------------------


def test_a_sweep_keeps_its_mark_until_it_reaches_it() -> None:
    sweep = Sweep(mark="100")
    sweep, more = sweep.advance("250", "page2", reached_end=False)
    assert (sweep, more) == (Sweep("100", "250", "page2"), True)
    sweep, more = sweep.advance("180", "page3", reached_end=False)  # older page: top stays
    assert sweep == Sweep("100", "250", "page3")
    sweep = Sweep.load(sweep.dump())  # a restart resumes it
    sweep, more = sweep.advance("120", None, reached_end=False)
    assert (sweep, more) == (Sweep("250", None, None), False)
    assert Sweep("250").advance(None, None, reached_end=True) == (Sweep("250"), False)


# -- X specifics -------------------------------------------------------------------------------


def test_x_query_ors_tags_and_as_many_conversations_as_fit() -> None:
    assert search_query(["NoTechForICE"], []) == "#NoTechForICE -is:retweet"
    query = search_query(["NoTechForICE", "#DropTheContracts"], [str(10**18 + i) for i in range(40)])
    assert query is not None and len(query) <= 512
    assert query.startswith("(#NoTechForICE OR #DropTheContracts OR conversation_id:1000000000000000000 OR")
    assert query.endswith(") -is:retweet")
    assert search_query([], []) is None


def test_x_search_replaces_a_mark_older_than_seven_days_by_a_start_time() -> None:
    fresh = str((int((T0 - timedelta(days=1)).timestamp() * 1000) - 1288834974657) << 22)
    stale = str((int((T0 - timedelta(days=8)).timestamp() * 1000) - 1288834974657) << 22)
    assert abs(snowflake_time(fresh) - (T0 - timedelta(days=1))) < timedelta(seconds=1)
    assert window_params(Sweep(fresh), T0, T0, seven_days=True) == {"since_id": fresh}
    start = window_params(Sweep(stale), T0 - timedelta(days=30), T0, seven_days=True)["start_time"]
    assert T0 - timedelta(days=7) < start < T0 - timedelta(days=6, hours=23)
    assert window_params(Sweep(stale), T0, T0, seven_days=False) == {"since_id": stale}
    assert window_params(Sweep(), T0 - timedelta(hours=24), T0, seven_days=True) == {
        "start_time": T0 - timedelta(hours=24)
    }


# -- streams -----------------------------------------------------------------------------------


def _config(tier: str = "free") -> Config:
    def accounts(platform: str, names: list[str], base: str = "") -> tuple[Account, ...]:
        return tuple(Account(platform, n, base) for n in names)  # type: ignore[arg-type]

    return Config(
        path=Path("config.yaml"),
        campaign="c",
        platforms={
            "x": PlatformConfig("x", True, accounts("x", ["main", "second"]), tier),  # type: ignore[arg-type]
            "bluesky": PlatformConfig("bluesky", True, accounts("bluesky", ["main"])),
            "mastodon": PlatformConfig(
                "mastodon",
                True,
                (
                    Account("mastodon", "main", "https://mastodon.social"),
                    Account("mastodon", "other", "https://Mastodon.social/"),
                    Account("mastodon", "far", "https://kolektiva.social"),
                ),
            ),
        },
        hashtags=("#NoTechForICE", "#DropTheContracts"),
        monitor=MonitorConfig(hashtags_every=timedelta(minutes=2), replies_every=timedelta(minutes=5)),
    )


def test_hashtags_once_per_platform_or_instance_and_notifications_per_account() -> None:
    streams = {s.key: s for s in plan_streams(_config())}
    assert sorted(streams) == sorted(
        [
            "x:hashtags",
            "x:notifications:main",
            "x:notifications:second",
            "bluesky:hashtags:notechforice",
            "bluesky:hashtags:dropthecontracts",
            "bluesky:notifications:main",
            "mastodon:hashtags:mastodon.social:notechforice",
            "mastodon:hashtags:mastodon.social:dropthecontracts",
            "mastodon:hashtags:kolektiva.social:notechforice",
            "mastodon:hashtags:kolektiva.social:dropthecontracts",
            "mastodon:notifications:main",
            "mastodon:notifications:other",
            "mastodon:notifications:far",
        ]
    )
    assert streams["x:hashtags"].tags == ("NoTechForICE", "DropTheContracts")
    assert streams["x:hashtags"].interval == timedelta(minutes=15)
    assert streams["bluesky:hashtags:notechforice"].interval == timedelta(minutes=2)
    assert streams["bluesky:notifications:main"].interval == timedelta(minutes=5)
    assert streams["mastodon:hashtags:kolektiva.social:notechforice"].account == "far"
    assert plan_streams(_config("pro"))[0].interval == timedelta(minutes=2)


# -- python -m bot mentions --------------------------------------------------------------------


def _stored(n: int, kind: str, seen: datetime) -> MentionRecord:
    return MentionRecord(
        platform="bluesky",
        remote_id=f"at://did:plc:alice/app.bsky.feed.post/{n}",
        kind=kind,  # type: ignore[arg-type]
        account=None if kind == "hashtag" else "main",
        url=f"https://bsky.app/profile/alice.example/post/{n}",
        author="alice.example",
        text=f'post {n}, "quoted", with a comma',
        hashtags=("NoTechForICE",),
        in_reply_to="https://bsky.app/profile/us/post/1" if kind == "reply" else None,
        created_at=seen - timedelta(minutes=1),
        seen_at=seen,
    )


@pytest.fixture
def campaign(tmp_path: Path) -> Path:
    (tmp_path / "config.yaml").write_text(
        "database: sqlite:///state/bot.sqlite3\nplatforms:\n  x: {enabled: false}\n"
    )
    ledger = open_ledger(f"sqlite:///{tmp_path / 'state' / 'bot.sqlite3'}")
    now = datetime.now(UTC)
    ledger.mentions.record_mentions(
        [_stored(1, "hashtag", now - timedelta(hours=3)), _stored(2, "reply", now - timedelta(minutes=5))]
    )
    ledger.close()
    return tmp_path / "config.yaml"


def _mentions(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_bot("mentions", *args, cwd=REPO, env=os.environ, config=config, timeout=60)


def test_mentions_lists_what_was_tracked_as_log_lines_json_or_csv(campaign: Path) -> None:
    text = _mentions(campaign)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert [line.split(" ", 2)[1] for line in lines] == ["hashtag", "reply"]
    assert lines[1].endswith(
        'reply bluesky @alice.example "post 2, \\"quoted\\", with a comma" '
        "https://bsky.app/profile/alice.example/post/2"
    )

    recent = _mentions(campaign, "--since", "1h", "--json")
    (record,) = [json.loads(line) for line in recent.stdout.splitlines()]
    assert tuple(record) == RECORD_KEYS
    assert (record["kind"], record["in_reply_to"]) == ("reply", "https://bsky.app/profile/us/post/1")

    table = list(csv.reader(io.StringIO(_mentions(campaign, "--csv").stdout)))
    assert table[0] == list(RECORD_KEYS)
    assert [row[7] for row in table[1:]] == [
        'post 1, "quoted", with a comma',
        'post 2, "quoted", with a comma',
    ]
    assert [row[8] for row in table[1:]] == ["NoTechForICE", "NoTechForICE"]


def test_mentions_refuses_a_bad_duration(campaign: Path) -> None:
    result = _mentions(campaign, "--since", "soon")
    assert result.returncode == 2 and "--since" in result.stderr


def test_mentions_follow_shows_new_ones_as_they_are_stored(tmp_path: Path) -> None:
    ledger = open_ledger(f"sqlite:///{tmp_path / 'bot.sqlite3'}")
    store = ledger.mentions
    store.record_mentions([_stored(1, "hashtag", T0)])
    out = io.StringIO()
    rounds = iter([lambda: store.record_mentions([_stored(2, "mention", T0)]), lambda: None])

    def wait(seconds: float) -> bool:
        step = next(rounds, None)
        if step is None:
            return False
        step()
        return True

    show_mentions(store, out, fmt="json", follow=True, wait=wait)
    ledger.close()
    assert [json.loads(line)["kind"] for line in out.getvalue().splitlines()] == ["hashtag", "mention"]


def test_two_daemons_sharing_the_mentions_log_rotate_it_without_losing_lines(tmp_path: Path) -> None:
    # Several workers may write one mentions_log: when a day turns, both try to rotate it, and
    # the one that moves second must neither fail nor drop its lines.
    path = tmp_path / "logs" / "mentions.jsonl"
    logs = [MentionsLog(path, retention_days=400), MentionsLog(path, retention_days=400)]
    failures: list[BaseException] = []

    def write_days(log: MentionsLog, offset: int) -> None:
        try:
            for n in range(60):
                log.write([_record(T0 + timedelta(days=n, minutes=offset), 2 * n + offset)])
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=write_days, args=(log, i)) for i, log in enumerate(logs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    files = [path, *(p for _, p in logs[0].rotated_files())]
    ids = sorted(int(json.loads(line)["id"]) for f in files for line in f.read_text().splitlines())
    assert ids == list(range(120))
