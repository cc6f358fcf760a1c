"""`run --once` against a separately started sandbox: what the audience posts reaches the log and
the mentions log, once each, and nothing again after a restart."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from bot.sandbox import Sandbox, start_sandbox
from tests.sandboxsite import env_for

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    started = start_sandbox(accounts=1)
    yield started
    started.stop()


def _campaign(folder: Path, sandbox: Sandbox) -> Path:
    described = sandbox.describe()
    x, bsky, masto = (described[p] for p in ("x", "bluesky", "mastodon"))
    (folder / "content").mkdir()
    (folder / ".env").write_text("\n".join(f"{name}={value}" for name, value in env_for(sandbox).items()))
    config = folder / "config.yaml"
    config.write_text(
        f"""\
campaign: test
hashtags: ["#NoTechForICE"]
database: sqlite:///state/bot.sqlite3
logging: {{level: INFO, format: text, mentions_log: logs/mentions.jsonl}}
monitor: {{hashtags_every: 1s, replies_every: 1s}}
platforms:
  x:
    api_base_url: {x["base_url"]}
    tier: pro
    accounts:
      - name: main
        consumer_key: "${{X_CONSUMER_KEY}}"
        consumer_secret: "${{X_CONSUMER_SECRET}}"
        access_token: "${{X_ACCESS_TOKEN}}"
        access_token_secret: "${{X_ACCESS_TOKEN_SECRET}}"
  bluesky:
    accounts:
      - name: main
        service: {bsky["base_url"]}
        handle: "${{BSKY_HANDLE}}"
        app_password: "${{BSKY_APP_PASSWORD}}"
  mastodon:
    accounts:
      - {{name: main, api_base_url: {masto["base_url"]}, access_token: "${{MASTODON_ACCESS_TOKEN}}"}}
"""
    )
    return config


def _audience(sandbox: Sandbox, text: str) -> None:
    for server in sandbox.servers.values():
        body = {"kind": "hashtag", "author": "alice", "text": text}
        answer = requests.post(f"{server.base_url}/_sandbox/audience", json=body, timeout=10)
        assert answer.status_code == 200, answer.text


def _run_once(config: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "--config", str(config), "run", "--once"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result


def _logged(config: Path) -> list[dict[str, Any]]:
    path = config.parent / "logs" / "mentions.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_run_once_reports_the_audience_once_and_nothing_again_after_a_restart(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    config = _campaign(tmp_path, sandbox)
    _audience(sandbox, "first words #NoTechForICE")
    first = _run_once(config)
    logged = _logged(config)
    assert sorted(r["platform"] for r in logged) == ["bluesky", "mastodon", "x"]
    assert all(r["kind"] == "hashtag" and r["text"].startswith("first words") for r in logged)
    for platform in ("x", "bluesky", "mastodon"):
        assert f"hashtag {platform} http" in first.stderr and "first words" not in first.stderr

    time.sleep(3.5)  # the fastest pace the sandbox's budgets allow (Pro search: 300 per 15 min)
    _audience(sandbox, "second words #NoTechForICE")
    second = _run_once(config)  # a new process: a restart
    logged = _logged(config)
    assert len(logged) == 6 and len({(r["platform"], r["id"]) for r in logged}) == 6
    assert all(r["text"].startswith("second words") for r in logged[3:])
    assert "first words" not in second.stderr


def test_a_hashtag_post_without_facets_tags_or_entities_is_logged_once_in_the_campaigns_spelling(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Many clients post plain text (the atproto SDK's send_post, cross-posters, scripts): the tag
    is only in the text, in whatever case the author typed."""
    config = _campaign(tmp_path, sandbox)
    for server in sandbox.servers.values():
        body = {"kind": "hashtag", "author": "alice", "text": "plain words #notechforice", "plain": True}
        answer = requests.post(f"{server.base_url}/_sandbox/audience", json=body, timeout=10)
        assert answer.status_code == 200, answer.text
        raw = answer.json()["posts"][0]["raw"]
        assert "facets" not in raw and not raw.get("tags") and "hashtags" not in raw.get("entities", {})

    first = _run_once(config)
    logged = _logged(config)
    assert sorted(r["platform"] for r in logged) == ["bluesky", "mastodon", "x"]
    for record in logged:
        assert (record["kind"], record["hashtags"]) == ("hashtag", ["NoTechForICE"])
        assert "#notechforice" in record["text"]  # the author's own spelling stays in the text
    for platform in ("x", "bluesky", "mastodon"):
        assert first.stderr.count(f"hashtag {platform} http") == 1  # the author stays out of the log

    time.sleep(3.5)  # the sandbox's Pro search budget
    _run_once(config)
    assert len(_logged(config)) == 3

    # `mentions` lists them in the campaign's spelling, the current one from config.yaml.
    config.write_text(config.read_text().replace('["#NoTechForICE"]', '["#NoTechForIce"]'))
    listed = [json.loads(line) for line in _mentions(config, "--json").splitlines()]
    assert [r["hashtags"] for r in listed] == [["NoTechForIce"]] * 3
    rows = list(csv.DictReader(io.StringIO(_mentions(config, "--csv"))))
    assert [r["hashtags"] for r in rows] == ["NoTechForIce"] * 3


def _mentions(config: Path, *options: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "--config", str(config), "mentions", *options],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout
