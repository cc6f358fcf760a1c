"""A queue `check` refuses (a text too long included) is refused alike by run, preview and post."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.cli import OFFLINE_ENV, bot_argv, bot_env, offline_bot, offline_campaign, site_bot
from tests.sandboxsite import PLATFORMS, Site
from tests.test_daemon import at_queue

LONG = "Drop the contracts " * 22  # 418 characters: too long on X and Bluesky, not on Mastodon
DUPLICATE_AND_LONG = f"""\
schedule: {{every: 4h}}
posts:
  - {{id: a, text: "Ask"}}
  - {{id: a, text: "Ask again"}}
  - {{id: b, text: "{"x" * 600}"}}
"""


@pytest.fixture
def campaign(tmp_path: Path) -> Path:
    return offline_campaign(tmp_path)


def test_check_shows_a_duplicate_id_and_a_too_long_post_at_once(campaign: Path) -> None:
    (campaign / "content" / "calls.yaml").write_text(DUPLICATE_AND_LONG)
    result = offline_bot(campaign, "check")
    assert result.returncode == 1
    assert "content/calls.yaml:4: id 'a' is used twice" in result.stderr
    assert "content/calls.yaml:5: post 'b' is too long on mastodon: 614 characters" in result.stderr


def test_preview_and_post_refuse_a_queue_with_a_too_long_post(campaign: Path) -> None:
    too_long = f'schedule: {{every: 4h}}\nposts:\n  - {{id: a, text: "{"x" * 600}"}}\n'
    (campaign / "content" / "calls.yaml").write_text(too_long)
    where = "content/calls.yaml:3: post 'a' is too long on mastodon"
    preview = offline_bot(campaign, "preview")
    assert preview.returncode == 1 and where in preview.stderr
    assert "TOO LONG" not in preview.stdout
    for command in (["post", "calls", "--dry-run"], ["post", "calls"]):
        post = offline_bot(campaign, *command)
        assert post.returncode == 1, post.stderr
        assert where in post.stderr and "would send" not in post.stdout
        assert "refused: queue calls has 1 error, the first at content/calls.yaml:3" in post.stderr


def test_run_leaves_a_queue_with_a_too_long_post_out_and_sends_the_others(site: Site) -> None:
    site.write_queue("calls", at_queue("Fine ask"))
    site.write_queue("long", at_queue("Short one", LONG))
    result = site_bot(site, "run", "--once", timeout=60)
    assert result.returncode == 0, result.stderr
    assert "long.yaml:6: post 'p2' is too long on x" in result.stderr
    assert "long.yaml:6: post 'p2' is too long on bluesky" in result.stderr
    assert all(site.live_texts(p) == ["Fine ask #NoTechForICE"] for p in PLATFORMS), result.stderr


def test_a_live_edit_making_a_post_too_long_keeps_the_last_good_version(campaign: Path) -> None:
    queue = campaign / "content" / "calls.yaml"
    log = campaign / "daemon.log"
    with log.open("w") as out:
        daemon = subprocess.Popen(
            bot_argv("run"), cwd=campaign, env=bot_env(OFFLINE_ENV), stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        while "daemon started" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        queue.write_text(f'schedule: {{every: 4h}}\nposts:\n  - {{id: first, text: "{"x" * 600}"}}\n')
        while "keeping the last good version" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2)  # a few more ticks: the file is not read (nor logged) again
        daemon.terminate()
        assert daemon.wait(timeout=30) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    text = log.read_text()
    assert text.count("content/calls.yaml:3: post 'first' is too long on mastodon") == 1, text
    assert text.count("calls.yaml: keeping the last good version of queue calls") == 1, text
    assert "reloaded calls.yaml" not in text and "Traceback" not in text
