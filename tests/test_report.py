"""`report`, `mentions --summary` and `status`'s last 24 h, from a real run against the emulators.

One campaign, built once for the module through the command line: posts on three networks (a
thread among them), a Mastodon post refused (a failure), replies to our posts, hashtag posts by
several people and a mention, read back by `run --once`. Every figure the page shows is then
checked against the ledger itself, and the page is opened in headless Chromium with no network.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from bot.sandbox import start_sandbox
from tests.chromium import CHROMIUM, offline_page
from tests.sandboxsite import Site

REPO = Path(__file__).resolve().parent.parent

QUEUE = """\
    schedule: {cron: "0 12 1 1 *"}   # never due during the test: only `post` sends
    posts:
      - id: first
        text: "First ask: drop the contracts."
      - id: second
        text: "Second ask: call your representative."
      - id: thread
        thread:
          - "Thread one: employees spoke up."
          - "Thread two: you can too."
      - id: fourth
        text: "Fourth ask: still queued."
"""


def bot(site: Site, *args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
    env = {**site.env, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "bot", "--config", str(site.config), *args],
        cwd=site.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == expect, result.stdout + result.stderr
    return result


def audience(site: Site, platform: str, **body: str) -> dict[str, object]:
    answer = requests.post(f"{site.base(platform)}/_sandbox/audience", json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    posts: list[dict[str, object]] = answer.json()["posts"]
    return posts[0]


def ours(site: Site, platform: str, text: str) -> str:
    return next(str(p["id"]) for p in site.state(platform) if str(p["text"]).startswith(text))


@dataclass
class Campaign:
    site: Site
    ledger: Path

    def query(self, sql: str) -> list[tuple[object, ...]]:
        with sqlite3.connect(self.ledger) as conn:
            return conn.execute(sql).fetchall()


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Campaign]:
    sandbox = start_sandbox(accounts=1)
    try:
        site = Site(tmp_path_factory.mktemp("campaign"), sandbox)
        site.write_queue("calls", QUEUE)
        bot(site, "post", "calls")  # first: everywhere
        site.fault("mastodon", status=422)
        bot(site, "post", "calls", expect=3)  # second: Mastodon refuses it
        bot(site, "post", "calls")  # thread: two parts everywhere
        audience(site, "x", kind="reply", author="alice", text="Signed!", to=ours(site, "x", "First ask"))
        audience(site, "x", kind="reply", author="bob", text="Shared.", to=ours(site, "x", "First ask"))
        audience(
            site, "bluesky", kind="reply", author="carol", text="Yes", to=ours(site, "bluesky", "Thread two")
        )
        for platform, author in [("x", "dana"), ("x", "dana"), ("x", "erin"), ("mastodon", "dana")]:
            audience(site, platform, kind="hashtag", author=author, text=f"{author} joins #NoTechForICE")
        audience(site, "x", kind="hashtag", author="mallory", text="opting out later #NoTechForICE")
        audience(site, "mastodon", kind="mention", author="frank", text="what about this?")
        bot(site, "run", "--once")
        # mallory asks to be left out after the fact: their post is forgotten by the next command
        # (here `report`), and the report must not name them.
        with site.config.open("a") as config:
            config.write("monitor: {ignore: ['@mallory']}\n")
        yield Campaign(site, site.root / "state" / "bot.sqlite3")
    finally:
        sandbox.stop()


def figures_of(page: str) -> dict[str, int]:
    return {key: int(value) for key, value in re.findall(r'data-figure="([^"]+)"[^>]*>(?:<b>)?(\d+)<', page)}


@pytest.fixture(scope="module")
def report(campaign: Campaign) -> Path:
    out = campaign.site.root / "shared" / "report.html"
    result = bot(campaign.site, "report", "--out", str(out))
    assert result.stdout.strip() == str(out)
    return out


def test_the_report_figures_are_the_ledgers(campaign: Campaign, report: Path) -> None:
    page = report.read_text()
    shown = figures_of(page)
    sent = dict(
        campaign.query(
            "SELECT platform || '/' || account, count(*) FROM deliveries"
            " WHERE part = 0 AND state IN ('posted', 'retracted') GROUP BY 1"
        )
    )
    failed = dict(
        campaign.query(
            "SELECT platform || '/' || account, count(*) FROM deliveries WHERE state = 'failed' GROUP BY 1"
        )
    )
    seen = dict(campaign.query("SELECT kind, count(*) FROM mentions GROUP BY kind"))
    assert sent == {"x/main": 3, "bluesky/main": 3, "mastodon/main": 2}  # the scenario itself
    assert failed == {"mastodon/main": 1}
    assert seen == {"reply": 3, "hashtag": 4, "mention": 1}  # mallory's forgotten
    for account in ("x/main", "bluesky/main", "mastodon/main"):
        assert shown[f"sent:{account}"] == sent[account]
        assert shown[f"failed:{account}"] == failed.get(account, 0)
    assert shown["sent"] == sum(sent.values()) and shown["failed"] == 1
    assert (shown["reply"], shown["hashtag"], shown["mention"], shown["reposts"]) == (3, 4, 1, 0)
    # Ranked by replies: `first` drew two on X, the thread one on Bluesky (to its second part).
    assert shown["replies:calls/first"] == 2 and shown["replies:calls/thread"] == 1
    assert page.index("calls/first</b>") < page.index("calls/thread</b>") < page.index("calls/second</b>")
    urls = [
        url for (url,) in campaign.query("SELECT url FROM deliveries WHERE post_id = 'first' AND part = 0")
    ]
    assert len(urls) == 3 and all(f'href="{url}"' in page for url in urls)
    assert shown["left:calls"] == 1  # `fourth` is still queued
    assert "Mastodon" in page and "failed calls/second" in page


def test_the_report_names_voices_by_handle_only_and_never_an_ignored_one(report: Path) -> None:
    page = report.read_text()
    voices = page[page.index("Voices using the hashtag") :]
    assert re.search(r"<td>dana</td><td>x</td><td class=\"n\">2</td>", voices)
    assert "dana@example.social" in voices and "erin" in voices
    assert "mallory" not in page
    assert "joins #NoTechForICE" not in page  # other people's words stay out of a shared page


def test_the_page_fetches_nothing_and_carries_everything_inline(report: Path) -> None:
    page = report.read_text()
    assert "default-src 'none'" in page
    for outside in ("<script", "<link", "<img", "src=", "@import", "@font-face"):
        assert outside not in page
    assert re.findall(r"url\((?!#)", page) == []  # only the SVGs' own clip paths
    assert page.count('<svg role="img"') == 4  # hashtag posts, replies, outcomes, voices
    assert "@media print" in page and 'name="viewport"' in page


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="chromium is not installed")
def test_chromium_offline_shows_every_chart_and_the_headline_without_errors(
    report: Path, tmp_path: Path
) -> None:
    with offline_page(tmp_path / "profile") as page:
        page.call("Page.navigate", url=report.as_uri())
        page.wait_for("Page.loadEventFired")
        sizes = page.evaluate(
            "Array.from(document.querySelectorAll('svg.chart'), s => { const r = s.getBoundingClientRect();"
            " return [s.getAttribute('aria-label'), r.width, r.height]; })"
        )
        text = page.evaluate("document.body.innerText")
        shot = page.screenshot(tmp_path / "report.png")
        page.call(
            "Emulation.setDeviceMetricsOverride", width=390, height=844, deviceScaleFactor=2, mobile=True
        )
        phone = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        problems, fetched = page.problems(), page.requests()
    assert problems == []
    assert [u for u in fetched if not u.startswith("file://")] == []
    assert len(sizes) == 4 and all(w > 100 and h > 50 for _, w, h in sizes), sizes
    assert shot.startswith(b"\x89PNG") and len(shot) > 20_000
    headline = re.sub(r"\s+", " ", text)
    for figure in ("8 posts sent", "1 failures", "3 replies", "1 mentions", "4 hashtag posts by others"):
        assert figure in headline
    assert phone[0] <= phone[1]  # nothing wider than a phone's screen: tables scroll in their box


def test_report_sandbox_reads_the_rehearsals_database_and_keeps_it(campaign: Campaign, report: Path) -> None:
    rehearsal = campaign.site.root / "state" / "sandbox.sqlite3"
    rehearsal.write_bytes(campaign.ledger.read_bytes())  # as `run --sandbox` leaves it
    out = Path(bot(campaign.site, "report", "--sandbox").stdout.strip())
    assert out.parent == campaign.site.root / "reports" and out.name.startswith("sandbox-report-")
    shown = figures_of(out.read_text())
    assert {k: shown[k] for k in ("sent", "failed", "reply", "hashtag")} == {
        "sent": 8, "failed": 1, "reply": 3, "hashtag": 4
    }  # fmt: skip
    assert rehearsal.read_bytes() == campaign.ledger.read_bytes()  # read, never emptied
    assert "left:sandbox-demo" in out.read_text()  # the rehearsal's demo queue has its runway


def test_an_empty_campaign_reports_nothing_yet_and_creates_no_database(tmp_path: Path) -> None:
    sandbox = start_sandbox(accounts=1)
    try:
        site = Site(tmp_path, sandbox)
        site.write_queue("calls", QUEUE)
        out = bot(site, "report").stdout.strip()
    finally:
        sandbox.stop()
    page = Path(out).read_text()
    assert Path(out).parent == tmp_path / "reports" and Path(out).name.startswith("report-")
    assert page.count("Nothing yet") >= 5 and "<svg" not in page
    assert not (tmp_path / "state" / "bot.sqlite3").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "last week"], "report: --since: 'last week' is neither a duration"),
        (["--since", "2026-12-05", "--until", "2026-12-01"], "report: --since must come before --until"),
        (["--until", "tomorrow"], "report: --until: 'tomorrow' is not a date"),
        (["--since", "2199-01-01"], "report: --since: '2199-01-01' (2199-01-01 00:00) is in the future"),
        (["--since", "2026-02-30"], "report: --since: '2026-02-30' is not a valid date"),
    ],
)
def test_a_bad_period_is_one_line_and_exit_2(campaign: Campaign, args: list[str], message: str) -> None:
    result = bot(campaign.site, "report", *args, expect=2)
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1


def test_since_takes_weeks_as_mentions_does(campaign: Campaign, tmp_path: Path) -> None:
    out = tmp_path / "week.html"
    bot(campaign.site, "report", "--since", "1w", "--out", str(out))
    page = out.read_text()
    week_ago = (datetime.now(UTC) - timedelta(weeks=1)).strftime("%Y-%m-%d")  # the site's zone is UTC
    assert f"<p>{week_ago} " in page, page[:2000]


def test_without_matplotlib_report_says_how_to_add_it(campaign: Campaign, tmp_path: Path) -> None:
    blocked = tmp_path / "blocked" / "matplotlib"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ImportError('No module named matplotlib')\n")
    env = {**campaign.site.env, "PYTHONPATH": f"{blocked.parent}{os.pathsep}{REPO}"}
    result = subprocess.run(
        [sys.executable, "-m", "bot", "--config", str(campaign.site.config), "report"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3
    assert result.stderr == "report: the charts need matplotlib; add it with: pip install -e '.[report]'\n"


def test_mentions_summary_counts_by_day_kind_and_network(campaign: Campaign) -> None:
    text = bot(campaign.site, "mentions", "--summary").stdout.splitlines()
    assert text[0].split() == ["day", "kind", "bluesky", "mastodon", "x", "total"]
    rows = {tuple(line.split()[1:2]): line.split()[2:] for line in text[1:-2]}
    assert rows[("reply",)] == ["1", "0", "2", "3"]
    assert rows[("mention",)] == ["0", "1", "0", "1"]
    assert rows[("hashtag",)] == ["0", "1", "3", "4"]
    assert text[-2].split() == ["total", "1", "2", "5", "8"]
    records = json.loads(bot(campaign.site, "mentions", "--summary", "--json").stdout)
    assert sum(r["count"] for r in records) == 8 == len(campaign.query("SELECT * FROM mentions"))
    bot(campaign.site, "mentions", "--summary", "--follow", expect=2)


def test_status_shows_the_last_24_hours(campaign: Campaign) -> None:
    status = json.loads(bot(campaign.site, "status", "--json").stdout)
    assert status["last_24h"] == {
        "sent": 8, "failed": 1, "replies": 3, "mentions": 1, "hashtag_posts": 4, "reposts": 0
    }  # fmt: skip
    text = bot(campaign.site, "status").stdout
    assert "last 24 h: 8 posts sent, 1 failed (one per post and account), 3 replies, 1 mentions" in text


def loaded_after(imports: str) -> list[str]:
    """Modules of the charting stack and of `bot.report` that a fresh interpreter has after `imports`."""
    probe = (
        f"import sys\n{imports}\n"
        "print(' '.join(sorted(m for m in sys.modules"
        " if m.split('.')[0] in ('matplotlib', 'numpy', 'PIL') or m.startswith('bot.report'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], env={"PYTHONPATH": str(REPO)}, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_the_daemon_never_loads_the_charting_library() -> None:
    daemon = (
        "import bot.cli, bot.commands.run, bot.daemon.scheduler, bot.monitoring.monitor, bot.delivery.pool"
    )
    assert loaded_after(daemon) == []
    # `status` shares the report's counts, not its charts.
    assert "matplotlib" not in loaded_after("import bot.commands.status")
    assert "matplotlib" in loaded_after("import bot.report.charts")  # the probe can see it
