"""Two files claiming one queue name: the newcomer is told, and a running daemon refuses it."""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.cli import OFFLINE_ENV, assert_input_error, bot_argv, bot_env, offline_bot, offline_campaign

EXPLAINER = 'schedule: {every: 4h}\nposts:\n  - {id: why, text: "Why this campaign"}\n'


def impostor() -> str:
    due = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S")
    body = 'posts:\n  - {id: new, text: "Not this"}\n'
    return f'# a new file\nqueue: explainer\nschedule: {{at: ["{due}"]}}\n{body}'


@pytest.fixture
def campaign(tmp_path: Path) -> Path:
    return offline_campaign(tmp_path, {"explainer": EXPLAINER})


@pytest.mark.parametrize("newcomer", ["a-new.yaml", "zz-new.yaml"])
def test_the_file_not_named_after_the_queue_gets_the_error_at_its_queue_line(
    campaign: Path, newcomer: str
) -> None:
    (campaign / "content" / newcomer).write_text(impostor())
    result = offline_bot(campaign, "check")
    assert_input_error(
        result, f"content/{newcomer}:2: queue name 'explainer' is already used by content/explainer.yaml"
    )
    assert not any(line.startswith("content/explainer.yaml") for line in result.stderr.splitlines())
    assert "explainer (content/explainer.yaml)" in result.stdout


def test_a_running_daemon_refuses_a_second_file_with_a_live_queue_name(campaign: Path) -> None:
    log = campaign / "daemon.log"
    with log.open("w") as out:
        daemon = subprocess.Popen(
            bot_argv("run"), cwd=campaign, env=bot_env(OFFLINE_ENV), stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        while "daemon started" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        (campaign / "content" / "a-new.yaml").write_text(impostor())
        while "already used by" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(3)  # a tick or two: the impostor's due slot must not fire
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    text = log.read_text()
    assert "content/a-new.yaml:2: queue name 'explainer' is already used by content/explainer.yaml" in text
    # Only the live queue's own post may fire (its every-4h slot can fall in the test's seconds).
    fired = [line for line in text.splitlines() if "slot fired" in line]
    assert all("post why " in line for line in fired) and "Traceback" not in text
