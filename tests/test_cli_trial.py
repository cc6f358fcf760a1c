"""What a new-user trial met at the command line: each now said clearly, at its line."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from bot.sandbox import Sandbox
from tests.cli import OFFLINE_CONFIG, run_bot
from tests.test_check_online import _mastodon_token

TOKEN = "secret-token-for-tests"

# The offline campaign, with the campaign's hashtag (its misspellings are warned of).
CONFIG = OFFLINE_CONFIG.replace("campaign: Test\n", 'campaign: Test\nhashtags: ["#NoTechForICE"]\n')
QUEUE = 'schedule: {every: 4h}\nposts:\n  - {id: a, text: "Drop the contracts"}\n'


def bot(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m bot ARGS` in `folder`, with only the environment given (no caller's secrets)."""
    return run_bot(*args, cwd=folder, env={"PATH": os.environ.get("PATH", ""), **env}, timeout=120)


@pytest.fixture
def campaign(tmp_path: Path) -> Path:
    (tmp_path / "config.yaml").write_text(CONFIG)
    (tmp_path / "content").mkdir()
    (tmp_path / "content" / "calls.yaml").write_text(QUEUE)
    return tmp_path


def _config(folder: Path, old: str, new: str) -> None:
    path = folder / "config.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


# --- F1: one account under two names --------------------------------------------------------


def test_the_same_account_under_two_names_is_refused_without_showing_the_token(campaign: Path) -> None:
    _config(
        campaign,
        '"${MASTODON_ACCESS_TOKEN}"}\n',
        '"${MASTODON_ACCESS_TOKEN}"}\n'
        '      - {name: second, api_base_url: "http://127.0.0.1:9/", access_token: "${TOKEN2}"}\n',
    )
    result = bot(campaign, "check", MASTODON_ACCESS_TOKEN=TOKEN, TOKEN2=TOKEN)
    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        "config.yaml:10: mastodon/second is the same account as mastodon/main: the same access token"
        in result.stderr
    )
    assert TOKEN not in result.stdout + result.stderr
    # Two different tokens are two accounts as far as the file can tell.
    assert bot(campaign, "check", MASTODON_ACCESS_TOKEN=TOKEN, TOKEN2="other").returncode == 0


def test_check_online_refuses_two_tokens_of_one_account(sandbox: Sandbox, tmp_path: Path) -> None:
    base = sandbox.servers["mastodon"].base_url
    first, _, _ = _mastodon_token(base, "read write")
    second, _, _ = _mastodon_token(base, "read write")
    (tmp_path / "content").mkdir()
    (tmp_path / "config.yaml").write_text(
        "database: sqlite:///state/bot.sqlite3\nplatforms:\n  mastodon:\n    accounts:\n"
        f'      - {{name: main, api_base_url: "{base}", access_token: "${{T1}}"}}\n'
        f'      - {{name: second, api_base_url: "{base}", access_token: "${{T2}}"}}\n'
    )
    result = bot(tmp_path, "check", "--online", T1=first, T2=second)
    assert result.returncode == 3, result.stdout + result.stderr
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("mastodon second:"))
    assert "FAILED" in line and "the same account as mastodon/main" in line
    assert first not in result.stdout + result.stderr and second not in result.stdout + result.stderr


# --- F2, F3: the database -------------------------------------------------------------------


def test_a_database_folder_that_cannot_be_made_is_one_line_not_a_traceback(campaign: Path) -> None:
    (campaign / "file").write_text("not a folder")
    _config(campaign, "sqlite:///state/bot.sqlite3", "sqlite:///file/state/bot.sqlite3")
    for command in (["status"], ["run", "--once"]):
        result = bot(campaign, *command, MASTODON_ACCESS_TOKEN=TOKEN)
        assert result.returncode == 3, result.stderr
        assert "Traceback" not in result.stderr
        assert f"config.yaml:4: database: cannot create folder {campaign / 'file'}" in result.stderr
    online = bot(campaign, "check", "--online", MASTODON_ACCESS_TOKEN=TOKEN)
    assert online.returncode == 3
    assert "database: FAILED cannot create folder" in online.stdout


