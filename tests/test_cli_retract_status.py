"""`retract` said twice or tried first, and `status` counting posts in the campaign's own time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.sandboxsite import PLATFORMS, Site

REPO = Path(__file__).resolve().parent.parent

QUEUE = """\
schedule: {every: 1h}
posts:
  - id: thread
    thread: ["Part one of the story.", "Part two of the story."]
"""


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


def test_retract_dry_run_then_retract_then_already_retracted(site: Site) -> None:
    site.write_queue("calls", QUEUE)
    assert bot(site, "post", "calls").returncode == 0
    dry = bot(site, "retract", "calls", "thread", "--dry-run")
    assert dry.returncode == 0 and dry.stdout.count("would retract ") == 6
    assert all(len(site.live_texts(p)) == 2 for p in PLATFORMS)  # nothing touched
    assert bot(site, "retract", "calls", "thread").stdout.count(" retracted: ") == 6
    again = bot(site, "retract", "calls", "thread")
    assert again.returncode == 0 and again.stdout.strip() == "calls/thread: already retracted"


def test_status_counts_posts_in_the_campaigns_timezone(site: Site) -> None:
    site.config.write_text(site.config.read_text().replace("timezone: UTC", "timezone: America/New_York"))
    site.write_queue("calls", QUEUE)
    assert bot(site, "post", "calls").returncode == 0
    status = json.loads(bot(site, "status", "--json").stdout)
    [calls] = status["queues"]
    assert calls["posted"] == 1  # one thread, whatever its three platforms and two parts
    assert calls["next_slot"].endswith(("-05:00", "-04:00"))
    assert all(a["last_post"].endswith(("-05:00", "-04:00")) for a in status["accounts"])
