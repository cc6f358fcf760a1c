"""Small things campaign staff meet at the keyboard, each as they would expect it."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from bot.cli import build_parser
from tests.cli import OFFLINE_CONFIG, OFFLINE_ENV, REPO, offline_bot, offline_campaign, run_bot, without

POST = 'posts:\n  - {id: a, text: "Ask"}\n'


@pytest.fixture
def campaign(tmp_path: Path) -> Path:
    return offline_campaign(tmp_path, {"calls": "schedule: {every: 4h}\n" + POST})


def test_version_is_printed() -> None:
    result = run_bot("--version", cwd=REPO, env=OFFLINE_ENV)
    assert result.returncode == 0 and result.stdout.startswith("campaign-bot 0.")


def test_every_option_of_every_command_has_help() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in commands.choices.items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"{name} {action.dest} has no help"
            if action.default not in (None, False):
                assert "default" in action.help, f"{name} {action.dest} does not say its default"


def test_pause_again_keeps_its_reason_and_resume_when_not_paused_says_so(campaign: Path) -> None:
    assert offline_bot(campaign, "pause", "--reason", "vigil tonight").returncode == 0
    again = offline_bot(campaign, "pause")
    assert (
        again.returncode == 0 and "already paused since" in again.stdout and "vigil tonight" in again.stdout
    )
    assert "vigil tonight" in offline_bot(campaign, "status").stdout
    assert offline_bot(campaign, "resume").stdout.strip() == "resumed"
    not_paused = offline_bot(campaign, "resume")
    assert not_paused.returncode == 0 and "not paused" in not_paused.stdout


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            b"schedule: {every: 4h}\nposts:\n\t- {id: a, text: x}\n",
            "calls.yaml:3: YAML syntax error: a tab character",
        ),
        (
            b"schedule: {every: 4h}\nposts:\n  - {id: a, text: caf\xe9}\n",
            "calls.yaml:3: not UTF-8 text: byte 0xe9",
        ),
        (
            b"schedule: {every: 4h}\nplatforms: [twitter]\n" + POST.encode(),
            "calls.yaml:2: platforms: unknown platform 'twitter' (did you mean 'x'?)",
        ),
    ],
)
def test_typing_mistakes_are_named_at_their_line(campaign: Path, content: bytes, expected: str) -> None:
    (campaign / "content" / "calls.yaml").write_bytes(content)
    result = offline_bot(campaign, "check")
    assert result.returncode == 1 and f"content/{expected}" in result.stderr, result.stderr


def test_config_words_an_unknown_platform_as_the_queues_do(campaign: Path) -> None:
    (campaign / "config.yaml").write_text(OFFLINE_CONFIG + "  twitter: {enabled: true}\n")
    result = offline_bot(campaign, "check")
    assert result.returncode == 1
    assert (
        "config.yaml:9: platforms: unknown platform 'twitter' (did you mean 'x'?); use x, bluesky or mastodon"
        in (result.stderr)
    )


def test_a_too_long_text_says_what_the_hashtag_adds_and_points_at_its_text(campaign: Path) -> None:
    long = "a" * 495
    (campaign / "content" / "calls.yaml").write_text(
        f'schedule: {{every: 4h}}\nposts:\n  - id: long\n    # the ask\n    text: "{long}"\n'
    )
    result = offline_bot(campaign, "check")
    assert result.returncode == 1
    assert (
        "content/calls.yaml:5: post 'long' is too long on mastodon: 509 characters, limit 500 "
        "(14 of them the added #NoTechForICE); shorten it, or give a shorter `mastodon:` text"
    ) in result.stderr


def test_post_dry_run_reads_like_preview_and_says_when_posting_is_paused(campaign: Path) -> None:
    assert offline_bot(campaign, "pause", "--reason", "vigil").returncode == 0
    result = offline_bot(campaign, "post", "calls", "--dry-run")
    assert result.returncode == 3  # as the real `post` would: refused while paused
    assert result.stdout.startswith("calls  post a (cycle 1): would send now")
    assert "  mastodon/main" in result.stdout and "      | Ask #NoTechForICE" in result.stdout
    assert "posting is paused (vigil)" in result.stderr


def test_new_queue_writes_a_commented_file_that_passes_check_once_its_post_is_written(
    campaign: Path,
) -> None:
    made = offline_bot(campaign, "new-queue", "daily-asks")
    assert made.returncode == 0, made.stderr
    path = campaign / "content" / "daily-asks.yaml"
    written = path.read_text()
    assert written.startswith("# Queue daily-asks")
    unedited = offline_bot(campaign, "check")
    assert unedited.returncode == 1
    assert "content/daily-asks.yaml:17: posts[0].text: still the `new-queue` placeholder" in unedited.stderr
    assert offline_bot(campaign, "post", "daily-asks", "--dry-run").returncode == 1
    path.write_text(written.replace("Write the first post here.", "Drop the contracts."))
    check = offline_bot(campaign, "check")
    assert check.returncode == 0 and check.stderr == "", check.stderr
    assert "daily-asks (content/daily-asks.yaml): 1 posts" in check.stdout
    path.write_text(written)
    again = offline_bot(campaign, "new-queue", "daily-asks")
    assert again.returncode == 2 and "already exists" in again.stderr
    assert (campaign / "content" / "daily-asks.yaml").read_text() == written
    assert offline_bot(campaign, "new-queue", "no spaces").returncode == 2
    # The file's name given for the queue's: the same queue, not daily.yaml.yaml.
    named = offline_bot(campaign, "new-queue", "weekly.yaml")
    assert named.returncode == 0 and (campaign / "content" / "weekly.yaml").is_file(), named.stderr


def test_a_mistyped_queue_or_post_gets_a_did_you_mean(campaign: Path) -> None:
    post = offline_bot(campaign, "post", "cals", "--dry-run")
    assert post.returncode == 2 and "no queue named 'cals' (did you mean 'calls'?)" in post.stderr
    item = offline_bot(campaign, "retract", "calls", "aa")
    assert item.returncode == 2 and "no post with id 'aa' (did you mean 'a'?)" in item.stderr
    preview = offline_bot(campaign, "preview", "--queue", "cals")
    assert preview.returncode == 2 and "(did you mean 'calls'?)" in preview.stderr
    # One-shot commands leave content warnings to `check`.
    (campaign / "content" / "calls.yaml").write_text("schedule: {every: 30s}\n" + POST)
    assert "warning" not in offline_bot(campaign, "post", "calls", "--dry-run").stderr


def test_an_unreadable_env_line_is_named_at_its_line_without_its_value(campaign: Path) -> None:
    (campaign / ".env").write_text("MASTODON_ACCESS_TOKEN\n=s3cret-value\n")
    result = offline_bot(campaign, "check")
    assert result.returncode == 0
    assert ".env:1: warning: MASTODON_ACCESS_TOKEN has no value" in result.stderr
    assert ".env:2: warning: cannot read this line: write NAME=value" in result.stderr
    assert "s3cret" not in result.stderr + result.stdout and "python-dotenv" not in result.stderr


def test_check_online_with_no_secret_set_checks_nothing_and_says_so(campaign: Path) -> None:
    result = run_bot("check", "--online", cwd=campaign, env=without(OFFLINE_ENV, ["MASTODON_ACCESS_TOKEN"]))
    assert result.returncode == 3, result.stdout + result.stderr
    assert "mastodon main: not checked (secrets not set)" in result.stdout
    assert "check --online: no account was checked: none has its secrets set" in result.stderr
    assert offline_bot(campaign, "check").returncode == 0  # offline, the same campaign is fine
