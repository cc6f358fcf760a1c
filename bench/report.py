"""`report`: what its charting library costs, and how long a report of a busy month takes.

Side by side in fresh interpreters: importing the daemon's modules, then the same plus the
report's charts (matplotlib): wall time and peak RSS. Then a ledger of a busy month (SQLite:
`--posts` deliveries on 6 accounts, `--mentions` sightings) and `python -m bot report` over it,
best of three: wall time, CPU time, page size.

    python bench/report.py [--posts 3000] [--mentions 100000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from timing import PYTHON, REPO, best_of, load_average

sys.path.insert(0, str(REPO))

from bot.ledger.deliveries import DELIVERY_LEASE, open_ledger
from bot.ledger.mentions import MentionRecord, MonitorStore
from bot.ledger.schema import DeliveryKey

DAEMON = "import bot.commands.run, bot.daemon.scheduler, bot.monitoring.monitor, bot.delivery.pool"
PROBE = """
import json, resource, sys, time
started = time.perf_counter()
{imports}
print(json.dumps([time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024]))
"""
ACCOUNTS = [(p, a) for p in ("x", "bluesky", "mastodon") for a in ("main", "account2")]
CONFIG = """\
campaign: Bench
timezone: Europe/Berlin
database: sqlite:///state/bot.sqlite3
platforms:
  x: {enabled: false}
  bluesky: {enabled: false}
  mastodon: {enabled: false}
"""


def import_cost(imports: str) -> tuple[float, float]:
    """Seconds to import and peak RSS in MB, the best of three fresh interpreters."""
    runs = []
    for _ in range(3):
        probe = [PYTHON, "-c", PROBE.format(imports=imports)]
        out = subprocess.run(probe, cwd=REPO, capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout))
    return min(r[0] for r in runs), min(r[1] for r in runs)


def fill(folder: Path, posts: int, sightings: int) -> None:
    """A month of activity, written through the ledger's own API."""
    (folder / "config.yaml").write_text(CONFIG)
    ledger = open_ledger(f"sqlite:///{folder / 'state' / 'bot.sqlite3'}")
    start = datetime.now(UTC) - timedelta(days=30)
    step = timedelta(days=30) / max(posts, 1)
    for n in range(posts):
        platform, account = ACCOUNTS[n % len(ACCOUNTS)]
        key = DeliveryKey("calls", f"p{n // len(ACCOUNTS)}", 1, 0, platform, account)
        at = start + n * step
        ledger.claim_delivery(key, "bench", at, DELIVERY_LEASE, lambda n=n: f"nonce{n}")
        if n % 50 == 0:
            ledger.fail_delivery(key, "rejected: bench", at)
        else:
            ledger.confirm_delivery(key, f"id{n}", f"https://{platform}.example/{n}", at)
    kinds = ["hashtag"] * 8 + ["reply", "mention"]
    batch = []
    for n in range(sightings):
        kind = kinds[n % 10]
        to = f"https://{ACCOUNTS[0][0]}.example/{n % posts}" if kind == "reply" else None
        seen = start + timedelta(days=30) * (n / sightings)
        author, platform = f"voice{n % 500}", ACCOUNTS[n % 6][0]
        batch.append(MentionRecord(platform, f"m{n}", kind, None, None, author, "text", (), to, None, seen))  # type: ignore[arg-type]
    MonitorStore(ledger.engine).record_mentions(batch)
    ledger.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=3000)
    parser.add_argument("--mentions", type=int, default=100_000)
    args = parser.parse_args()
    print(f"load average {load_average():.2f}")
    daemon_s, daemon_mb = import_cost(DAEMON)
    charts_s, charts_mb = import_cost(f"{DAEMON}\nimport bot.commands.report, bot.report.charts")
    print(f"{'imports':<32}{'seconds':>10}{'peak RSS MB':>14}")
    print(f"{'daemon modules':<32}{daemon_s:>10.2f}{daemon_mb:>14.1f}")
    print(f"{'daemon + report charts':<32}{charts_s:>10.2f}{charts_mb:>14.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        fill(folder, args.posts, args.mentions)
        out = folder / "report.html"
        command = [PYTHON, "-m", "bot", "--config", str(folder / "config.yaml"), "report", "--out", str(out)]
        timing = best_of(3, command)
        print(
            f"report of 30 days, {args.posts} deliveries, {args.mentions} sightings: "
            f"{timing.wall:.2f} s wall, {timing.cpu:.2f} s CPU, page {out.stat().st_size / 1024:.0f} KB"
        )


if __name__ == "__main__":
    main()
