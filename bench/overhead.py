"""Per-post overhead: what the bot adds to each post over the client library's own call.

Per network (X, Bluesky, Mastodon), against a sandbox in its own process with no latency, side
by side in each round:

- bot: `run --once` with `--posts` queues each due now with one post, on one account of that
  network alone: the real command path (`bot.commands.run.run_daemon`: the config and queues
  loaded, the tick fires each slot, claims it and its delivery in the ledger, the pool's threads
  claim, record the attempt, call the adapter and confirm, then one monitoring pass), minus its
  start-up: the same run again right after, when nothing is due (same config, ledger, queue
  files and monitoring pass). Both run in this process, after a first run has imported the
  bot: a subprocess's ~1.5 s of imports would bury a 0.3 s difference in noise on a shared
  machine (bench/startup.py measures start-up);
- SDK: the same number of posts made directly with the client library, one after the other,
  as the adapter makes them (tweepy `create_tweet`, atproto `app.bsky.feed.post.create` with a
  TID rkey, Mastodon.py `status_post` with an Idempotency-Key), its client opened (Bluesky
  logged in) before the clock starts.

The ratio is the bot's posting time over the SDK's (goal <= 1.2 x); CPU is printed beside it
(the bot's process against this one's). Each round uses a fresh ledger; the figures printed
are the medians of `--rounds`. A first, unmeasured run creates the ledger and the Bluesky
session, as on a daemon that has run before.

    python bench/overhead.py [--posts 100] [--rounds 3] [--network x,bluesky,mastodon]
                             [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from campaign import SandboxProcess, write_config
from timing import REPO, Timing, drop_database, fresh_database, load_average

sys.path.insert(0, str(REPO))

from bot.platforms.tid import make_tid
from bot.platforms.x_transport import redirect_session

GOAL_RATIO = 1.2
NETWORKS = ("x", "bluesky", "mastodon")
NOTHING_DUE = "schedule: {every: 1d}\nstart: 2099-01-01\nposts:\n  - id: later\n    text: Later.\n"


def due_queue(tag: str, n: int) -> str:
    start = (datetime.now(UTC) - timedelta(seconds=2)).isoformat(timespec="seconds")
    return (
        f"schedule: {{every: 1d}}\nstart: {start}\n"
        f"posts:\n  - id: p{n}\n"
        f'    text: "Post {n} of {tag}: tell tech companies to drop their ICE contracts."\n'
    )


def post_text(tag: str, n: int) -> str:
    return f"Direct post {n} of {tag}: tell tech companies to drop their ICE contracts. #NoTechForICE"


def sdk_poster(network: str, account: dict[str, Any], base_url: str) -> Callable[[str], object]:
    """One post made directly with the network's client library, opened and logged in now."""
    if network == "x":
        import tweepy

        x = tweepy.Client(
            consumer_key=account["consumer_key"],
            consumer_secret=account["consumer_secret"],
            access_token=account["access_token"],
            access_token_secret=account["access_token_secret"],
        )
        redirect_session(x.session, base_url)
        return lambda text: x.create_tweet(text=text, user_auth=True)
    if network == "bluesky":
        from atproto_client import Client, models

        bsky = Client(base_url)
        bsky.login(account["handle"], account["app_password"])
        did = bsky.me.did

        def post(text: str) -> object:
            now = datetime.now(UTC)
            record = models.AppBskyFeedPost.Record(created_at=now.isoformat(), text=text)
            return bsky.app.bsky.feed.post.create(did, record, rkey=make_tid(now))

        return post
    from mastodon import Mastodon

    api = Mastodon(
        access_token=account["access_token"],
        api_base_url=base_url,
        ratelimit_method="throw",
        mastodon_version="4.3.0",
        version_check_mode="created",
    )
    return lambda text: api.status_post(
        text, visibility="public", idempotency_key=make_tid(datetime.now(UTC))
    )


def control_headers(description: dict[str, Any], network: str) -> dict[str, str]:
    """The sandbox control API's per-run token (docs/sandbox.md)."""
    token = description[network].get("control_token")
    return {"X-Sandbox-Token": token} if token else {}


