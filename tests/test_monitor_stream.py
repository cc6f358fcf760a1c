"""Mastodon's live hashtag stream beside the polls: the real Mastodon.py against the emulator.

The monitor holds the tag's stream open where the instance offers one: a post reaches the
mentions log within a second (no pass runs meanwhile, the clock stands still), once, however
often it is polled afterwards. A stream the server drops, or one never offered, leaves the
polls at their normal pace, and nothing is lost.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from bot.campaign.model import Account, Config, LoggingConfig, PlatformConfig
from bot.ledger.deliveries import Ledger, open_ledger
from bot.ledger.mentions import MonitorStore
from bot.ledger.ourposts import OurPosts
from bot.monitoring.livestreams import RETRY_FAILED, SLOWDOWN, LiveStreams, poll_due_at
from bot.monitoring.mentionlog import MentionsLog
from bot.monitoring.monitor import Monitor
from bot.monitoring.pacing import Budget
from bot.monitoring.streams import Stream, StreamState
from bot.platforms import Outgoing, PlatformClient, open_client
from bot.sandbox import start_sandbox
from bot.sandbox.mastodon import MastodonEmulator
from bot.sandbox.server import SandboxServer
from tests.clock import START, Clock
from tests.sandboxsite import Site, wait_for

REPO = Path(__file__).resolve().parent.parent
STREAM = "mastodon:hashtags:{host}:notechforice"
INTERVAL = timedelta(minutes=2)  # monitor.hashtags_every's default, within Mastodon's budget


@dataclass
class Instance:
    """One Mastodon emulator, a SQLite ledger, and the monitors (workers) sharing it."""

    server: SandboxServer
    clock: Clock
    ledger: Ledger
    tmp: Path
    clients: list[PlatformClient] = field(default_factory=list)
    monitors: list[Monitor] = field(default_factory=list)

    @property
    def stream_key(self) -> str:
        return STREAM.format(host=self.server.base_url.split("://")[1])

    def config(self) -> Config:
        accounts = tuple(
            Account(
                "mastodon", c["name"], self.server.base_url, credentials={"access_token": c["access_token"]}
            )
            for c in self.server.emulator.credentials()
        )
        return Config(
            path=self.tmp / "config.yaml",
            campaign="test",
            platforms={"mastodon": PlatformConfig("mastodon", True, accounts)},
            hashtags=("#NoTechForICE",),
            logging=LoggingConfig(mentions_log=self.tmp / "mentions.jsonl"),
        )

    def monitor(self, worker: str = "worker-1") -> Monitor:
        config = self.config()
        clients: dict[str, PlatformClient] = {}

        def client(platform: str, name: str) -> PlatformClient:
            if name not in clients:
                account = next(a for a in config.accounts("mastodon") if a.name == name)
                clients[name] = open_client(account, now=self.clock, timeout=5.0)
                self.clients.append(clients[name])
            return clients[name]

        engine = self.ledger.engine
        monitor = Monitor(
            config=config,
            store=MonitorStore(engine),
            posts=OurPosts(engine),
            clients=client,
            now=self.clock,
            worker=worker,
            mentions_log=MentionsLog(self.tmp / "mentions.jsonl", 30),
            live_streams=True,
        )
        self.monitors.append(monitor)
        return monitor

    def audience(self, text: str, author: str = "alice") -> None:
        body = {"kind": "hashtag", "author": author, "text": text}
        answer = requests.post(f"{self.server.base_url}/_sandbox/audience", json=body, timeout=5)
        assert answer.status_code == 200, answer.text

    def settings(self, **settings: Any) -> None:
        answer = requests.post(f"{self.server.base_url}/_sandbox/settings", json=settings, timeout=5)
        assert answer.status_code == 200, answer.text

    def logged(self) -> list[str]:
        path = self.tmp / "mentions.jsonl"
        return [json.loads(line)["text"] for line in path.read_text().splitlines()] if path.exists() else []

    def logged_soon(self, count: int, timeout: float = 3.0) -> list[str]:
        wait_for(lambda: len(self.logged()) >= count, timeout=timeout, step=0.01)
        return self.logged()

    def streaming(self, monitor: Monitor) -> bool:
        """Wait until the monitor's live stream is connected."""
        assert monitor.live is not None
        return wait_for(lambda: self.stream_key in monitor.live.receiving(), timeout=8)


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[Instance]:
    clock = Clock()
    server = SandboxServer(MastodonEmulator(accounts=2, clock=clock)).start()
    ledger = open_ledger(f"sqlite:///{tmp_path / 'state.sqlite3'}")
    inst = Instance(server, clock, ledger, tmp_path)
    yield inst
    for monitor in inst.monitors:
        monitor.close()
    for client in inst.clients:
        client.close()
    ledger.close()
    server.stop()


