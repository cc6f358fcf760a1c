"""Monitoring end to end: the real SDKs against the sandbox emulators, a real SQLite ledger.

Other people post through each emulator's `/_sandbox/audience`; a pass of the monitor must then
report each post once, in order, with the right kind, across restarts and 429 storms.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import KW_ONLY, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from bot.campaign.model import (
    Account,
    AmplifyRule,
    Config,
    LoggingConfig,
    MonitorConfig,
    Platform,
    PlatformConfig,
)
from bot.daemon.audience import SCENES, Stage
from bot.ledger.deliveries import Ledger, open_ledger
from bot.ledger.leases import Leases
from bot.ledger.mentions import MonitorStore
from bot.ledger.ourposts import OurPosts
from bot.ledger.schema import DeliveryKey, leases
from bot.monitoring.classification import Sighting
from bot.monitoring.mentionlog import MentionsLog
from bot.monitoring.monitor import DaemonMonitor, Monitor
from bot.platforms import Outgoing, PlatformClient, Published
from bot.platforms.tid import make_tid
from tests.clock import START, Clock
from tests.emulated import Emulated, start_emulator

PLATFORMS: list[Platform] = ["x", "bluesky", "mastodon"]


@dataclass
class World(Emulated):
    """One platform's emulator, our ledger and the monitor processes a test starts on them."""

    _: KW_ONLY
    ledger: Ledger
    tmp: Path
    amplify: dict[Platform, AmplifyRule] = field(default_factory=dict)
    ignore: tuple[str, ...] = ()
    tier: str = "pro"
    clients: dict[str, PlatformClient] = field(default_factory=dict)
    sessions: dict[str, str] = field(default_factory=dict)
    monitor: Monitor | None = None
    published: int = 0

    def accounts(self) -> tuple[Account, ...]:
        return tuple(self.account(i) for i in range(len(self.server.emulator.credentials())))

    def config(self) -> Config:
        return Config(
            path=self.tmp / "config.yaml",
            campaign="test",
            platforms={
                self.platform: PlatformConfig(
                    self.platform,
                    True,
                    self.accounts(),
                    self.tier,  # type: ignore[arg-type]
                )
            },
            hashtags=("#NoTechForICE",),
            logging=LoggingConfig(mentions_log=self.tmp / "logs" / "mentions.jsonl"),
            monitor=MonitorConfig(ignore=self.ignore),
            amplify=self.amplify,
        )

    def client(self, name: str = "main") -> PlatformClient:
        if name not in self.clients:
            account = next(a for a in self.accounts() if a.name == name)
            self.clients[name] = self.open(
                account,
                load_session=lambda: self.sessions.get(name),
                save_session=lambda blob: self.sessions.__setitem__(name, blob),
            )
        return self.clients[name]

    def start(self, worker: str = "worker-1") -> Monitor:
        """A fresh monitor process: new clients, the same database (a restart)."""
        self.stop()
        engine = self.ledger.engine
        self.monitor = Monitor(
            config=self.config(),
            store=MonitorStore(engine),
            posts=OurPosts(engine),
            clients=lambda platform, name: self.client(name),
            now=self.clock,
            worker=worker,
            mentions_log=MentionsLog(self.tmp / "logs" / "mentions.jsonl", 30),
        )
        return self.monitor

    def stop(self) -> None:
        if self.monitor is not None:
            self.monitor.close()
            self.monitor = None
        self.close()
        self.clients.clear()

    def poll(self, minutes: float = 20) -> list[Sighting]:
        """Let time pass, then one pass of every due stream."""
        self.clock.advance(minutes=minutes)
        monitor = self.monitor or self.start()
        return monitor.run_pass(wait=True)

    def publish(
        self,
        text: str,
        account: str = "main",
        reply_to: Published | None = None,
        root: Published | None = None,
    ) -> Published:
        """One of our posts, recorded in the ledger as the delivery engine records it."""
        self.published += 1
        client = self.client(account)
        key = DeliveryKey("queue", f"post-{self.published}", 0, 0, self.platform, account)
        nonce = make_tid(self.clock())
        claimed = self.ledger.claim_delivery(key, "poster", self.clock(), timedelta(minutes=1), lambda: nonce)
        assert claimed is not None
        published = client.publish(Outgoing(text=text, nonce=nonce, reply_to=reply_to, root=root))
        self.ledger.confirm_delivery(key, published.id, published.url, self.clock(), cid=published.cid)
        return published

    def logged(self) -> list[dict[str, Any]]:
        path = self.tmp / "logs" / "mentions.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@contextmanager
