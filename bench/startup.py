"""Start-up: how long the command line takes to import and do its least work.

- `python -m bot --help`
- `python -m bot check` on the shipped content (config.yaml, content/)
- `python -m bot run --once` with nothing due (goal <= 1.3 s): X, Bluesky and Mastodon
  configured against a sandbox in its own process (`python -m bot sandbox`), one queue that
  starts in 2099. The run opens the ledger, finds no slot due, does its one monitoring pass
  (mentions and hashtag searches on the three emulators) and exits. The first run starts from
  an empty ledger (it logs in to Bluesky and looks back `monitor.backfill`); the later ones
  reuse the saved session and cursors, as a daemon restarted by its host would.

  Beside it, the floor: importing the libraries it needs (SQLAlchemy, pydantic, tweepy,
  Mastodon.py, twitter-text, PyYAML, APScheduler; not atproto, imported at the first call to
  Bluesky) in a bare interpreter.

    python bench/startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from campaign import SandboxProcess, write_config
from timing import PYTHON, REPO, Timing, best_of, load_average, time_command

RUN_ONCE_GOAL = 1.3
# What `run --once` with X, Bluesky and Mastodon and nothing due cannot start without: importing
# these alone is the floor under its start-up. Bluesky's SDK waits for a call to Bluesky, which a
# run whose Bluesky streams are not due does not make; a daemon that polled them has it too.
LIBRARIES = "import sqlalchemy, pydantic, mastodon, tweepy, twitter_text.parse_tweet, yaml, apscheduler"
LIBRARIES_POLLING = LIBRARIES + ", atproto_client"

NOTHING_DUE_QUEUE = """\
schedule: {every: 1d}
start: 2099-01-01
posts:
  - id: later
    text: "Nothing is due until 2099. https://example.org/p #NoTechForICE"
"""


def run_available() -> bool:
    """Whether `run` is implemented on this branch (it was a stub before the engine landed)."""
    done = subprocess.run(
        [PYTHON, "-c", "import inspect, bot.cli; print(inspect.getsource(bot.cli.cmd_run))"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    return "raise NotImplementedError" not in done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"(load average {load_average():.1f} on {os.cpu_count()} cores; best of {args.runs})")

    def show(label: str, timing: Timing, goal: float | None = None) -> bool:
        line = f"{label}: {timing.wall:.2f} s ({timing.cpu:.2f} s CPU)"
        ok = goal is None or timing.wall <= goal
        if goal is not None:
            line += f" (goal <= {goal:g} s): {'ok' if ok else 'MISSED'}"
        print(line)
        return ok

    ok = show("start-up --help", best_of(args.runs, [PYTHON, "-m", "bot", "--help"]))
    ok &= show("start-up check (shipped content)", best_of(args.runs, [PYTHON, "-m", "bot", "check"]))
    if not run_available():
        print("start-up run --once: not measured (run is not implemented on this branch yet)")
        return 0 if ok else 1
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp, SandboxProcess(accounts=1) as sandbox:
        config, env = write_config(Path(tmp), sandbox.description, {"later": NOTHING_DUE_QUEUE})
        command = [PYTHON, "-m", "bot", "--config", str(config), "run", "--once"]
        show("start-up run --once, nothing due, empty ledger", time_command(command, env))
        warm = best_of(args.runs, command, env)
        ok &= show("start-up run --once, nothing due", warm, RUN_ONCE_GOAL)
        show("floor: importing the libraries run needs", best_of(args.runs, [PYTHON, "-c", LIBRARIES]))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