def test_check_online_connects_to_the_database_without_showing_its_password(campaign: Path) -> None:
    _config(campaign, "sqlite:///state/bot.sqlite3", "postgresql://bot:hunter2pw@127.0.0.1:9/nope")
    result = bot(campaign, "check", "--online", MASTODON_ACCESS_TOKEN=TOKEN)
    assert result.returncode == 3, result.stdout + result.stderr
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("database:"))
    assert "FAILED" in line and "127.0.0.1" in line and "bot:***@" in line
    assert "hunter2pw" not in result.stdout + result.stderr
    assert "the database failed online" in result.stdout


def test_check_online_creates_a_sqlite_file_and_says_ok(campaign: Path) -> None:
    result = bot(campaign, "check", "--online", MASTODON_ACCESS_TOKEN=TOKEN)
    assert "database: ok sqlite:///" in result.stdout
    assert (campaign / "state" / "bot.sqlite3").exists()


@pytest.mark.postgres
def test_check_online_connects_to_postgresql(campaign: Path, postgres_url: str) -> None:
    _config(campaign, "sqlite:///state/bot.sqlite3", "${DATABASE_URL}")
    result = bot(campaign, "check", "--online", MASTODON_ACCESS_TOKEN=TOKEN, DATABASE_URL=postgres_url)
    assert "database: ok postgresql+psycopg://" in result.stdout, result.stdout + result.stderr


# --- F4: a secret written in config.yaml ----------------------------------------------------


def test_a_secret_written_in_the_file_is_a_warning_at_its_line(campaign: Path) -> None:
    _config(campaign, '"${MASTODON_ACCESS_TOKEN}"', '"abc123literal"')
    result = bot(campaign, "check")
    assert result.returncode == 0, result.stderr
    assert (
        "config.yaml:9: warning: platforms.mastodon.accounts[0].access_token is written in the file "
        'itself; write "${MASTODON_MAIN_ACCESS_TOKEN}" there so the secret goes to .env'
    ) in result.stderr
    assert "abc123literal" not in result.stdout + result.stderr


# --- F5, F6: content that passed silently ---------------------------------------------------


def test_a_misspelt_campaign_hashtag_is_a_warning(campaign: Path) -> None:
    (campaign / "content" / "calls.yaml").write_text(
        "schedule: {every: 4h}\nposts:\n"
        '  - {id: a, text: "Drop the contracts! #NoTechForIce #NoTechFroICE"}\n'
        '  - {id: b, text: "Names please #NoTech4ICE"}\n'
        '  - {id: c, text: "Same tag, other case #notechforice, and #Unrelated"}\n'
    )
    result = bot(campaign, "check", MASTODON_ACCESS_TOKEN=TOKEN)
    assert result.returncode == 0, result.stderr
    warned = [ln for ln in result.stderr.splitlines() if "looks like the campaign's" in ln]
    assert warned == [
        "content/calls.yaml:3: warning: post 'a': '#NoTechFroICE' looks like the campaign's #NoTechForICE",
        "content/calls.yaml:4: warning: post 'b': '#NoTech4ICE' looks like the campaign's #NoTechForICE",
    ]


def test_a_queue_in_a_sub_folder_is_named_as_ignored_but_images_are_not(campaign: Path) -> None:
    (campaign / "content" / "sub").mkdir()
    (campaign / "content" / "sub" / "zz.yaml").write_text(QUEUE)
    (campaign / "content" / "sub" / "card.png").write_bytes(b"not looked at")
    result = bot(campaign, "check", MASTODON_ACCESS_TOKEN=TOKEN)
    assert result.returncode == 0, result.stderr
    assert "content/sub/zz.yaml:1: warning: ignored: queue files must be in content" in result.stderr
    assert "card.png" not in result.stderr


# --- F18: clearer messages ------------------------------------------------------------------