def running(
    platform: Platform, tmp: Path, database: str = "", limits: str = "none", **fields: Any
) -> Iterator[World]:
    """An emulator on its own clock and a ledger (SQLite in `tmp` unless `database` is given)."""
    clock = Clock()
    server = start_emulator(platform, clock, limits)
    ledger = open_ledger(database or f"sqlite:///{tmp / 'state.sqlite3'}")
    world = World(platform, server, clock, ledger=ledger, tmp=tmp, **fields)
    try:
        yield world
    finally:
        world.stop()
        ledger.close()
        server.stop()


@pytest.fixture(params=PLATFORMS)
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    with running(request.param, tmp_path) as world:
        yield world


def kinds(sightings: list[Sighting]) -> list[tuple[str, str]]:
    return [(s.kind, s.post.text) for s in sightings]


# -- the tests ---------------------------------------------------------------------------------


def test_replies_mentions_and_hashtags_appear_once_each_in_order_across_a_restart(world: World) -> None:
    ours = world.publish("Drop the contracts. #NoTechForICE")
    world.poll()  # the first pass: nothing from others yet
    world.audience("hashtag", "first hashtag post #NoTechForICE")
    world.audience("reply", "a reply to the campaign", to=ours.id)
    world.audience("mention", "a mention of the campaign")
    world.audience("hashtag", "second hashtag post #notechforice")
    found = world.poll()
    assert [s.kind for s in found] == ["hashtag", "reply", "mention", "hashtag"]
    assert found[0].post.text.startswith("first hashtag post")
    assert found[1].in_reply_to == ours.url and found[1].account == "main"

    world.start()  # a restart: a new process on the same database
    assert world.poll() == []
    world.audience("hashtag", "after the restart #NoTechForICE")
    again = world.poll()
    assert [s.post.text for s in again] == [world.state()["posts"][-1]["text"]]

    logged = world.logged()
    assert [r["kind"] for r in logged] == ["hashtag", "reply", "mention", "hashtag", "hashtag"]
    assert len({r["id"] for r in logged}) == 5
    assert logged[1]["in_reply_to"] == ours.url
    assert all(r["platform"] == world.platform for r in logged)


def test_our_own_posts_are_never_reported(world: World) -> None:
    world.poll()
    world.publish("From the main account #NoTechForICE", account="main")
    world.publish("From the second account #NoTechForICE", account="account2")
    # Written by hand, outside the ledger: known as ours by its author alone.
    world.client("account2").publish(Outgoing(text="By hand #NoTechForICE", nonce=make_tid(world.clock())))
    world.audience("hashtag", "someone else #NoTechForICE")
    found = world.poll()
    assert [s.post.text for s in found] == [world.state()["posts"][-1]["text"]]


def test_a_reply_to_a_threads_second_part_is_linked_to_that_part(world: World) -> None:
    first = world.publish("Thread, part one #NoTechForICE")
    second = world.publish("Thread, part two", reply_to=first, root=first)
    world.poll()
    world.audience("reply", "answering part two", to=second.id)
    (found,) = world.poll()
    assert (found.kind, found.in_reply_to) == ("reply", second.url)


def test_a_storm_of_429s_delays_but_neither_loses_nor_repeats(world: World) -> None:
    world.poll()
    world.audience("hashtag", "during the storm #NoTechForICE", count=3)
    paths = {
        "x": "/2/*",
        "bluesky": "/xrpc/app.bsky.*",
        "mastodon": "/api/v1/*",
    }
    world.fault(method="GET", path=paths[world.platform], status=429, reset_in=60, times=6)
    seen: list[Sighting] = []
    for _ in range(12):
        seen += world.poll(minutes=30)
    assert len(seen) == 3
    assert len({s.post.id for s in seen}) == 3


