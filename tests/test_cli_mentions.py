"""`mentions` as organizers use it: when each post was written, --since in weeks or dates, filters,
and an empty result said on stderr."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.ledger.deliveries import open_ledger
from tests.test_monitor import _mentions, _stored


@pytest.fixture
def campaign(tmp_path: Path) -> Path:
    (tmp_path / "config.yaml").write_text(
        "database: sqlite:///state/bot.sqlite3\nplatforms:\n  x: {enabled: false}\n"
    )
    ledger = open_ledger(f"sqlite:///{tmp_path / 'state' / 'bot.sqlite3'}")
    now = datetime.now(UTC)
    old = _stored(1, "hashtag", now - timedelta(days=10))
    ledger.mentions.record_mentions([old, _stored(2, "reply", now - timedelta(minutes=5))])
    ledger.close()
    return tmp_path / "config.yaml"


def test_text_shows_when_each_post_was_written(campaign: Path) -> None:
    lines = _mentions(campaign).stdout.splitlines()
    written = datetime.fromisoformat(lines[1].split(" ")[0].replace("Z", "+00:00"))
    # _stored writes each post a minute before it is seen.
    assert abs((datetime.now(UTC) - written) - timedelta(minutes=6)) < timedelta(minutes=1)


def test_since_takes_weeks_and_dates(campaign: Path) -> None:
    assert len(_mentions(campaign, "--since", "1w").stdout.splitlines()) == 1
    assert len(_mentions(campaign, "--since", "2w").stdout.splitlines()) == 2
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    assert len(_mentions(campaign, "--since", yesterday).stdout.splitlines()) == 1
    bad = _mentions(campaign, "--since", "last tuesday")
    assert bad.returncode == 2 and "neither a duration" in bad.stderr


@pytest.mark.parametrize(
    ("args", "count"),
    [
        (["--kind", "reply"], 1),
        (["--kind", "reply", "--kind", "hashtag"], 2),
        (["--platform", "mastodon"], 0),
        (["--author", "@ALICE"], 2),
        (["--author", "bob"], 0),
        (["--grep", "POST 2"], 1),
    ],
)
def test_filters(campaign: Path, args: list[str], count: int) -> None:
    result = _mentions(campaign, *args)
    assert result.returncode == 0
    assert len(result.stdout.splitlines()) == count
    assert ("mentions: none match" in result.stderr) == (count == 0)


def test_text_lists_posts_in_the_order_they_were_written_not_seen(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(
        "database: sqlite:///state/bot.sqlite3\nplatforms:\n  x: {enabled: false}\n"
    )
    ledger = open_ledger(f"sqlite:///{tmp_path / 'state' / 'bot.sqlite3'}")
    now = datetime.now(UTC)
    # A slow poll sees an old reply after a newer hashtag post: stored in that order.
    newer = _stored(1, "hashtag", now - timedelta(minutes=10))
    older = replace(_stored(2, "reply", now - timedelta(minutes=5)), created_at=now - timedelta(hours=2))
    ledger.mentions.record_mentions([newer])
    ledger.mentions.record_mentions([older])
    ledger.close()
    for fmt in ([], ["--json"]):
        lines = _mentions(tmp_path / "config.yaml", *fmt).stdout.splitlines()
        assert ["post 2" in lines[0], "post 1" in lines[1]] == [True, True], lines
