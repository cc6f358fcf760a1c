"""A config.yaml that sets every key (docs/design.md, config.yaml): each accepted, with its value.

Loaded from another working folder, so relative paths are seen to follow the config's folder.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.campaign.config import load_config

# ruff: noqa: E501  (the example is verbatim, its long account lines included)

EXAMPLE = """\
campaign: NoTechForICE
timezone: America/New_York          # default zone for every schedule (default UTC)
hashtags: ["#NoTechForICE"]         # tracked everywhere; the first is added to posts that lack it
content: content/
database: ${DATABASE_URL:-sqlite:///state/bot.sqlite3}   # or postgresql+psycopg://user@host/db;
                                    # postgres:// (as Heroku sets DATABASE_URL) is accepted too
schedule_grace: 1h                  # a slot missed by less than this is still fired once
logging: {level: INFO, format: text, mentions_log: logs/mentions.jsonl}   # text | json; "-" = stdout
alerts: {webhook: "${ALERT_WEBHOOK_URL:-}"}   # optional: JSON POSTs on account failure, rejected
                                    # post, queue exhausted, pause (Slack/Matrix/Discord-style hooks)
monitor:
  hashtags_every: 2m                # the fastest poll; each platform is slowed to its budget
  replies_every: 5m
  backfill: 24h                     # how far back the very first pass looks
  retention_days: 30
  ignore: []                        # handles whose posts are never logged (opt-outs)
platforms:
  x:
    enabled: true
    api_base_url: https://api.x.com # for the sandbox and tests; the OAuth signature still covers X's host
    tier: free                      # free | basic | pro | pay-per-use: budgets; check warns when
                                    # schedules exceed them
    accounts:
      - name: main
        consumer_key: "${X_CONSUMER_KEY}"
        consumer_secret: "${X_CONSUMER_SECRET}"
        access_token: "${X_ACCESS_TOKEN}"
        access_token_secret: "${X_ACCESS_TOKEN_SECRET}"
        limits: {posts_per_day: 12, min_gap: 20m}   # optional, per account, across all queues
  bluesky:
    enabled: true
    accounts:
      - {name: main, service: https://bsky.social, handle: "${BSKY_HANDLE}", app_password: "${BSKY_APP_PASSWORD}"}
  mastodon:
    enabled: true
    accounts:
      - {name: main, api_base_url: https://mastodon.social, access_token: "${MASTODON_ACCESS_TOKEN}"}
amplify:                            # optional: repost allies' posts that use a tracked hashtag
  bluesky: {allow: ["ally.example.org"], max_per_day: 10}
  mastodon: {allow: ["ally@example.social"], max_per_day: 10}
"""

SECRETS = {
    "X_CONSUMER_KEY": "ck",
    "X_CONSUMER_SECRET": "cs",
    "X_ACCESS_TOKEN": "1-at",
    "X_ACCESS_TOKEN_SECRET": "ats",
    "BSKY_HANDLE": "campaign.example",
    "BSKY_APP_PASSWORD": "aaaa-bbbb-cccc-dddd",
    "MASTODON_ACCESS_TOKEN": "mt",
}


def test_the_design_example_loads_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "campaign"
    (folder / "content").mkdir(parents=True)
    (folder / "config.yaml").write_text(EXAMPLE)
    monkeypatch.chdir(tmp_path)  # not the config's folder
    config, warnings = load_config(Path("campaign/config.yaml"), SECRETS)
    assert warnings == []
    assert (config.campaign, config.timezone, config.hashtags) == (
        "NoTechForICE",
        "America/New_York",
        ("#NoTechForICE",),
    )
    assert config.content_dir.resolve() == (folder / "content").resolve()
    assert config.database_url == f"sqlite:///{(folder / 'state' / 'bot.sqlite3').resolve().as_posix()}"
    assert config.logging.mentions_log is not None
    assert config.logging.mentions_log.resolve() == (folder / "logs" / "mentions.jsonl").resolve()
    assert config.schedule_grace == timedelta(hours=1)
    assert config.alerts_webhook is None
    assert (config.monitor.hashtags_every, config.monitor.replies_every, config.monitor.backfill) == (
        timedelta(minutes=2),
        timedelta(minutes=5),
        timedelta(hours=24),
    )
    assert (config.monitor.retention_days, config.monitor.ignore) == (30, ())
    assert config.platforms["x"].tier == "free"
    (x,) = config.accounts("x")
    assert (x.base_url, x.limits.posts_per_day, x.limits.min_gap) == (
        "https://api.x.com",
        12,
        timedelta(minutes=20),
    )
    assert [a.base_url for a in (*config.accounts("bluesky"), *config.accounts("mastodon"))] == [
        "https://bsky.social",
        "https://mastodon.social",
    ]
    assert config.amplify["bluesky"].allow == ("ally.example.org",)
    assert config.amplify["mastodon"].max_per_day == 10


def test_heroku_database_url_and_the_webhook_from_the_environment(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(EXAMPLE)
    environ = SECRETS | {
        "DATABASE_URL": "postgres://u:p@db.example:5432/bot",
        "ALERT_WEBHOOK_URL": "https://hooks.example/x",
    }
    config, _ = load_config(tmp_path / "config.yaml", environ)
    assert config.database_url == "postgresql+psycopg://u:p@db.example:5432/bot"
    assert config.alerts_webhook == "https://hooks.example/x"
