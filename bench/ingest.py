"""Ingest: 50,000 already-fetched mentions through dedup, store and log (goal >= 50,000 a second).

The monitor's own reporting path (`bot.monitoring.monitor.Monitor.report`): classify each post, let the
SQLite ledger say which are new (`MonitorStore.record_mentions`), write a log line and a JSON
line in the mentions log for each new one. Posts come in pages of `--page` (100, a Mastodon
or X page), and every page repeats `--repeat` posts of the page before, as overlapping polls
and two streams seeing one post do: those must be dropped, not logged twice. Posts are built
before the clock starts; the figure counts every post handed in, repeats included.

    python bench/ingest.py [--mentions 50000] [--page 100] [--repeat 10] [--rounds 1] [--postgres URL]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from timing import REPO, drop_database, fresh_database, load_average

sys.path.insert(0, str(REPO))

from bot.campaign.config import load_config
from bot.campaign.model import LoggingConfig
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
database: DATABASE
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


def ingest_round(
    pages: list[list[Mention]], distinct: int, database: str, now: datetime
) -> tuple[float, float]:
    """One round in a fresh folder (and database): the wall and CPU seconds of reporting every page."""
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        folder = Path(tmp)
        (folder / "config.yaml").write_text(CONFIG.replace("DATABASE", database), encoding="utf-8")
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
    return elapsed, cpu


def floors(pages: list[list[Mention]], database: str, now: datetime) -> dict[str, float]:
    """Seconds for the bare work under the bot's: each distinct post's row inserted by the
    driver's executemany, a page per synced transaction as the bot commits (and all in one);
    its JSON line written (one write a page); its log line through the daemon's handler."""
    unique: dict[str, Mention] = {}
    for page in pages:
        for post in page:
            unique.setdefault(post.id, post)
    stamp = now.replace(tzinfo=None) if database.startswith("sqlite") else now
    rows = [
        ("mastodon", p.id, "hashtag", None, p.url, p.author, p.text, '["NoTechForICE"]', None, stamp, stamp)
        for p in unique.values()
    ]
    chunks = [rows[i : i + 90] for i in range(0, len(rows), 90)]  # 90 new posts a page
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ingest-floor-") as tmp:
        url = database.replace("sqlite:///state/", f"sqlite:///{tmp}/")
        ledger = open_ledger(url)
        mark = "?" if url.startswith("sqlite") else "%s"
        sql = (
            "INSERT INTO mentions (platform, remote_id, kind, account, url, author, text, hashtags,"
            f" in_reply_to, created_at, seen_at) VALUES ({', '.join([mark] * 11)})"
        )
        raw = ledger.engine.raw_connection()
        for name, groups in (("insert, a commit a page", chunks), ("insert, one commit", [rows])):
            raw.cursor().execute("DELETE FROM mentions")
            raw.commit()
            started = time.perf_counter()
            for group in groups:
                cursor = raw.cursor()
                if url.startswith("sqlite"):
                    cursor.execute("BEGIN IMMEDIATE")
                cursor.executemany(sql, group)
                raw.commit()
            seconds[name] = time.perf_counter() - started
        raw.close()
        ledger.close()
        records = [
            {
                "ts": "2026-12-03T00:00:00Z",
                "kind": "hashtag",
                "platform": "mastodon",
                "account": None,
                "id": post_id,
                "url": post_url,
                "author": author,
                "text": text,
                "hashtags": ["NoTechForICE"],
                "in_reply_to": None,
                "created_at": "2026-12-03T00:00:00Z",
            }
            for _, post_id, _, _, post_url, author, text, *_ in rows
        ]
        started = time.perf_counter()
        with (Path(tmp) / "mentions.jsonl").open("a", encoding="utf-8") as out:
            for i in range(0, len(records), 90):
                out.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records[i : i + 90]))
                out.flush()
        seconds["JSON lines"] = time.perf_counter() - started
        with (Path(tmp) / "bot.log").open("w", encoding="utf-8") as out:
            setup_logging(LoggingConfig(), out)
            log = logging.getLogger("bot.bench")
            started = time.perf_counter()
            for row in rows:
                log.info("%s %s %s", "hashtag", "mastodon", row[4])
            seconds["log lines"] = time.perf_counter() - started
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mentions", type=int, default=50_000)
    parser.add_argument("--page", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="ledger on PostgreSQL: a server URL such as postgresql+psycopg://postgres@127.0.0.1:5432/test"
        " (each round creates and drops its own database)",
    )
    args = parser.parse_args()
    print(f"(load average {load_average():.1f} on {os.cpu_count()} cores)")
    now = datetime.now(UTC).replace(microsecond=0)
    pages, distinct = make_pages(args.mentions, args.page, args.repeat, now)
    handed = sum(len(p) for p in pages)
    ledger = "PostgreSQL" if args.postgres else "SQLite"
    rates = []
    for number in range(args.rounds):
        database = "sqlite:///state/bot.sqlite3"
        if args.postgres:
            database = fresh_database(args.postgres, f"bench_ingest_{os.getpid()}_{number}")
        try:
            elapsed, cpu = ingest_round(pages, distinct, database, now)
            if number == args.rounds - 1:
                floor = floors(pages, database, now)
        finally:
            if args.postgres:
                drop_database(args.postgres, database.rsplit("/", 1)[1])
        rates.append(handed / elapsed)
        print(f"  round {number + 1}: {elapsed:.2f} s ({cpu:.2f} s CPU) = {handed / elapsed:,.0f} per s")
    rate = statistics.median(rates)
    ok = rate >= GOAL_PER_SECOND
    print(
        "  floor for the same posts: "
        + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in floor.items())
        + f" (load average {load_average():.1f})"
    )
    print(
        f"ingest {handed} mentions ({distinct} distinct, pages of {args.page}), {ledger}:"
        f" {rate:,.0f} per s (goal >= {GOAL_PER_SECOND:,} per s): {'ok' if ok else 'MISSED'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