def tag(text: str) -> str:
    return f"{text} #NoTechForICE"


# -- end to end --------------------------------------------------------------------------------


def test_a_streamed_post_is_logged_within_a_second_and_once_after_the_next_polls(instance: Instance) -> None:
    monitor = instance.monitor()
    monitor.run_pass()
    assert instance.streaming(monitor)

    sent = time.monotonic()
    instance.audience(tag("Streamed at once"))
    assert instance.logged_soon(1) == [tag("Streamed at once")]
    assert time.monotonic() - sent < 1.0  # no pass ran: the clock stands still

    for _ in range(3):  # the fallback polls read it again; the ledger reports it once
        instance.clock.advance(minutes=30)
        assert monitor.run_pass() == []
    assert instance.logged() == [tag("Streamed at once")]


def test_while_the_stream_receives_the_poll_slows_down_and_polls_at_once_after_a_reconnect() -> None:
    class Feed:
        def __init__(self, receiving: bool, connections: int) -> None:
            self.receiving, self.count = receiving, connections

        def is_receiving(self) -> bool:
            return self.receiving

        def is_alive(self) -> bool:
            return True

        def connections(self) -> int:
            return self.count

        def close(self) -> None:
            pass

    state = StreamState("cursor", START + INTERVAL)
    assert poll_due_at(state, INTERVAL, None, 0) == START + INTERVAL  # no stream: normal pace
    assert poll_due_at(state, INTERVAL, Feed(False, 1), 1) == START + INTERVAL  # dropped: normal
    assert poll_due_at(state, INTERVAL, Feed(True, 1), 1) == START + INTERVAL * SLOWDOWN
    assert poll_due_at(state, INTERVAL, Feed(True, 2), 1) is None  # reconnected: fill the gap now
    backing_off = StreamState("cursor", START + timedelta(minutes=16), failures=3)
    assert poll_due_at(backing_off, INTERVAL, Feed(True, 2), 1) == START + timedelta(minutes=16)


def test_a_live_stream_whose_thread_died_is_opened_again_after_a_pause() -> None:
    class Feed:
        alive = True

        def is_receiving(self) -> bool:
            return self.alive

        def is_alive(self) -> bool:
            return self.alive

        def connections(self) -> int:
            return 1

        def close(self) -> None:
            self.alive = False

    class Client:
        def __init__(self) -> None:
            self.opened: list[Feed] = []

        def open_hashtag_stream(self, tag: str, deliver: object) -> Feed:
            self.opened.append(Feed())
            return self.opened[-1]

    stream = Stream("mastodon:hashtags:example.social:notechforice", "mastodon", "main", "hashtags",
                    INTERVAL, Budget(60, timedelta(minutes=5)), ("NoTechForICE",))  # fmt: skip
    live, client = LiveStreams(lambda stream, post: None), Client()
    live.keep_open(stream, client, START)  # type: ignore[arg-type]
    live.keep_open(stream, client, START + timedelta(minutes=1))  # type: ignore[arg-type]
    assert len(client.opened) == 1 and live.receiving() == [stream.key]
    client.opened[0].alive = False  # e.g. an error Mastodon.py does not retry
    live.keep_open(stream, client, START + timedelta(minutes=2))  # type: ignore[arg-type]
    assert len(client.opened) == 1 and live.receiving() == []
    live.keep_open(stream, client, START + timedelta(minutes=2) + RETRY_FAILED)  # type: ignore[arg-type]
    assert len(client.opened) == 2 and live.receiving() == [stream.key]
    live.close()
    assert not client.opened[1].alive


def test_a_stream_the_server_drops_falls_back_to_polling_and_loses_nothing(instance: Instance) -> None:
    monitor = instance.monitor()
    monitor.run_pass()
    assert instance.streaming(monitor)
    instance.audience(tag("A, streamed"))
    assert instance.logged_soon(1) == [tag("A, streamed")]

    instance.settings(streaming="down")  # the streaming server goes away; the API stays
    assert wait_for(lambda: not monitor.live.receiving(), timeout=3)  # type: ignore[union-attr]
    instance.audience(tag("B, while down"))
    instance.clock.advance(minutes=1)
    monitor.run_pass()
    assert instance.logged() == [tag("A, streamed")]  # the normal pace: not due yet
    instance.clock.advance(minutes=1)
    monitor.run_pass()  # due at the normal pace, not the slowed one
    assert instance.logged() == [tag("A, streamed"), tag("B, while down")]

    instance.settings(streaming="up")
    instance.audience(tag("C, before the reconnect"))
    assert instance.streaming(monitor)  # Mastodon.py reconnects by itself
    monitor.run_pass()  # the clock has not moved: only the reconnect makes this poll due
    instance.audience(tag("D, streamed again"))
    texts = [tag(t) for t in ("A, streamed", "B, while down", "C, before the reconnect", "D, streamed again")]
    assert instance.logged_soon(4) == texts
    instance.clock.advance(minutes=30)
    monitor.run_pass()
    assert instance.logged() == texts


