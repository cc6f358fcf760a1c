"""Impossible dates and out-of-range values: one `FILE:LINE: message`, exit 1, never a traceback.

And on a live edit, the running daemon logs the same line and keeps the last good version.
"""

from __future__ import annotations

import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from tests.cli import (
    OFFLINE_CONFIG,
    OFFLINE_ENV,
    assert_input_error,
    bot_argv,
    bot_env,
    offline_bot,
    offline_campaign,
)

GOOD = """\
schedule: {every: 4h}
posts:
  - {id: first, text: "Drop the contracts"}
"""


@pytest.fixture
def campaign(tmp_path: Path) -> Path:
    return offline_campaign(tmp_path, {})


@pytest.mark.parametrize(
    ("queue", "where", "message"),
    [
        ("schedule: {every: 4h}\nstart: 2026-13-45\n", "calls.yaml:2", "'2026-13-45' is not a valid date"),
        ("schedule: {every: 4h}\nexpires: 2026-02-30\n", "calls.yaml:2", "'2026-02-30' is not a valid date"),
        ('schedule: {at: ["2026-02-30T12:00"]}\n', "calls.yaml:1", "'2026-02-30T12:00' is not a valid date"),
        ("schedule: {every: 4h}\nstart: 9999-12-31\n", "calls.yaml:2", "the year should be 2000-2199"),
        ("schedule: {every: 4h}\nexpires: 9999-12-31\n", "calls.yaml:2", "the year should be 2000-2199"),
        ("schedule: {every: 99999999999d}\n", "calls.yaml:1", "is too long: at most 3650d"),
        ("schedule: {every: 4h, jitter: 100000000000d}\n", "calls.yaml:1", "is too long"),
    ],
)
@pytest.mark.parametrize("command", [["check"], ["preview"], ["status"]])
def test_an_impossible_value_is_one_line_at_its_place(
    campaign: Path, queue: str, where: str, message: str, command: list[str]
) -> None:
    (campaign / "content" / "calls.yaml").write_text(queue + 'posts:\n  - {id: a, text: "Ask"}\n')
    result = offline_bot(campaign, *command)
    assert_input_error(result, where)
    assert message in result.stderr


def test_a_pinned_post_on_an_impossible_day_is_named_at_its_line(campaign: Path) -> None:
    (campaign / "content" / "calls.yaml").write_text(
        'schedule: {every: 4h}\nposts:\n  - {id: a, text: "Ask"}\n'
        '  - {id: b, text: "Day", at: 2026-02-30T12:00}\n'
    )
    result = offline_bot(campaign, "check")
    assert_input_error(result, "calls.yaml:4: at: '2026-02-30T12:00' is not a valid date")


def test_huge_numbers_in_config_and_options_are_refused_not_crashed_on(campaign: Path) -> None:
    (campaign / "content" / "calls.yaml").write_text(GOOD)
    with (campaign / "config.yaml").open("a") as config:
        config.write("monitor: {retention_days: 100000000000}\n")
    assert_input_error(offline_bot(campaign, "check"), "config.yaml:9")
    (campaign / "config.yaml").write_text(OFFLINE_CONFIG)
    result = offline_bot(campaign, "preview", "--days", "99999999")
    assert result.returncode == 2 and "from 1 to 366" in result.stderr


def test_a_live_edit_with_an_impossible_date_keeps_the_last_good_version(campaign: Path) -> None:
    queue = campaign / "content" / "calls.yaml"
    queue.write_text(GOOD)
    log = campaign / "daemon.log"
    with log.open("w") as out:
        daemon = subprocess.Popen(
            bot_argv("run"), cwd=campaign, env=bot_env(OFFLINE_ENV), stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        while "daemon started" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        queue.write_text(
            textwrap.dedent(GOOD).replace("schedule: {every: 4h}", "schedule: {every: 4h}\nstart: 2026-13-45")
        )
        while "keeping the last good version" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    text = log.read_text()
    assert "content/calls.yaml:2: start: '2026-13-45' is not a valid date" in text
    assert "calls.yaml: keeping the last good version of queue calls" in text
    assert "Traceback" not in text and "tick failed" not in text