def test_a_thousand_hashtag_posts_between_two_polls_are_all_read(world: World) -> None:
    world.poll()
    world.audience("hashtag", "one of many #NoTechForICE", count=1000)
    found = world.poll()
    assert len(found) == 1000
    assert len({s.post.id for s in found}) == 1000
    times = [s.post.created_at for s in found]
    assert times == sorted(times)
    assert world.poll() == []


def test_ignored_handles_are_never_logged(world: World) -> None:
    # As staff would write them: any case, with or without '@'; Mastodon handles in full.
    world.ignore = {
        "x": ("@Opted_Out",),
        "bluesky": ("Opted_Out.test",),
        "mastodon": ("@Opted_Out@example.social",),
    }[world.platform]
    world.start()
    world.poll()
    world.audience("hashtag", "please do not log me #NoTechForICE", author="opted_out")
    world.audience("hashtag", "log me #NoTechForICE", author="alice")
    found = world.poll()
    assert [s.post.text for s in found] == [world.state()["posts"][-1]["text"]]
    assert "do not log me" not in (world.tmp / "logs" / "mentions.jsonl").read_text()


def test_the_log_line_names_kind_platform_and_url_never_the_authors_words(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world.poll()
    world.audience("hashtag", "see the line #NoTechForICE")
    with caplog.at_level(logging.INFO, logger="bot"):
        (found,) = world.poll()
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("hashtag "))
    assert line == f"hashtag {world.platform} {found.post.url}"  # the text is in the mentions log


def test_an_allys_hashtag_post_is_reposted_once_and_never_again_after_a_restart(world: World) -> None:
    if world.platform == "x":
        ally = "ally"
    elif world.platform == "bluesky":
        ally = "ally.test"
    else:
        ally = "ally@example.social"
    world.amplify = {world.platform: AmplifyRule(allow=(ally,), max_per_day=10)}
    world.start()
    world.poll()
    (post,) = world.audience("hashtag", "an ally speaks #NoTechForICE", author=ally)
    world.audience("hashtag", "not an ally #NoTechForICE", author="stranger")
    world.poll()
    store = world.ledger.mentions
    assert store.count_amplifications(world.platform, START) == 1
    world.start()
    world.poll()
    # Forget the post was ever seen (mentions purged, cursors lost): read again, it is still
    # not reposted again, since the ledger remembers the repost itself.
    store.purge_mentions(world.clock() + timedelta(days=1))
    for stream in world.start().streams:
        store.set_cursor(stream.key, "", world.clock())
    world.poll()
    assert store.count_amplifications(world.platform, START) == 1
    reposts = _reposts_of(world, post["id"])
    assert reposts == 1


def _reposts_of(world: World, post_id: str) -> int:
    state = world.state()
    if world.platform in ("bluesky", "mastodon"):  # reposts and boosts are listed apart from posts
        return sum(1 for r in state.get("reposts", []) if r["subject"] == post_id and not r.get("deleted"))
    if world.platform == "x":
        return sum(
            1
            for p in state["posts"]
            if any(
                ref.get("type") == "retweeted" and ref.get("id") == post_id
                for ref in (p["raw"].get("referenced_tweets") or [])
            )
        )
    raise AssertionError(world.platform)


@pytest.mark.parametrize("visibility", ["direct", "private"])
def test_direct_messages_and_followers_only_posts_are_never_logged(tmp_path: Path, visibility: str) -> None:
    with running("mastodon", tmp_path) as world:
        world.poll()
        world.control("settings", audience_visibility=visibility)
        world.audience("mention", "a private word for the campaign #NoTechForICE")
        world.control("settings", audience_visibility="public")
        world.audience("mention", "a public word for the campaign")
        found = world.poll()
        assert [s.post.text for s in found] == [world.state()["posts"][-1]["text"]]
        assert "private word" not in (tmp_path / "logs" / "mentions.jsonl").read_text()


