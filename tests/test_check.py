import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_check(config: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # Only what Python needs: no real secrets or DATABASE_URL from the caller's environment.
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "SYSTEMROOT")}
    return subprocess.run(
        [sys.executable, "-m", "bot", "--config", str(config), "check"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**base, **(env or {})},
        timeout=60,
    )


def test_the_shipped_campaign_passes_with_only_missing_secret_warnings() -> None:
    result = run_check(REPO / "config.yaml")
    assert result.returncode == 0, result.stderr
    # Once Human Rights Day has passed, its pinned post is said to be in the past: not a fault.
    lines = [line for line in result.stderr.splitlines() if "is in the past" not in line]
    past = len(result.stderr.splitlines()) - len(lines)
    *secrets, repeat = lines
    # The daily calls to action repeat: X, which refuses a text it has seen, gets the first round.
    assert repeat.startswith("content/calls-to-action.yaml:10: warning: when_exhausted: repeat: X refuses")
    for line in secrets:
        assert line.startswith("config.yaml:") and ": warning: " in line and "not set" in line
    assert "calls-to-action (content/calls-to-action.yaml): 13 posts (1 pinned)" in result.stdout
    assert "explainer (content/explainer.yaml)" in result.stdout
    assert "company-asks (content/company-asks.yaml)" in result.stdout
    assert len(secrets) == 5  # one line per platform's account: X, Bluesky, Mastodon, Facebook, Instagram
    assert f"3 queues, 28 posts: 0 errors, {len(secrets) + 1 + past} warnings" in result.stdout


def test_with_every_secret_set_there_is_nothing_to_warn_about_and_no_secret_is_printed() -> None:
    secrets = {
        name: f"value-of-{name.lower()}"
        for name in [
            "X_CONSUMER_KEY",
            "X_CONSUMER_SECRET",
            "X_ACCESS_TOKEN",
            "X_ACCESS_TOKEN_SECRET",
            "BSKY_HANDLE",
            "BSKY_APP_PASSWORD",
            "MASTODON_ACCESS_TOKEN",
            "FB_PAGE_ACCESS_TOKEN",
        ]
    }
    secrets["FB_PAGE_ID"] = "104830741234567"  # a Page id is digits
    secrets["IG_USER_ID"] = "17841400000000001"  # and so is an Instagram account's
    secrets["IG_MEDIA_BASE_URL"] = "https://example.org/campaign-content"
    result = run_check(REPO / "config.yaml", secrets)
    assert result.returncode == 0
    # What X does to a repeating queue, nothing else (and, after its day, the pinned post's date).
    [repeat] = [line for line in result.stderr.splitlines() if "is in the past" not in line]
    assert "when_exhausted: repeat: X refuses" in repeat
    for value in secrets.values():
        assert value not in result.stdout


def test_broken_content_exits_1_with_every_error_and_no_traceback(tmp_path: Path) -> None:
    (tmp_path / "content").mkdir()
    (tmp_path / "config.yaml").write_text(
        "platforms:\n  mastodon:\n    accounts:\n"
        '      - {name: main, api_base_url: https://m.example, access_token: "${T:-t}"}\n'
    )
    (tmp_path / "content" / "a.yaml").write_text("schedule: {cron: '61 * * * *'}\nposts: [{text: hi}]\n")
    (tmp_path / "content" / "b.yaml").write_text(
        "schedule: {every: 1d}\nposts:\n  - id: x\n    text: [oops\n"
    )
    (tmp_path / "content" / "ok.yaml").write_text("schedule: {every: 1d}\nposts: [{id: x, text: hi}]\n")
    result = run_check(tmp_path / "config.yaml")
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    a, b = str(tmp_path / "content" / "a.yaml"), str(tmp_path / "content" / "b.yaml")
    assert lines[0] == f"{a}:1: schedule.cron: invalid: minute field '61': 61 is outside 0-59"
    assert lines[1] == f"{a}:2: post has no id: give it one, such as `id: petition-launch`"
    assert lines[2].startswith(f"{b}:5: YAML syntax error:")
    assert len(lines) == 3
    assert "Traceback" not in result.stderr
    assert "ok (" in result.stdout  # the valid queue is still summarised
    assert result.stdout.splitlines()[-1] == "1 queues, 1 posts: 3 errors, 0 warnings"


def test_broken_config_exits_1_naming_the_field(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("platforms:\n  x:\n    tire: free\n")
    result = run_check(tmp_path / "config.yaml")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"{tmp_path}/config.yaml:3: platforms.x: unknown key 'tire' (did you mean 'tier'?)",
    ]
