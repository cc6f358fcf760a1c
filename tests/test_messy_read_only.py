"""An X app left read-only: the account's posts are held, not failed, and go out once it can post.

X answers every write of a token made while its app was read-only with a 403
`oauth1-permissions` problem, and says `x-access-level: read` on every answer. Nothing of the
queue may be spent on it: through the real command line against the emulators.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.ledger.deliveries import open_ledger
from tests.sandboxsite import Site

REPO = Path(__file__).resolve().parent.parent


def bot(site: Site, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **site.env, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "bot", "--config", str(site.config), *args],
        cwd=site.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )


def due_queue(*texts: str, platforms: str = "[x, bluesky, mastodon]") -> str:
    moment = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S")
    body = "".join(f'  - id: p{i + 1}\n    text: "{text}"\n' for i, text in enumerate(texts))
    return f'schedule: {{at: ["{moment}"]}}\nplatforms: {platforms}\nposts:\n{body}'


def x_rows(site: Site) -> list[tuple[str, int]]:
    ledger = open_ledger(site.database)
    try:
        return [
            (r.state, r.attempts) for r in ledger.deliveries_for_post("calls", "p1") if r.key.platform == "x"
        ]
    finally:
        ledger.close()


def test_a_read_only_x_app_holds_its_posts_and_sends_them_once_it_can_post(site: Site) -> None:
    site.settings("x", read_only=["main"])
    site.write_queue("calls", due_queue("Read only ask"))
    first = bot(site, "run", "--once")
    assert first.returncode == 3, first.stderr
    assert "Traceback" not in first.stderr
    [line] = [x for x in first.stderr.splitlines() if x.startswith("run --once:")]
    assert "held for x/main credentials refused" in line and "Read and write" in line
    assert "connect x" in line
    assert site.live_texts("x") == []
    assert site.live_texts("bluesky") == site.live_texts("mastodon") == ["Read only ask #NoTechForICE"]
    [(state, attempts)] = x_rows(site)
    assert state == "claimed" and attempts == 1  # held, not failed: nothing of the queue spent

    status = bot(site, "status")
    assert "held: p1 for x/main (credentials refused" in status.stdout, status.stdout
    assert "UNHEALTHY" in status.stdout
    [queue] = json.loads(bot(site, "status", "--json").stdout)["queues"]
    assert queue["failed"] == 0 and queue["pending"] == 1 and queue["held"]
    assert "HELD calls/p1 for x/main: credentials refused" in bot(site, "preview").stdout

    # Still read-only: the probe says so, and the post is not tried again.
    again = bot(site, "run", "--once")
    assert again.returncode == 3 and "still refused" in again.stderr, again.stderr
    assert x_rows(site) == [("claimed", 1)] and site.live_texts("x") == []

    # The token is regenerated with Read and write: the next run sends the held post, once.
    site.settings("x", read_only=[])
    sent = bot(site, "run", "--once")
    assert sent.returncode == 0, sent.stderr
    assert "healthy again" in sent.stderr
    assert site.live_texts("x") == ["Read only ask #NoTechForICE"]
    assert [state for state, _ in x_rows(site)] == ["posted"]
    assert bot(site, "run", "--once").returncode == 0
    assert site.live_texts("x") == ["Read only ask #NoTechForICE"]
    assert site.live_texts("mastodon") == ["Read only ask #NoTechForICE"]


def test_an_x_only_queue_on_a_read_only_app_keeps_its_post_next(site: Site) -> None:
    """Once the account is known unhealthy, an X-only queue's slot waits: its post stays next."""
    site.settings("x", read_only=["main"])
    site.write_queue("calls", due_queue("First ask", "Second ask", platforms="[x]"))
    assert bot(site, "run", "--once").returncode == 3
    held = bot(site, "run", "--once")  # the probe confirms it; the post stays held
    assert held.returncode == 3 and "deliveries held for x/main credentials refused" in held.stderr
    [queue] = json.loads(bot(site, "status", "--json").stdout)["queues"]
    assert queue["failed"] == 0 and queue["posted"] == 0
    site.settings("x", read_only=[])
    assert bot(site, "run", "--once").returncode == 0
    assert site.live_texts("x") == ["First ask #NoTechForICE"]
