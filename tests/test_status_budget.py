"""`status` shows each account's rate budget as the platform itself last stated it (docs/design.md)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.cli import main
from bot.ledger.deliveries import Ledger, open_ledger
from bot.ledger.ratebudgets import BudgetRecorder, read_budgets
from bot.platforms.ratelimits import RateBudget, budget_of, endpoint_of
from bot.sandbox import Sandbox, start_sandbox
from tests.sandboxsite import Site

POSTING = {
    "x": "POST /2/tweets",
    "bluesky": "POST /xrpc/com.atproto.repo.createRecord",
    "mastodon": "POST /api/v1/statuses",
}


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    sandbox: Sandbox = start_sandbox(limits="basic")  # the documented numbers, not "none"
    s = Site(tmp_path, sandbox)
    s.write_queue("calls", 'schedule: {every: 1h}\nposts:\n  - {id: first, text: "Drop the contracts"}\n')
    for name, value in s.env.items():
        monkeypatch.setenv(name, value)
    yield s
    sandbox.stop()


def status(site: Site, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    capsys.readouterr()
    assert main(["--config", str(site.config), "status", "--json"]) == 0
    answer: dict[str, object] = json.loads(capsys.readouterr().out)
    return answer


def test_status_shows_the_platforms_budget_after_a_post(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    before = status(site, capsys)
    assert all(a["rate_budget"] == [] for a in before["accounts"])  # type: ignore[attr-defined,index]
    assert main(["--config", str(site.config), "post", "calls"]) == 0
    after = status(site, capsys)
    for account in after["accounts"]:  # type: ignore[attr-defined]
        posting = [b for b in account["rate_budget"] if b["endpoint"] == POSTING[account["platform"]]]
        assert len(posting) == 1, account
        (budget,) = posting
        assert 0 <= budget["remaining"] < budget["limit"], budget  # the post spent some of it
        assert budget["reset_at"] is not None


def test_status_text_names_the_budget(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(site.config), "post", "calls"]) == 0
    capsys.readouterr()
    assert main(["--config", str(site.config), "status"]) == 0
    text = capsys.readouterr().out
    assert "rate POST /2/tweets: " in text and " left until " in text


def test_each_platforms_headers_and_ids() -> None:
    x = budget_of(
        "POST", "https://api.x.com/2/tweets", {"x-rate-limit-limit": "17", "x-rate-limit-remaining": "3"}
    )
    bsky = budget_of(
        "POST", "https://pds/xrpc/a.b", {"RateLimit-Limit": "5000", "RateLimit-Remaining": "4997;w=3600"}
    )
    masto = budget_of(
        "GET", "https://m/api/v1/x", {"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "299"}
    )
    assert [(b.limit, b.remaining) for b in (x, bsky, masto) if b] == [(17, 3), (5000, 4997), (300, 299)]
    assert budget_of("GET", "https://m/x", {"Content-Type": "text/html"}) is None
    assert (
        endpoint_of("GET", "https://api.x.com/2/users/2244994945/tweets?max_results=5")
        == "GET /2/users/:id/tweets"
    )
    assert endpoint_of("DELETE", "https://m.example/api/v1/statuses/109384") == "DELETE /api/v1/statuses/:id"


@pytest.fixture
def ledger(database_url: str) -> Iterator[Ledger]:
    opened = open_ledger(database_url)
    yield opened
    opened.close()


def test_the_newest_budget_per_endpoint_is_stored_on_either_database(ledger: Ledger) -> None:
    now = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
    recorder = BudgetRecorder(ledger.engine, lambda: now)
    note = recorder.sink("x", "main")
    for left in (16, 15):
        note(RateBudget("POST /2/tweets", 17, left, now + timedelta(hours=24)))
    recorder.sink("mastodon", "main")(RateBudget("POST /api/v1/statuses", 300, 299, None))
    recorder.flush()
    note(RateBudget("POST /2/tweets", 17, 14, now + timedelta(hours=24)))  # an update of a stored row
    recorder.close()
    stored = {(b.platform, b.endpoint): (b.limit, b.remaining) for b in read_budgets(ledger.engine)}
    assert stored == {("x", "POST /2/tweets"): (17, 14), ("mastodon", "POST /api/v1/statuses"): (300, 299)}


def test_workers_flushing_the_same_budgets_at_once_never_deadlock(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Every worker posts for every account, so their flushes write the same rows; two
    # transactions upserting them in different orders deadlock on PostgreSQL.
    ledger = open_ledger(database_url)
    now = datetime(2026, 12, 1, tzinfo=UTC)
    keys = [(f"account{n}", f"endpoint{e}") for n in range(10) for e in range(5)]
    try:
        for _ in range(10):
            recorders = [BudgetRecorder(ledger.engine, lambda: now) for _ in range(2)]
            for recorder, order in zip(recorders, (keys, keys[::-1]), strict=True):
                for account, endpoint in order:
                    recorder.sink("mastodon", account)(RateBudget(endpoint, 300, 299, now))
            threads = [threading.Thread(target=r.flush) for r in recorders]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        assert "could not store" not in caplog.text
        assert len(read_budgets(ledger.engine)) == len(keys)
    finally:
        ledger.close()
