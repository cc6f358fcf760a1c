"""Exit codes (docs/design.md) as an outside checker sees them: `python -m bot ...` from a campaign folder.

0 success, 1 invalid input (config or content) as `FILE:LINE: message` and never a traceback,
2 usage error (including a queue or post id the command line names and the content lacks).
None of these cases reaches a network: the config points Mastodon at a closed loopback port.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.cli import main
from bot.ledger.deliveries import open_ledger
from tests.cli import (
    OFFLINE_CONFIG,
    OFFLINE_ENV,
    REPO,
    assert_input_error,
    bot_argv,
    bot_env,
    offline_bot,
    offline_campaign,
)
from tests.test_monitor import _stored


@pytest.fixture
def campaign(tmp_path: Path) -> Path:
    return offline_campaign(tmp_path)


@pytest.mark.parametrize(
    "command", [["check"], ["status"], ["run", "--once"], ["post", "calls"], ["mentions"]]
)
def test_a_missing_config_file_is_invalid_input(tmp_path: Path, command: list[str]) -> None:
    assert_input_error(offline_bot(tmp_path, *command), "config.yaml:1: file not found")


@pytest.mark.parametrize("command", [["check"], ["run", "--once"], ["pause"]])
def test_a_config_that_is_a_list_is_invalid_input(campaign: Path, command: list[str]) -> None:
    (campaign / "config.yaml").write_text("- campaign\n- content\n")
    assert_input_error(offline_bot(campaign, *command), "config.yaml:1: ")


@pytest.mark.parametrize("command", [["check"], ["run", "--once"], ["status"], ["post", "calls"]])
def test_a_missing_content_folder_is_invalid_input_at_its_config_line(
    campaign: Path, command: list[str]
) -> None:
    (campaign / "config.yaml").write_text(OFFLINE_CONFIG.replace("content: content/", "content: missing/"))
    assert_input_error(
        offline_bot(campaign, *command), "config.yaml:2: content folder missing does not exist"
    )


def test_a_content_path_that_is_a_file_is_invalid_input(campaign: Path) -> None:
    (campaign / "config.yaml").write_text(
        OFFLINE_CONFIG.replace("content: content/", "content: content/calls.yaml")
    )
    assert_input_error(offline_bot(campaign, "run", "--once"), "config.yaml:2: content folder")


def test_pause_works_whatever_the_content(campaign: Path) -> None:
    (campaign / "config.yaml").write_text(OFFLINE_CONFIG.replace("content: content/", "content: missing/"))
    paused = offline_bot(campaign, "pause", "--reason", "the content folder is being fixed")
    assert paused.returncode == 0 and paused.stderr == ""


@pytest.mark.parametrize(
    "command",
    [
        ["run", "--for", "10x"],
        ["run", "--for=-5s"],
        ["run", "--for", "1.5m"],
        ["run", "--for", "0s"],
        ["preview", "--days", "-1"],
        ["preview", "--days", "0"],
        ["preview", "--queue", "nope"],
        ["post", "nope"],
        ["post", "nope", "--dry-run"],
        ["post", "calls", "nope"],
        ["post", "calls", "nope", "--dry-run"],
        ["retract", "calls", "nope"],
        ["retract", "nope", "first"],
        ["mentions", "--since", "3q"],
        ["mentions", "--json", "--csv"],
        ["sandbox", "--accounts", "0"],
        ["sandbox", "--accounts", "-1"],
        ["sandbox", "--port", "99999"],
        ["sandbox", "--limits", "enterprise"],
    ],
)
def test_usage_errors_exit_2(
    campaign: Path, command: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # In-process for speed (each case as `python -m bot` runs it, minus the interpreter start).
    monkeypatch.chdir(campaign)
    monkeypatch.setenv("MASTODON_ACCESS_TOKEN", "token-for-tests")
    try:
        code = main(command)
    except SystemExit as exit:  # argparse's own usage errors
        code = exit.code  # type: ignore[assignment]
    printed = capsys.readouterr()
    assert code == 2, printed.out + printed.err
    assert printed.err  # says what was wrong


def test_unknown_names_are_named_back(campaign: Path) -> None:
    assert "no queue named 'nope' (queues: calls)" in offline_bot(campaign, "post", "nope").stderr
    assert "no post with id 'nope' in queue calls" in offline_bot(campaign, "retract", "calls", "nope").stderr


def test_retracting_a_known_post_never_sent_is_no_error(campaign: Path) -> None:
    result = offline_bot(campaign, "retract", "calls", "first")
    assert result.returncode == 0
    assert "calls/first: nothing to retract (never posted)" in result.stdout


def test_a_queue_with_an_error_is_invalid_input_for_check(campaign: Path) -> None:
    (campaign / "content" / "calls.yaml").write_text(
        textwrap.dedent(
            """\
            schedule: {every: 4h}
            posts:
              - {id: first, text: "Drop the contracts", images: [{path: nowhere.png, alt: "x"}]}
            """
        )
    )
    assert_input_error(offline_bot(campaign, "check"), "calls.yaml:3: ")


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_sandbox_prints_one_json_line_and_stops_cleanly(tmp_path: Path, stop: signal.Signals) -> None:
    process = subprocess.Popen(
        bot_argv("sandbox", "--accounts", "3"),
        cwd=tmp_path,
        env=bot_env({"PATH": OFFLINE_ENV["PATH"]}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        described = json.loads(process.stdout.readline())
        assert set(described) == {"x", "bluesky", "mastodon", "facebook", "instagram"}
        keys = {
            "x": {"name", "consumer_key", "consumer_secret", "access_token", "access_token_secret"},
            "bluesky": {"name", "handle", "app_password"},
            "mastodon": {"name", "access_token"},
            "facebook": {"name", "page_id", "access_token", "app_secret"},
            "instagram": {"name", "ig_user_id", "access_token", "username"},
        }
        for platform, shown in described.items():
            assert set(shown) == {"base_url", "accounts", "control_token"}
            assert shown["base_url"].startswith("http://127.0.0.1:")
            assert [set(a) for a in shown["accounts"]] == [keys[platform]] * 3
            assert [a["name"] for a in shown["accounts"]] == ["main", "account2", "account3"]
        process.send_signal(stop)
        assert process.wait(timeout=10) == 0
    finally:
        process.kill()
        process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.parametrize("command", [["status"], ["pause"], ["run", "--once"]])
def test_an_unreachable_database_is_a_runtime_failure_without_its_password(
    campaign: Path, command: list[str]
) -> None:
    database = "postgresql://campaign:hunter2-secret@127.0.0.1:1/bot"  # nothing listens on port 1
    (campaign / "config.yaml").write_text(OFFLINE_CONFIG.replace("sqlite:///state/bot.sqlite3", database))
    result = offline_bot(campaign, *command)
    assert result.returncode == 3
    assert "Traceback" not in result.stderr and "hunter2-secret" not in result.stderr + result.stdout
    assert result.stderr.startswith("database: ") and "127.0.0.1" in result.stderr


def test_mentions_follow_ends_cleanly_on_sigterm(campaign: Path) -> None:
    ledger = open_ledger(f"sqlite:///{campaign / 'state' / 'bot.sqlite3'}")
    ledger.mentions.record_mentions([_stored(1, "reply", datetime.now(UTC))])
    ledger.close()
    process = subprocess.Popen(
        bot_argv("mentions", "--follow"),
        cwd=campaign,
        env=bot_env({"PATH": OFFLINE_ENV["PATH"]}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        process.stdout.readline()  # the listing is out: its handlers are in, it follows
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        process.kill()
        _, err = process.communicate()
    assert "Traceback" not in err


def test_a_python_without_the_dependencies_is_told_which_python_to_use(tmp_path: Path) -> None:
    # -S: no site-packages, as a system Python without the project installed.
    bare = subprocess.run(
        [sys.executable, "-S", "-m", "bot", "check"],
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bare.returncode == 3 and "Traceback" not in bare.stderr, bare.stderr
    assert "lacks the project's dependencies; run the bot with the virtualenv's" in bare.stderr
