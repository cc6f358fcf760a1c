"""Slot accuracy: how late the daemon fires 100 slots, jitter off (goal: p99 <= 1 s).

`python -m bot run` against a sandbox in its own process, with `--queues` queues (default 4)
of `every: 2s` starting together a few seconds after the daemon, so 100 slots take about
50 s. Lateness of a slot = the time the ledger recorded it fired (`slots.recorded_at`) minus
the time it names (slot names are the slot's time before jitter, and there is no jitter). A
slot recorded `missed` counts as a failure. The daemon posts every slot to X, Bluesky and
Mastodon as it would in production, so firing competes with delivering.

    python bench/slot_accuracy.py [--slots 100] [--queues 4] [--every 2]
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from campaign import SandboxProcess, write_config
from timing import PYTHON, REPO, load_average

sys.path.insert(0, str(REPO))

from sqlalchemy import select

from bot.ledger.database import connect, reading
from bot.ledger.schema import slots

GOAL_P99_SECONDS = 1.0
WARMUP = timedelta(seconds=8)  # start-up of `run` (imports, ledger, sessions) before the first slot


def queue_yaml(name: str, start: datetime, every: int, posts: int) -> str:
    lines = [
        f"schedule: {{every: {every}s}}",
        f"start: {start.isoformat()}",
        "when_exhausted: stop",
        "posts:",
    ]
    for n in range(posts):
        lines.append(f"  - id: {name}-{n}")
        lines.append(f'    text: "Slot test [{name}-{n}]: drop the ICE contracts. https://example.org/{n}"')
    return "\n".join(lines) + "\n"


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slots", type=int, default=100)
    parser.add_argument("--queues", type=int, default=4)
    parser.add_argument("--every", type=int, default=2, help="seconds between a queue's slots")
    args = parser.parse_args()
    per_queue = math.ceil(args.slots / args.queues)
    span = timedelta(seconds=per_queue * args.every)
    print(f"(load average {load_average():.1f} on {os.cpu_count()} cores)")
    with tempfile.TemporaryDirectory(prefix="bench-slots-") as tmp, SandboxProcess(accounts=1) as sandbox:
        start = (datetime.now(UTC) + WARMUP).replace(microsecond=0)
        queues = {f"q{i}": queue_yaml(f"q{i}", start, args.every, per_queue + 5) for i in range(args.queues)}
        config, env = write_config(Path(tmp), sandbox.description, queues)
        run_for = (WARMUP + span + timedelta(seconds=3)).total_seconds()
        done = subprocess.run(
            [PYTHON, "-m", "bot", "--config", str(config), "run", "--for", f"{math.ceil(run_for)}s"],
            cwd=REPO,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=run_for + 60,
        )
        if done.returncode != 0:
            sys.exit(f"run failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
        engine = connect(f"sqlite:///{Path(tmp) / 'state' / 'bot.sqlite3'}")
        with reading(engine) as conn:
            columns = (slots.c.slot_name, slots.c.state, slots.c.recorded_at, slots.c.post_id)
            rows = conn.execute(select(*columns)).all()
        engine.dispose()
        # When each post reached the Mastodon emulator (its created_at has milliseconds).
        arrived = {
            post["text"].split("[", 1)[1].split("]", 1)[0]: datetime.fromisoformat(post["created_at"])
            for post in sandbox.state("mastodon")["posts"]
            if post["text"].startswith("Slot test [")
        }
    decided = sorted(
        (datetime.fromisoformat(row.slot_name), row.state, row.recorded_at, row.post_id)
        for row in rows
        if not row.slot_name.startswith("pinned:")
    )[: args.slots]
    missed = [named for named, state, _, _ in decided if state != "fired"]
    fired = [(named, recorded, post) for named, state, recorded, post in decided if state == "fired"]
    lateness = [(recorded - named).total_seconds() for named, recorded, _ in fired]
    posted = [(arrived[post] - named).total_seconds() for named, _, post in fired if post in arrived]
    if len(decided) < args.slots or not lateness:
        sys.exit(f"only {len(decided)} slots decided of {args.slots}:\n{done.stderr[-3000:]}")
    p50, p99 = percentile(lateness, 0.5), percentile(lateness, 0.99)
    ok = not missed and p99 <= GOAL_P99_SECONDS
    print(
        f"slot lateness over {len(decided)} slots ({args.queues} queues every {args.every}s, jitter off):"
        f" p50 {p50:.3f} s, p99 {p99:.3f} s, max {max(lateness):.3f} s, {len(missed)} missed"
        f" (goal p99 <= {GOAL_P99_SECONDS:g} s): {'ok' if ok else 'MISSED'}"
    )
    if posted:
        print(
            f"slot to post on Mastodon over {len(posted)} slots: p50 {percentile(posted, 0.5):.3f} s,"
            f" p99 {percentile(posted, 0.99):.3f} s, max {max(posted):.3f} s"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