def reset(description: dict[str, Any], network: str) -> None:
    """Empty the emulator, so every round posts into the same state."""
    request = urllib.request.Request(
        description[network]["base_url"] + "/_sandbox/reset",
        data=b"{}",
        method="POST",
        headers={"Content-Type": "application/json", **control_headers(description, network)},
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


def sdk_round(network: str, description: dict[str, Any], tag: str, posts: int) -> Timing:
    base_url = description[network]["base_url"]
    post = sdk_poster(network, description[network]["accounts"][0], base_url)
    started, cpu_started = time.perf_counter(), time.process_time()
    for n in range(posts):
        post(post_text(tag, n))
    return Timing(time.perf_counter() - started, time.process_time() - cpu_started)


def bot_round(
    network: str, description: dict[str, Any], folder: Path, tag: str, posts: int, postgres: str | None
) -> tuple[Timing, Timing]:
    """(run --once with `posts` due, the same run with nothing left due)."""
    database = "sqlite:///state/bot.sqlite3"
    if postgres is not None:
        database = fresh_database(postgres, f"bench_overhead_{tag}_{os.getpid()}")
    try:
        config, env = write_config(
            folder, description, {"later": NOTHING_DUE}, database=database, platforms=(network,)
        )
        run_once(config, env)  # the ledger created, the Bluesky session saved
        for n in range(posts):
            (folder / "content" / f"due{n:03d}.yaml").write_text(due_queue(tag, n), encoding="utf-8")
        posting = run_once(config, env)
        idle = run_once(config, env)
    finally:
        if postgres is not None:
            drop_database(postgres, database.rsplit("/", 1)[1])
    sent = len(sandbox_posts(description, network))
    if sent != posts:
        sys.exit(f"{network} round {tag}: the sandbox holds {sent} posts, not {posts}")
    return posting, idle


def synced_commit(folder: Path, commits: int = 50) -> float:
    """Median seconds of one tiny SQLite commit as the ledger makes it (WAL, synchronous=FULL):
    the disk's share of every ledger write, which no code change removes."""
    import sqlite3

    db = sqlite3.connect(folder / "fsync.sqlite3", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (n INTEGER)")
    times = []
    for n in range(commits):
        started = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t VALUES (?)", (n,))
        db.execute("COMMIT")
        times.append(time.perf_counter() - started)
    db.close()
    return statistics.median(times)


def pg_commit(server: str, commits: int = 50) -> float:
    """Median seconds of one tiny PostgreSQL transaction (BEGIN, INSERT, COMMIT): the round
    trips and synced commit under every ledger write, which no code change removes."""
    import psycopg

    name = f"bench_floor_{os.getpid()}"
    url = fresh_database(server, name).replace("postgresql+psycopg://", "postgresql://")
    try:
        with psycopg.connect(url) as db:
            db.execute("CREATE TABLE t (n INTEGER)")
            db.commit()
            times = []
            for n in range(commits):
                started = time.perf_counter()
                with db.transaction():
                    db.execute("INSERT INTO t VALUES (%s)", (n,))
                times.append(time.perf_counter() - started)
    finally:
        drop_database(server, name)
    return statistics.median(times)


def run_once(config: Path, env: dict[str, str]) -> Timing:
    """`run --once` as the command line runs it, in this process, its log lines dropped."""
    from bot.commands.run import run_daemon

    saved_env, saved_stderr = dict(os.environ), sys.stderr
    os.environ.update(env)
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115  # closed below
    try:
        started, cpu_started = time.perf_counter(), time.process_time()
        code = run_daemon(config, once=True, duration=None, sandbox=False)
        timing = Timing(time.perf_counter() - started, time.process_time() - cpu_started)
    finally:
        sys.stderr.close()
        sys.stderr = saved_stderr
        os.environ.clear()
        os.environ.update(saved_env)
    if code != 0:
        sys.exit(f"run --once with {config} exited {code}")
    return timing


def sandbox_posts(description: dict[str, Any], network: str) -> list[Any]:
    import json

    url = description[network]["base_url"] + "/_sandbox/state"
    request = urllib.request.Request(url, headers=control_headers(description, network))
    with urllib.request.urlopen(request, timeout=10) as answer:
        posts: list[Any] = json.load(answer)["posts"]
        return posts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--network", default=",".join(NETWORKS), help="comma-separated: x,bluesky,mastodon")
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="ledger on PostgreSQL: a server URL such as postgresql+psycopg://postgres@127.0.0.1:5432/test"
        " (each round creates and drops its own database)",
    )
    args = parser.parse_args()
    networks = [n.strip() for n in args.network.split(",") if n.strip()]
    if unknown := [n for n in networks if n not in NETWORKS]:
        parser.error(f"unknown network {unknown[0]!r}: choose from {', '.join(NETWORKS)}")
    loads = [load_average()]
    ledger = "PostgreSQL" if args.postgres else "SQLite"
    print(f"(load average {loads[0]:.1f} on {os.cpu_count()} cores; medians of {args.rounds} rounds)")
    ok = True
    with SandboxProcess(accounts=1) as sandbox, tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        description = sandbox.description
        for network in networks:
            bot_wall, bot_cpu, sdk_wall, sdk_cpu, ratios = [], [], [], [], []
            for round_ in range(args.rounds):
                tag = f"{network}{round_}t{int(time.time())}"
                reset(description, network)
                sdk = sdk_round(network, description, tag, args.posts)
                reset(description, network)
                posting, idle = bot_round(
                    network, description, Path(tmp) / tag, tag, args.posts, args.postgres
                )
                bot_wall.append(posting.wall - idle.wall)
                bot_cpu.append(posting.cpu - idle.cpu)
                sdk_wall.append(sdk.wall)
                sdk_cpu.append(sdk.cpu)
                ratios.append((posting.wall - idle.wall) / sdk.wall)
                loads.append(load_average())
            ratio = statistics.median(ratios)
            per_post = statistics.median(bot_wall) / args.posts * 1000
            own = (statistics.median(bot_wall) - statistics.median(sdk_wall)) / args.posts * 1000
            ok &= ratio <= GOAL_RATIO
            print(
                f"overhead {network}, {args.posts} posts, ledger on {ledger}:"
                f" bot {statistics.median(bot_wall):.2f} s ({statistics.median(bot_cpu):.2f} s CPU,"
                f" {per_post:.1f} ms a post), SDK {statistics.median(sdk_wall):.2f} s"
                f" ({statistics.median(sdk_cpu):.2f} s CPU) = {ratio:.2f} x"
                f" (rounds {', '.join(f'{r:.2f}' for r in ratios)}; the bot's own {own:.1f} ms a post)"
                f" (goal <= {GOAL_RATIO:g} x): {'ok' if ratio <= GOAL_RATIO else 'MISSED'}"
            )
        commit = synced_commit(Path(tmp))
    print(f"(load average during the run: {min(loads):.1f} to {max(loads):.1f})")
    print(f"floor: one synced SQLite commit on this disk takes {commit * 1000:.2f} ms (median of 50)")
    if args.postgres:
        floor = pg_commit(args.postgres) * 1000
        print(f"floor: one PostgreSQL write transaction takes {floor:.2f} ms (median of 50)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