def test_an_instance_without_streaming_is_polled_at_the_normal_pace(instance: Instance) -> None:
    instance.settings(streaming="none")
    monitor = instance.monitor()
    monitor.run_pass()
    instance.audience(tag("Polled"))
    time.sleep(0.3)
    assert instance.logged() == [] and monitor.live is not None and monitor.live.receiving() == []
    instance.clock.advance(minutes=2)
    assert [s.post.text for s in monitor.run_pass()] == [tag("Polled")]


def test_our_own_tagged_posts_are_not_reported_by_the_stream(instance: Instance) -> None:
    monitor = instance.monitor()
    monitor.run_pass()
    assert instance.streaming(monitor)
    # Streamed before the delivery engine could record it: known as ours by its author.
    instance.clients[0].publish(Outgoing(text=tag("Our call to action"), nonce="n-1"))
    instance.audience(tag("Theirs"))
    assert instance.logged_soon(1) == [tag("Theirs")]
    instance.clock.advance(minutes=30)
    monitor.run_pass()
    assert instance.logged() == [tag("Theirs")]


@pytest.mark.parametrize("visibility", ["direct", "private"])
def test_dms_and_followers_only_posts_are_never_logged_with_the_stream_open(
    instance: Instance, visibility: str
) -> None:
    monitor = instance.monitor()
    monitor.run_pass()
    assert instance.streaming(monitor)
    instance.settings(audience_visibility=visibility)
    instance.audience(tag("Not for the log"))
    instance.settings(audience_visibility="public")
    instance.audience(tag("Public"))
    instance.clock.advance(minutes=30)
    monitor.run_pass()
    assert instance.logged_soon(1) == [tag("Public")]
    time.sleep(0.2)
    assert instance.logged() == [tag("Public")]


def test_only_the_lease_holder_streams_and_a_closed_monitor_hands_the_stream_on(instance: Instance) -> None:
    first, second = instance.monitor("worker-1"), instance.monitor("worker-2")
    first.run_pass()
    second.run_pass()
    assert instance.streaming(first)
    assert second.live is not None and second.live.receiving() == []

    first.close()  # a clean stop: the stream closes at once and the lease is released
    instance.audience(tag("After the first worker stopped"))
    time.sleep(0.3)
    assert instance.logged() == []
    second.run_pass()  # takes the lease over and opens its own stream
    assert instance.streaming(second)
    second.run_pass()  # the clock has not moved: the new connection makes the poll due
    assert instance.logged() == [tag("After the first worker stopped")]
    instance.audience(tag("Streamed by the second"))
    assert instance.logged_soon(2)[-1] == tag("Streamed by the second")


# -- the daemon --------------------------------------------------------------------------------


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    sandbox = start_sandbox()
    yield Site(tmp_path, sandbox)
    sandbox.stop()


def test_the_daemon_logs_a_streamed_post_at_once_and_sigterm_still_exits_promptly(site: Site) -> None:
    # A heartbeat longer than the test: closing the stream must not wait for the server's next write.
    site.settings("mastodon", stream_heartbeat=120)
    env = {**os.environ, **site.env}
    command = [sys.executable, "-m", "bot", "--config", str(site.config), "run"]
    proc = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []

    def read_output() -> None:
        for line in proc.stdout or ():
            lines.append(line)

    reader = threading.Thread(target=read_output, daemon=True)
    reader.start()
    try:
        assert wait_for(lambda: any("#NoTechForICE: connected" in line for line in lines), timeout=20), lines
        requests.post(
            f"{site.base('mastodon')}/_sandbox/audience",
            json={"kind": "hashtag", "author": "carol", "text": tag("Seen by the daemon")},
            timeout=5,
        ).raise_for_status()
        # hashtags_every is 2 minutes: only the stream can bring it this fast.
        assert wait_for(lambda: any("hashtag mastodon http" in line for line in lines), timeout=2), lines
        sent_at = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        assert time.monotonic() - sent_at < 10, lines
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        reader.join(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()
    assert sum("hashtag mastodon http" in line for line in lines) == 1, lines  # the log line, once
