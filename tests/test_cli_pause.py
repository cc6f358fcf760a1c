"""`pause`, the operator's emergency brake: it works with a broken config.yaml where it can,
says which database it paused, and `--sandbox` pauses the rehearsal instead of the campaign."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.cli import (
    OFFLINE_CONFIG,
    OFFLINE_ENV,
    copy_of_shipped_campaign,
    free_base_port,
    offline_bot,
    offline_campaign,
    run_bot,
    without,
)


@pytest.fixture
def campaign(tmp_path: Path) -> Path:
    folder = offline_campaign(tmp_path)
    assert offline_bot(folder, "status").returncode == 0  # the ledger exists, as on any running campaign
    return folder


def break_config(folder: Path) -> None:
    """A typo elsewhere than `database`: the config no longer loads."""
    (folder / "config.yaml").write_text(OFFLINE_CONFIG + "schedule_grace: 1hh\n")


def test_pause_with_a_broken_config_pauses_the_database_it_names_and_says_so(campaign: Path) -> None:
    break_config(campaign)
    paused = offline_bot(campaign, "pause", "--reason", "bad post")
    assert paused.returncode == 0, paused.stderr
    assert paused.stdout.strip() == "paused: bad post"
    assert "config.yaml:9: schedule_grace: '1hh' is not a duration" in paused.stderr
    database = campaign / "state" / "bot.sqlite3"
    assert f"pausing the database {database}, from config.yaml's `database`; no alert" in paused.stderr
    again = offline_bot(campaign, "pause")
    assert again.returncode == 0 and again.stdout.startswith("already paused since ")
    assert "bad post" in again.stdout
    # Resuming needs a config that loads: posting starts again with it.
    assert offline_bot(campaign, "resume").returncode == 1
    (campaign / "config.yaml").write_text(OFFLINE_CONFIG)
    status = json.loads(offline_bot(campaign, "status", "--json").stdout)
    assert status["paused"] is True and status["pause_reason"] == "bad post"
    assert offline_bot(campaign, "post", "calls").returncode == 3  # refused while paused


def test_pause_with_unreadable_yaml_falls_back_to_database_url(campaign: Path) -> None:
    hosted = offline_campaign(campaign / "hosted")
    assert offline_bot(hosted, "status").returncode == 0
    database = hosted / "state" / "bot.sqlite3"
    (campaign / "config.yaml").write_text("campaign: [Test\n")  # a YAML syntax error
    env = {**OFFLINE_ENV, "DATABASE_URL": f"sqlite:///{database}"}
    paused = run_bot("pause", cwd=campaign, env=env)
    assert paused.returncode == 0 and paused.stdout.strip() == "paused", paused.stderr
    assert f"pausing the database {database}, from DATABASE_URL" in paused.stderr
    assert "Traceback" not in paused.stderr
    assert json.loads(offline_bot(hosted, "status", "--json").stdout)["paused"] is True


def test_pause_without_any_database_pauses_nothing_and_says_so(tmp_path: Path) -> None:
    folder = offline_campaign(tmp_path)
    break_config(folder)
    result = offline_bot(folder, "pause")
    assert result.returncode == 1 and result.stdout == ""
    assert f"pause: nothing paused: no database {folder / 'state' / 'bot.sqlite3'}" in result.stderr
    assert not (folder / "state").exists()


def test_pause_and_resume_sandbox_act_on_the_rehearsal_only(tmp_path: Path) -> None:
    copy_of_shipped_campaign(tmp_path)
    env = without(os.environ, prefixes=("X_", "BSKY_", "MASTODON_", "FB_", "IG_", "DATABASE_URL"))
    before = run_bot("pause", "--sandbox", cwd=tmp_path, env=env)
    assert before.returncode == 3 and "run --sandbox" in before.stderr
    rehearsal = run_bot(
        "run",
        "--sandbox",
        "--for",
        "3s",
        cwd=tmp_path,
        env={**env, "BOT_SANDBOX_PORT": str(free_base_port())},
    )
    assert rehearsal.returncode == 0, rehearsal.stderr
    paused = run_bot("pause", "--sandbox", "--reason", "rehearsal break", cwd=tmp_path, env=env)
    assert paused.returncode == 0 and paused.stdout.strip() == "paused: rehearsal break", paused.stderr
    sandbox = json.loads(run_bot("status", "--sandbox", "--json", cwd=tmp_path, env=env).stdout)
    assert sandbox["paused"] is True and sandbox["pause_reason"] == "rehearsal break"
    campaign = json.loads(run_bot("status", "--json", cwd=tmp_path, env=env).stdout)
    assert campaign["paused"] is False  # the campaign's own database is untouched
    resumed = run_bot("resume", "--sandbox", cwd=tmp_path, env=env)
    assert resumed.returncode == 0 and resumed.stdout.strip() == "resumed"
    assert (
        json.loads(run_bot("status", "--sandbox", "--json", cwd=tmp_path, env=env).stdout)["paused"] is False
    )