def test_x_free_reads_a_long_gap_a_page_per_15_minutes_without_a_429(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with running("x", tmp_path, limits="free", tier="free") as world:
        world.poll()
        world.audience("hashtag", "one of many #NoTechForICE", count=250)
        seen: list[Sighting] = []
        with caplog.at_level(logging.WARNING, logger="bot.monitoring.monitor"):
            for _ in range(12):  # an hour, one pass every 5 minutes
                seen += world.poll(minutes=5)
        assert [r.getMessage() for r in caplog.records] == []  # no 429, no failure
        assert len(seen) == 250 and len({s.post.id for s in seen}) == 250


@dataclass
class Host:
    """The parts of the daemon's runtime that monitoring uses."""

    config: Config
    now: Clock
    clients: Any
    ledger: Ledger


def _logged_texts(world: World, at_least: int) -> list[str]:
    """The mentions log's texts, once it holds `at_least`: Mastodon's live stream reports from
    its own thread, so there a moment more is given for anything it would add."""
    deadline = time.monotonic() + 3
    while len(world.logged()) < at_least and time.monotonic() < deadline:
        time.sleep(0.02)
    if world.platform == "mastodon":
        time.sleep(0.3)
    return [record["text"] for record in world.logged()]


def test_the_daemon_hook_keeps_one_monitor_and_follows_a_reloaded_config(world: World) -> None:
    # The daemon's monitor holds Mastodon's live stream open: a post may be reported by the
    # stream rather than by the pass, so the mentions log is what counts.
    host = Host(world.config(), world.clock, lambda platform, name: world.client(name), world.ledger)
    monitor_pass = DaemonMonitor(host)
    monitor_pass()
    world.audience("hashtag", "first #NoTechForICE", author="alice")
    world.clock.advance(minutes=20)
    monitor_pass()
    assert _logged_texts(world, 1) == [world.state()["posts"][-1]["text"]]
    world.clock.advance(minutes=20)
    monitor_pass()
    assert _logged_texts(world, 1) == [world.state()["posts"][-1]["text"]]  # the same monitor: once

    world.ignore = {"x": ("bob",), "bluesky": ("bob.test",), "mastodon": ("bob@example.social",)}[
        world.platform
    ]
    host.config = world.config()  # as a reload replaces it; the next pass follows it
    monitor_pass()
    world.audience("hashtag", "from bob #NoTechForICE", author="bob")
    world.clock.advance(minutes=20)
    monitor_pass()
    assert len(_logged_texts(world, 1)) == 1
    monitor_pass.close()


def test_two_workers_share_the_streams_through_leases(database_url: str, tmp_path: Path) -> None:
    with running("bluesky", tmp_path, database_url) as world:
        _two_workers(world)


def _two_workers(world: World) -> None:
    first = world.start("worker-1")
    engine = world.ledger.engine
    second = Monitor(
        config=world.config(),
        store=MonitorStore(engine),
        posts=OurPosts(engine),
        clients=lambda platform, name: world.client(name),
        now=world.clock,
        worker="worker-2",
        mentions_log=MentionsLog(world.tmp / "logs" / "mentions.jsonl", 30),
    )
    try:
        world.clock.advance(minutes=20)
        first.run_pass()
        world.audience("hashtag", "one #NoTechForICE")
        world.clock.advance(minutes=3)  # due again (every 2 minutes), within worker-1's lease
        assert second.run_pass() == []  # worker-1 holds every stream
        assert len(first.run_pass()) == 1
        world.audience("hashtag", "two #NoTechForICE")
        world.clock.advance(minutes=6)  # worker-1 died; by worker-2's clock its leases ran out,
        assert second.run_pass() == []  # but they run on the database's clock: not yet
        _lapse_leases_of(engine, "worker-1")
        assert [s.post.text for s in second.run_pass()] == [world.state()["posts"][-1]["text"]]
        first.close()
    finally:
        second.close()
    assert [r["text"] for r in world.logged()] == ["one #NoTechForICE", "two #NoTechForICE"]


def _lapse_leases_of(engine: Engine, worker: str) -> None:
    """Renew a worker's leases with one that ran out a second ago: as if its 5 minutes had passed."""
    with engine.connect() as conn:
        names = conn.execute(select(leases.c.name).where(leases.c.holder == worker)).scalars().all()
    assert names
    for name in names:
        assert Leases(engine).acquire_lease(name, worker, timedelta(seconds=-1))


@pytest.mark.parametrize("world", ["mastodon"], indirect=True)
def test_mentions_are_forgotten_after_the_retention_days(world: World) -> None:
    world.poll()
    world.audience("hashtag", "kept for a while #NoTechForICE")
    world.poll()
    store = world.ledger.mentions
    assert len(store.list_mentions()) == 1
    world.clock.advance(days=29)
    world.poll()
    assert len(store.list_mentions()) == 1
    world.clock.advance(days=2)
    world.poll()
    assert store.list_mentions() == []


def test_gotosocial_ulid_ids_post_reconcile_and_monitor_like_numbers(tmp_path: Path) -> None:
    """GoToSocial's ids are ULIDs, not numbers: paging marks, reply links and the lookup after a
    lost answer must not read them as integers."""
    with running("mastodon", tmp_path) as world:
        world.control("settings", ids="ulid")
        ours = world.publish("Drop the contracts. #NoTechForICE")
        assert not ours.id.isdigit() and len(ours.id) == 26
        world.poll()
        world.audience("reply", "a reply by ULID", to=ours.id)
        world.audience("hashtag", "a hashtag post by ULID #NoTechForICE")
        assert [(s.kind, s.in_reply_to) for s in world.poll()] == [("reply", ours.url), ("hashtag", None)]
        world.clock.advance(seconds=1)
        world.audience("hashtag", "the next page #NoTechForICE")
        assert kinds(world.poll()) == [("hashtag", world.state()["posts"][-1]["text"])]

        lost = Outgoing(text="Sent, answer lost", nonce=make_tid(world.clock()))
        sent = world.client().publish(lost)
        assert world.client().find_published(lost, world.clock() - timedelta(minutes=5)) == sent


def test_each_audience_kind_is_reported_as_an_organizer_expects(world: World) -> None:
    ours = world.publish("Drop the contracts. #NoTechForICE")
    world.poll()
    world.audience("quote", "quoting you #NOTECHFORICE", author="quoter", to=ours.id)
    world.audience("reply", "مرحبا بالجميع 🌍✊ #notechforice", author="arabic", to=ours.id)
    world.audience("mention", "no tag, just naming you", author="namer")
    world.audience("hashtag", "typed without a facet #NoTechForIce", author="plain", plain=True)
    (gone,) = world.audience("hashtag", "deleted before anyone saw it", author="deleter")
    world.audience("delete", author="deleter", to=gone["id"])
    world.audience("hashtag", "by someone about to be suspended", author="suspended")
    world.audience("suspend", author="suspended")

    found = world.poll()
    assert [(s.kind, s.post.author.split("@")[0].split(".")[0]) for s in found] == [
        ("reply", "quoter"),
        ("reply", "arabic"),
        ("mention", "namer"),
        ("hashtag", "plain"),
    ]
    assert [s.hashtags for s in found] == [("NoTechForICE",), ("NoTechForICE",), (), ("NoTechForICE",)]
    assert found[0].in_reply_to == ours.url and "مرحبا بالجميع 🌍✊" in found[1].post.text

    # A reported post later deleted stays reported: the log is what was seen, when it was seen.
    reported = next(p for p in world.state()["posts"] if p["text"].startswith("typed without"))
    world.audience("delete", author="plain", to=reported["id"])
    assert world.poll() == []
    assert len(world.logged()) == 4


def test_a_mastodon_edit_is_not_reported_again(tmp_path: Path) -> None:
    with running("mastodon", tmp_path) as world:
        world.poll()
        (post,) = world.audience("hashtag", "first words #NoTechForICE", author="editor")
        assert [s.post.text for s in world.poll()] == ["first words #NoTechForICE"]
        (edited,) = world.audience("edit", "second thoughts #NoTechForICE", author="editor", to=post["id"])
        assert edited["raw"]["edited_at"] is not None and edited["id"] == post["id"]
        assert world.poll() == []
        assert [r["text"] for r in world.logged()] == ["first words #NoTechForICE"]


def test_every_rehearsal_scene_plays_and_is_reported_once(world: World) -> None:
    root = world.publish("Part one of our thread #NoTechForICE")
    world.publish("Part two of our thread", reply_to=root, root=root)
    world.poll()
    played = []
    for scene in SCENES:
        ours = [p for p in world.state()["posts"] if p["author"] in world.state()["accounts"].values()]
        played.append(scene(Stage(world.platform, world.url, ours)))
    assert [p is None for p in played] == [False] * 7 + [world.platform != "mastodon", False, False]
    assert "thread of" in (played[5] or "")

    found = world.poll()
    authors = [(s.kind, s.post.author.split("@")[0].split(".")[0]) for s in found]
    threaded = sum(1 for kind, author in authors if author == "farah")  # the long reply: 8-15 parts
    assert 8 <= threaded <= 15 and all(s.in_reply_to == root.url for s in found if "farah" in s.post.author)
    expected = [
        ("reply", "alice"),
        ("reply", "bob"),
        ("hashtag", "crossposter"),
        ("mention", "dana"),
        ("hashtag", "emre"),
        *[("reply", "farah")] * threaded,
        ("reply", "gus"),
    ]
    if world.platform == "mastodon":
        expected.append(("hashtag", "hana"))
    spammer = ("hashtag", next(a for _, a in authors if a.startswith("spammer")))
    assert authors == [*expected, spammer]  # not the deleted post; the spammer not yet suspended
    assert world.platform != "mastodon" or found[-2].post.text.startswith("Second draft")
    assert found[5 + threaded].in_reply_to is not None and found[5 + threaded].in_reply_to != root.url
    # The suspension scene again: the spammer seen above is suspended, their post stays logged.
    ours = [p for p in world.state()["posts"] if p["author"] in world.state()["accounts"].values()]
    posts = [p for p in world.state()["posts"] if not p.get("deleted")]
    assert SCENES[-1](Stage(world.platform, world.url, ours, None, posts)).startswith("a post whose author")
    assert [p["author"] for p in world.state()["posts"] if p.get("deleted") and "spammer" in p["author"]]
    assert len(world.poll()) == 1  # only the next spammer's post
    assert len(world.logged()) == len(found) + 1


def test_facebook_comments_and_page_mentions_are_logged_once_and_hashtags_are_not_searched(
    tmp_path: Path,
) -> None:
    with running("facebook", tmp_path) as world:
        ours = world.publish("Drop the contracts. #NoTechForICE")
        world.poll()
        comment = world.audience("reply", "signed!", author="alice", to=ours.id)[0]
        world.clock.advance(1)
        world.audience("reply", "me too", author="bob", to=comment["id"])
        world.clock.advance(1)
        world.audience("mention", "says drop the contracts", author="carol")
        world.audience("hashtag", "a stranger's #NoTechForICE post no Page endpoint lists", author="dan")
        world.client().publish(Outgoing(text="By hand, on our Page", nonce="n"))
        found = world.poll()
        assert [(s.kind, s.post.author) for s in found] == [
            ("reply", "alice"),
            ("reply", "bob"),
            ("mention", "carol"),
        ]
        assert found[0].in_reply_to == ours.url and found[2].account == "main"

        world.start()  # a restart: the cursor is kept in the ledger
        assert world.poll() == []
        world.fault(method="GET", path="/*/comments", code=80001, times=3)
        world.audience("reply", "after the restart", author="erin", to=ours.id)
        seen: list[Sighting] = []
        for _ in range(4):
            seen += world.poll(minutes=30)
        assert [s.post.text for s in seen] == ["after the restart"]
        logged = world.logged()
        assert [(r["kind"], r["platform"]) for r in logged] == [("reply", "facebook")] * 2 + [
            ("mention", "facebook"),
            ("reply", "facebook"),
        ]
