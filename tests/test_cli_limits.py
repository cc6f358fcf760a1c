"""`preview` shows when each delivery really goes out under an account's limits, and `check`
warns where queues collide on them: the same `next_allowed` the daemon asks before each post."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from datetime import UTC, datetime, timedelta

from bot.ledger.deliveries import open_ledger
from tests.cli import bot_argv, bot_env, site_bot
from tests.sandboxsite import Site, wait_for


def bot(site: Site, *args: str) -> subprocess.CompletedProcess[str]:
    return site_bot(site, *args, timeout=60)


def at_queue(when: datetime, text: str) -> str:
    schedule = f'schedule: {{at: ["{when:%Y-%m-%dT%H:%M:%S}"]}}\n'
    return f'{schedule}platforms: [x]\nposts:\n  - {{id: p, text: "{text}"}}\n'


def test_check_warns_where_queues_collide_on_an_accounts_min_gap(site: Site) -> None:
    site.limits = "{min_gap: 20m}"
    site.write_config()
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
    site.write_queue("first", at_queue(soon, "One"))
    site.write_queue("second", at_queue(soon + timedelta(minutes=5), "Two"))
    result = bot(site, "check")
    assert result.returncode == 0, result.stderr
    [line] = [x for x in result.stderr.splitlines() if "x/main: its limits" in x]
    assert "config.yaml:" in line.split(": warning")[0]
    assert "(min_gap 20m) delay 1 of 2 posts" in line and "by up to 15m" in line and "queues second" in line
    preview = bot(site, "preview", "--days", "1", "--queue", "second")
    assert f"goes out {(soon + timedelta(minutes=20)):%a %H:%M:%S} (account limits)" in preview.stdout


def test_preview_says_when_the_daemon_really_posts_under_min_gap(site: Site) -> None:
    site.limits = "{min_gap: 8s}"
    site.write_config()
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=20)  # past preview and start-up
    site.write_queue("first", at_queue(start, "One"))
    site.write_queue("second", at_queue(start + timedelta(seconds=1), "Two"))
    records = json.loads(bot(site, "preview", "--days", "1", "--json").stdout)
    planned = {r["queue"]: datetime.fromisoformat(r["payloads"][0]["send_at"]) for r in records}
    assert planned["second"] - planned["first"] == timedelta(seconds=8)

    daemon = subprocess.Popen(
        bot_argv("run", config=site.config),
        cwd=site.root,
        env=bot_env({**os.environ, **site.env}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ledger = open_ledger(site.database)
    try:

        def posted(queue: str) -> datetime | None:
            rows = ledger.deliveries_for_post(queue, "p")
            return rows[0].posted_at if rows and rows[0].posted_at else None

        assert wait_for(lambda: posted("second") is not None, timeout=60)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
        for queue in ("first", "second"):
            real = posted(queue)
            assert real is not None
            # Within the daemon's tick: the preview is what happened, not the bare slot time.
            assert abs((real - planned[queue]).total_seconds()) < 2.5, (queue, real, planned[queue])
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        ledger.close()