def test_a_number_as_text_says_to_quote_it(campaign: Path) -> None:
    queue = "schedule: {every: 4h}\nposts:\n  - {id: a, text: 12345}\n"
    (campaign / "content" / "calls.yaml").write_text(queue)
    result = bot(campaign, "check", MASTODON_ACCESS_TOKEN=TOKEN)
    assert result.returncode == 1
    assert "calls.yaml:3: posts[0].text: 12345 is read as a number: put it in quotes" in result.stderr


def test_the_same_error_at_one_line_is_said_once(campaign: Path) -> None:
    image = "{path: gone.png, alt: A sign}"
    (campaign / "content" / "calls.yaml").write_text(
        f"schedule: {{every: 4h}}\nposts:\n  - id: a\n    text: Hi\n    images: [{', '.join([image] * 4)}]\n"
    )
    result = bot(campaign, "check", MASTODON_ACCESS_TOKEN=TOKEN)
    assert result.returncode == 1
    lines = [ln for ln in result.stderr.splitlines() if "gone.png" in ln]
    assert len(lines) == 1, result.stderr


def test_a_thread_part_too_long_is_named_at_its_own_line(campaign: Path) -> None:
    (campaign / "content" / "calls.yaml").write_text(
        "schedule: {every: 4h}\nposts:\n  - id: thr\n    thread:\n"
        f'      - "First"\n      - "{"long " * 120}"\n'
    )
    result = bot(campaign, "check", MASTODON_ACCESS_TOKEN=TOKEN)
    assert result.returncode == 1
    assert "calls.yaml:6: post 'thr' part 2 is too long on mastodon" in result.stderr
    assert "split it in two" in result.stderr


def test_a_misspelt_name_in_env_gets_a_did_you_mean(campaign: Path) -> None:
    (campaign / ".env").write_text("MASTODON_ACCES_TOKEN=abc\n")
    result = bot(campaign, "check")
    assert (
        "MASTODON_ACCESS_TOKEN (.env sets MASTODON_ACCES_TOKEN: did you mean MASTODON_ACCESS_TOKEN there?)"
        in result.stderr
    )


def test_preview_of_a_queue_with_errors_says_to_run_check(campaign: Path) -> None:
    (campaign / "content" / "calls.yaml").write_text("schedule: {every: 4h}\nposts:\n  - {id: a}\n")
    result = bot(campaign, "preview", "--queue", "calls", MASTODON_ACCESS_TOKEN=TOKEN)
    assert result.returncode == 1
    assert "no valid queue named 'calls'" in result.stderr and "python -m bot check" in result.stderr


def test_an_unreachable_bluesky_service_is_named_with_advice(tmp_path: Path) -> None:
    (tmp_path / "content").mkdir()
    (tmp_path / "config.yaml").write_text(
        "database: sqlite:///state/bot.sqlite3\nplatforms:\n  bluesky:\n    accounts:\n"
        '      - {name: main, service: "http://127.0.0.1:9", handle: a.test, app_password: "${PW}"}\n'
    )
    result = bot(tmp_path, "check", "--online", PW="abcd-efgh-ijkl-mnop")
    assert result.returncode == 3
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("bluesky main:"))
    assert "cannot reach http://127.0.0.1:9" in line and "is the address right?" in line


# --- a SQLite ledger on Heroku's ephemeral disk ---------------------------------------------


def test_a_sqlite_ledger_on_heroku_is_warned_of(campaign: Path) -> None:
    on_heroku = bot(campaign, "check", MASTODON_ACCESS_TOKEN=TOKEN, DYNO="worker.1")
    assert on_heroku.returncode == 0, on_heroku.stderr
    assert (
        "config.yaml:4: warning: database: a SQLite file on Heroku (DYNO is set) is lost" in on_heroku.stderr
    )
    assert "Heroku" not in bot(campaign, "check", MASTODON_ACCESS_TOKEN=TOKEN).stderr
    postgres = "postgresql+psycopg://bot@db.example/campaign"
    _config(campaign, "sqlite:///state/bot.sqlite3", postgres)
    assert "Heroku" not in bot(campaign, "check", MASTODON_ACCESS_TOKEN=TOKEN, DYNO="worker.1").stderr
