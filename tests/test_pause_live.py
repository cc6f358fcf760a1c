"""`pause` from one process stops a running daemon within 5 s, `resume` restarts it (docs/design.md).

Both are the real commands in their own processes, against emulators started by the test.
"""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime, timedelta

from tests.cli import bot_argv, bot_env, run_bot
from tests.sandboxsite import PLATFORMS, Site, wait_for

# Not X: repeating a text there is "duplicate content", which is beside the point here.
QUEUE = """\
schedule: {every: 5s}
when_exhausted: repeat
platforms: [bluesky, mastodon]
posts:
  - {id: a, text: "Ask A"}
  - {id: b, text: "Ask B"}
"""


def post_times(site: Site) -> list[datetime]:
    return [
        datetime.fromisoformat(p["created_at"].replace("Z", "+00:00"))
        for pf in PLATFORMS
        for p in site.state(pf)
    ]


def test_a_running_daemon_honours_pause_within_5_s_and_resume(site: Site) -> None:
    site.write_queue("often", QUEUE)
    daemon = subprocess.Popen(
        bot_argv("run", "--for", "2m", config=site.config),
        cwd=site.root,
        env=bot_env(site.env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert wait_for(lambda: len(post_times(site)) >= 3, timeout=20)  # it posts every 5 s
        pause = run_bot("pause", "--reason", "vigil", cwd=site.root, env=site.env, config=site.config)
        assert pause.returncode == 0
        paused_at = datetime.now(UTC)
        time.sleep(11)  # two more slots' worth
        late = [t for t in post_times(site) if t > paused_at + timedelta(seconds=5)]
        assert late == []  # nothing started more than 5 s after the pause
        count = len(post_times(site))
        assert run_bot("resume", cwd=site.root, env=site.env, config=site.config).returncode == 0
        assert wait_for(lambda: len(post_times(site)) > count, timeout=15)
    finally:
        daemon.terminate()
        _, err = daemon.communicate(timeout=40)
    assert daemon.returncode == 0, err.decode()
