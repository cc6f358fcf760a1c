"""Fan-out: one due post to 3 platforms x 20 accounts, with 200 ms of latency on every post.

The daemon's own path (bot.daemon.scheduler.Daemon: a tick fires the due slot, one delivery job per
target goes to the delivery pool, each claimed and confirmed in a SQLite ledger) against a
sandbox with 20 accounts per platform whose emulators hold every post call for `--latency`
ms (POST /_sandbox/faults). Three rounds, each with its own queue and ledger:

- one call: the same post to one account (the latency one delivery costs, end to end);
- fan-out: to all 60 targets with the daemon's pool (`--pool`, the daemon's default);
- one at a time: to all 60 targets with a pool of one thread;
- the floor: the same 60 posts made straight with the client libraries (as bench/overhead.py
  makes them), one thread per target: what the SDKs alone cost on this machine.

The sandbox runs in its own process (`python -m bot sandbox`) so that, as with the real
platforms, its work is not charged to the bot's interpreter; `--in-process` uses
`start_sandbox(accounts=20)` instead. Clients are opened (Bluesky sessions created) before
the clock starts, as in a daemon that has posted before. Goal: fan-out <= 1.5 x one call.

    python bench/fanout.py [--accounts 20] [--latency 200] [--pool N] [--in-process]
                           [--postgres postgresql+psycopg://postgres@127.0.0.1/postgres]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from campaign import SandboxProcess, write_config
from overhead import post_text, sdk_poster
from timing import REPO, drop_database, fresh_database, load_average

sys.path.insert(0, str(REPO))

from bot.daemon.runtime import Runtime
from bot.daemon.scheduler import Daemon
from bot.delivery.pool import DELIVERY_THREADS
from bot.sandbox import Sandbox, start_sandbox

GOAL_RATIO = 1.5
POST_PATHS = {
    "x": "/2/tweets",
    "bluesky": "/xrpc/com.atproto.repo.createRecord",
    "mastodon": "/api/v1/statuses",
}


def inject_latency(description: dict[str, Any], platform: str, latency_ms: int, times: int) -> None:
    fault = {"method": "POST", "path": POST_PATHS[platform], "latency_ms": latency_ms, "times": times}
    request = urllib.request.Request(
        description[platform]["base_url"] + "/_sandbox/faults",
        data=json.dumps(fault).encode(),
        headers={
            "Content-Type": "application/json",
            "X-Sandbox-Token": description[platform].get("control_token", ""),
        },
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


def queue_yaml(name: str, platforms: list[str], accounts: list[str]) -> str:
    start = (datetime.now(UTC) - timedelta(seconds=2)).isoformat(timespec="seconds")
    return (
        f"schedule: {{every: 1d}}\nstart: {start}\n"
        f"platforms: [{', '.join(platforms)}]\naccounts: [{', '.join(accounts)}]\n"
        f"posts:\n  - id: {name}\n"
        f'    text: "Round {name}: tell tech companies to drop their ICE contracts. https://example.org/p"\n'
    )


def deliver_round(
    description: dict[str, Any],
    folder: Path,
    name: str,
    platforms: list[str],
    accounts: list[str],
    pool: int,
    latency_ms: int,
    postgres: str | None = None,
) -> tuple[float, float]:
    """Fire one due slot to every (platform, account) and wait for its deliveries: (wall, CPU) seconds."""
    database = "sqlite:///state/bot.sqlite3"
    if postgres is not None:
        database = fresh_database(postgres, f"bench_fanout_{name}_{os.getpid()}")
    queue = {name: queue_yaml(name, platforms, accounts)}
    config, env = write_config(folder, description, queue, database=database)
    runtime = Runtime(config, {**os.environ, **env}, config_warnings=False)
    try:
        for platform in platforms:  # open the clients (Bluesky logs in) before the clock starts
            for account in accounts:
                client = runtime.clients(platform, account)
                if platform == "bluesky":
                    # The session (created, sealed and saved) as a daemon that has posted before
                    # has it: clients log in lazily, at their first call.
                    client.verify()
            inject_latency(description, platform, latency_ms, times=len(accounts))
        daemon = Daemon(runtime, max_workers=pool)
        started, cpu_started = time.perf_counter(), time.process_time()
        fired = daemon.tick()
        daemon.wait_idle()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        daemon.deliveries.pool.shutdown(wait=True)
        failed = [r.line() for r in daemon.results if not r.ok]
        if len(fired) != 1 or failed or len(daemon.results) != len(platforms) * len(accounts):
            sys.exit(f"round {name}: fired {fired}, {len(daemon.results)} results, failures: {failed[:3]}")
        return elapsed, cpu
    finally:
        runtime.close()
        if postgres is not None:
            drop_database(postgres, database.rsplit("/", 1)[1])


def sdk_round(
    description: dict[str, Any], platforms: list[str], count: int, latency_ms: int
) -> tuple[float, float]:
    """The floor: the same posts made straight with the client libraries, one thread per
    target, clients opened (Bluesky logged in) before the clock: (wall, CPU) seconds."""
    from concurrent.futures import ThreadPoolExecutor

    posters = []
    for platform in platforms:
        for account in description[platform]["accounts"][:count]:
            posters.append(sdk_poster(platform, account, description[platform]["base_url"]))
        inject_latency(description, platform, latency_ms, times=count)
    started, cpu_started = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(max_workers=len(posters)) as pool:
        list(pool.map(lambda n: posters[n](post_text(f"sdk{os.getpid()}", n)), range(len(posters))))
    return time.perf_counter() - started, time.process_time() - cpu_started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=20, help="accounts per platform")
    parser.add_argument("--latency", type=int, default=200, help="ms added to every post call")
    parser.add_argument(
        "--pool", type=int, default=DELIVERY_THREADS, help=f"delivery threads (daemon: {DELIVERY_THREADS})"
    )
    parser.add_argument("--in-process", action="store_true", help="emulators in this process")
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="ledger on PostgreSQL: a server URL such as postgresql+psycopg://postgres@127.0.0.1/postgres"
        " (each round creates and drops its own database)",
    )
    args = parser.parse_args()
    print(f"(load average {load_average():.1f} on {os.cpu_count()} cores)")
    sandbox: Sandbox | SandboxProcess
    if args.in_process:
        sandbox = start_sandbox(accounts=args.accounts)
        description = sandbox.describe()
    else:
        sandbox = SandboxProcess(accounts=args.accounts)
        description = sandbox.description
    names = [a["name"] for a in description["mastodon"]["accounts"]]
    platforms = list(POST_PATHS)
    targets = len(platforms) * len(names)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp:
            root = Path(tmp)
            sdk = sdk_round(description, platforms, len(names), args.latency)  # the SDKs' floor first
            one = deliver_round(
                description, root / "one", "one", ["mastodon"], names[:1], 16, args.latency, args.postgres
            )
            fan = deliver_round(
                description, root / "fan", "fan", platforms, names, args.pool, args.latency, args.postgres
            )
            serial = deliver_round(
                description, root / "serial", "serial", platforms, names, 1, args.latency, args.postgres
            )
    finally:
        sandbox.stop()
    where = "in-process" if args.in_process else "in its own process"
    where += ", ledger on PostgreSQL" if args.postgres else ", ledger on SQLite"
    ok = fan[0] <= GOAL_RATIO * one[0]
    print(f"fanout one call ({args.latency} ms latency, sandbox {where}): {one[0]:.2f} s")
    print(
        f"fanout 1 post to {len(platforms)} platforms x {len(names)} accounts, pool {args.pool}:"
        f" {fan[0]:.2f} s ({fan[1]:.2f} s CPU, {fan[1] / targets * 1000:.0f} ms a delivery)"
        f" = {fan[0] / one[0]:.1f} x one call (goal <= {GOAL_RATIO:g} x): {'ok' if ok else 'MISSED'}"
    )
    print(
        f"fanout the same one at a time: {serial[0]:.2f} s ({serial[0] / targets * 1000:.0f} ms a delivery)"
    )
    print(
        f"floor: the same {targets} posts straight from the client libraries, one thread each:"
        f" {sdk[0]:.2f} s ({sdk[1]:.2f} s CPU, {sdk[1] / targets * 1000:.1f} ms a post)"
        f" = {sdk[0] / one[0]:.1f} x one call"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
