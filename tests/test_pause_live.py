"""`pause` from one process stops a running daemon within 5 s, `resume` restarts it (docs/design.md).

Both are the real commands in their own processes, against emulators started by the test.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.sandboxsite import PLATFORMS, Site, wait_for

REPO = Path(__file__).resolve().parent.parent
# Not X: repeating a text there is "duplicate content", which is beside the point here.
QUEUE = """\
schedule: {every: 5s}
when_exhausted: repeat
platforms: [bluesky, mastodon]
posts:
  - {id: a, text: "Ask A"}
  - {id: b, text: "Ask B"}
"""


def bot(site: Site, *args: str) -> list[str]:
    return [sys.executable, "-m", "bot", "--config", str(site.config), *args]


def post_times(site: Site) -> list[datetime]:
    return [
        datetime.fromisoformat(p["created_at"].replace("Z", "+00:00"))
        for pf in PLATFORMS
        for p in site.state(pf)
    ]


def test_a_running_daemon_honours_pause_within_5_s_and_resume(site: Site) -> None:
    site.write_queue("often", QUEUE)
    daemon = subprocess.Popen(
        bot(site, "run", "--for", "2m"),
        cwd=REPO,
        env=site.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert wait_for(lambda: len(post_times(site)) >= 3, timeout=20)  # it posts every 5 s
        pause = subprocess.run(bot(site, "pause", "--reason", "vigil"), cwd=REPO, env=site.env, timeout=30)
        assert pause.returncode == 0
        paused_at = datetime.now(UTC)
        time.sleep(11)  # two more slots' worth
        late = [t for t in post_times(site) if t > paused_at + timedelta(seconds=5)]
        assert late == []  # nothing started more than 5 s after the pause
        count = len(post_times(site))
        assert subprocess.run(bot(site, "resume"), cwd=REPO, env=site.env, timeout=30).returncode == 0
        assert wait_for(lambda: len(post_times(site)) > count, timeout=15)
    finally:
        daemon.terminate()
        _, err = daemon.communicate(timeout=40)
    assert daemon.returncode == 0, err.decode()
