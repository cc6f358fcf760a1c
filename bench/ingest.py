"""Ingest: 50,000 already-fetched mentions through dedup, store and log (goal >= 50,000 a second).

The monitor's own reporting path (`bot.monitoring.monitor.Monitor.report`): classify each post, let the
SQLite ledger say which are new (`MonitorStore.record_mentions`), write a log line and a JSON
line in the mentions log for each new one. Posts come in pages of `--page` (100, a Mastodon
or X page), and every page repeats `--repeat` posts of the page before, as overlapping polls
and two streams seeing one post do: those must be dropped, not logged twice. Posts are built
before the clock starts; the figure counts every post handed in, repeats included.

    python bench/ingest.py [--mentions 50000] [--page 100] [--repeat 10]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from timing import REPO, load_average

sys.path.insert(0, str(REPO))

from bot.campaign.config import load_config
from bot.daemon.logs import setup_logging
from bot.ledger.deliveries import open_ledger
from bot.monitoring.classification import Ours
from bot.monitoring.monitor import Fetched, Monitor
from bot.monitoring.streams import StreamState, plan_streams
from bot.platforms import Mention

GOAL_PER_SECOND = 50_000
OUR_IDENTITY = "campaign@example.social"
CONFIG = """\
campaign: Bench
hashtags: ["#NoTechForICE"]
database: sqlite:///state/bot.sqlite3
logging: {level: INFO, format: text, mentions_log: logs/mentions.jsonl}
platforms:
  mastodon:
    enabled: true
    accounts:
      - {name: main, api_base_url: https://example.social, access_token: "${BENCH_TOKEN}"}
"""


def make_pages(total: int, page: int, repeat: int, now: datetime) -> tuple[list[list[Mention]], int]:
    """Pages of mentions adding up to `total`, and how many distinct posts they hold."""
    pages: list[list[Mention]] = []
    previous: list[Mention] = []
    made = handed = 0
    while handed < total:
        size = min(page, total - handed)
        fresh_count = max(0, size - (repeat if previous else 0))
        batch = previous[-(size - fresh_count) :] if size > fresh_count else []
        for _ in range(fresh_count):
            n = made
            made += 1
            kind = n % 10
            batch.append(
                Mention(
                    id=str(110_000_000_000 + n),
                    url=f"https://example.social/@user{n % 997}/{110_000_000_000 + n}",
                    author=f"user{n % 997}@example.social",
                    author_id=f"user{n % 997}@example.social",
                    text=f"Post {n}: tech companies, drop your ICE contracts #NoTechForICE https://example.org/{n}",
                    created_at=now - timedelta(seconds=total - n),
                    hashtags=("NoTechForICE",),
                    # one in ten answers one of our posts, one in ten names us, the rest use the tag
                    in_reply_to="109000000000000001" if kind == 0 else None,
                    in_reply_to_author=OUR_IDENTITY if kind == 0 else None,
                    in_reply_to_url="https://example.social/@campaign/109000000000000001"
                    if kind == 0
                    else None,
                    mentioned=(OUR_IDENTITY,) if kind == 1 else (),
                )
            )
        pages.append(batch)
        previous = batch
        handed += len(batch)
    return pages, made


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mentions", type=int, default=50_000)
    parser.add_argument("--page", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    print(f"(load average {load_average():.1f} on {os.cpu_count()} cores)")
    now = datetime.now(UTC).replace(microsecond=0)
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        folder = Path(tmp)
        (folder / "config.yaml").write_text(CONFIG, encoding="utf-8")
        config, _ = load_config(folder / "config.yaml", {"BENCH_TOKEN": "t"})
        ledger = open_ledger(config.database_url)
        log_file = folder / "logs" / "bot.log"
        log_file.parent.mkdir()
        log_stream = log_file.open("w", encoding="utf-8")
        setup_logging(config.logging, log_stream)  # the daemon's own handler and text format
        monitor = Monitor(
            config=config,
            store=ledger.mentions,
            posts=ledger.ourposts,
            clients=lambda platform, account: None,  # type: ignore[arg-type,return-value]  # no allies: never used
            now=lambda: now,
            worker="bench",
        )
        ours = Ours.build({OUR_IDENTITY: "main"}, config.hashtags)
        stream = next(s for s in plan_streams(config) if s.kind == "hashtags")
        pages, distinct = make_pages(args.mentions, args.page, args.repeat, now)
        handed = sum(len(p) for p in pages)
        started = time.perf_counter()
        cpu_started = time.process_time()
        reported = 0
        for page in pages:
            reported += len(monitor.report("mastodon", [Fetched(stream, page, StreamState())], ours))
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        log_stream.close()
        logged = sum(1 for _ in log_file.open(encoding="utf-8"))
        written = [json.loads(line) for line in (folder / "logs" / "mentions.jsonl").open(encoding="utf-8")]
        stored = len(monitor.store.list_mentions())
        monitor.close()
        ledger.close()
    if not reported == logged == len(written) == stored == distinct:
        sys.exit(
            f"lost or doubled: {distinct} distinct, {reported} reported, {logged} logged, {stored} stored"
        )
    rate = handed / elapsed
    ok = rate >= GOAL_PER_SECOND
    print(
        f"ingest {handed} mentions ({distinct} distinct, pages of {args.page}): {elapsed:.2f} s"
        f" ({cpu:.2f} s CPU) = {rate:,.0f} per s"
        f" (goal >= {GOAL_PER_SECOND:,} per s): {'ok' if ok else 'MISSED'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
