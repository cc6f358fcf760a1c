"""`post`, `retract`, `pause`/`resume` and `status` from the command line, against the emulators."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest

from bot.cli import main
from bot.ledger.deliveries import open_ledger
from tests.cli import bot_argv, bot_env, site_bot
from tests.sandboxsite import PLATFORMS, Site, wait_for

QUEUE = """\
    schedule: {every: 1h}
    posts:
      - id: first
        text: "First ask: drop the contracts."
      - id: second
        text: "Second ask: call your representative."
      - id: thread
        thread:
          - "Thread one: employees spoke up."
          - "Thread two: you can too."
"""


@pytest.fixture
def site(site: Site, monkeypatch: pytest.MonkeyPatch) -> Site:
    site.write_queue("calls", QUEUE)
    for name, value in site.env.items():
        monkeypatch.setenv(name, value)
    return site


def bot(site: Site, *args: str) -> int:
    return main(["--config", str(site.config), *args])


def test_post_sends_the_next_post_everywhere_and_advances_the_queue(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bot(site, "post", "calls") == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all("posted: http" in line for line in lines), lines
    assert bot(site, "post", "calls") == 0
    capsys.readouterr()
    for platform in PLATFORMS:
        texts = site.live_texts(platform)
        assert [t.split(":")[0] for t in texts] == ["First ask", "Second ask"], (platform, texts)
        assert all("#NoTechForICE" in t for t in texts)


def test_post_item_reaches_only_the_targets_not_reached_yet(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bot(site, "post", "calls", "second", "--platform", "x") == 0
    assert len(site.live_texts("x")) == 1 and site.live_texts("mastodon") == []
    capsys.readouterr()
    assert bot(site, "post", "calls", "second") == 0
    out = capsys.readouterr().out
    assert "x/main calls/second done" in out and out.count("posted: http") == 2
    assert all(len(site.live_texts(p)) == 1 for p in PLATFORMS)


def test_dry_run_prints_the_payloads_and_sends_nothing(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bot(site, "post", "calls", "thread", "--dry-run") == 0
    text = capsys.readouterr().out  # as `preview` shows it
    assert text.startswith("calls  post thread (cycle 1): would send now")
    assert "  bluesky/main" in text and "      | Thread one: employees spoke up. #NoTechForICE" in text
    assert bot(site, "post", "calls", "thread", "--dry-run", "--json") == 0
    payloads = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [p["target"] for p in payloads] == ["x/main", "bluesky/main", "mastodon/main"]
    bluesky = payloads[1]["parts"]
    assert bluesky[0]["text"] == "Thread one: employees spoke up. #NoTechForICE"
    assert bluesky[0]["facets"][0]["kind"] == "tag" and bluesky[0]["length"] <= bluesky[0]["limit"]
    assert all(site.live_texts(p) == [] for p in PLATFORMS)


def test_post_is_refused_while_paused_and_works_after_resume(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bot(site, "pause", "--reason", "vigil tonight") == 0
    assert bot(site, "post", "calls") == 3
    assert "paused (vigil tonight)" in capsys.readouterr().err
    assert all(site.live_texts(p) == [] for p in PLATFORMS)
    assert bot(site, "resume") == 0
    assert bot(site, "post", "calls") == 0


def test_a_failed_platform_exits_3_and_the_others_post(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    site.fault("mastodon", status=422)
    assert bot(site, "post", "calls") == 3
    out = capsys.readouterr().out
    assert "mastodon/main calls/first failed: rejected" in out
    assert len(site.live_texts("x")) == 1 and len(site.live_texts("bluesky")) == 1
    assert site.live_texts("mastodon") == []


def test_retract_deletes_every_part_everywhere_and_records_it(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bot(site, "post", "calls", "thread") == 0
    assert all(len(site.live_texts(p)) == 2 for p in PLATFORMS)
    capsys.readouterr()
    assert bot(site, "retract", "calls", "thread") == 0
    out = capsys.readouterr().out
    assert out.count("retracted: ") == 6
    for platform in PLATFORMS:
        assert site.live_texts(platform) == []
        assert len(site.state(platform)) == 2  # deleted posts stay in the state, marked
    assert bot(site, "status", "--json") == 0
    status = json.loads(capsys.readouterr().out)
    [calls] = [q for q in status["queues"] if q["queue"] == "calls"]
    assert calls["retracted"] == 1 and calls["posted"] == 0


def test_status_tells_what_was_posted_and_what_is_next(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bot(site, "post", "calls") == 0
    capsys.readouterr()
    assert bot(site, "status", "--json") == 0
    status = json.loads(capsys.readouterr().out)
    [calls] = [q for q in status["queues"] if q["queue"] == "calls"]
    assert calls["posted"] == 1 and calls["failed"] == 0 and calls["next_post"] == "second"
    assert status["paused"] is False
    assert {(a["platform"], a["healthy"]) for a in status["accounts"]} == {(p, True) for p in PLATFORMS}
    assert all(a["last_post"] for a in status["accounts"])
    assert bot(site, "status") == 0
    assert "calls: active" in capsys.readouterr().out


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_post_killed_between_claim_and_confirm_is_reconciled_on_restart(site: Site, platform: str) -> None:
    # The platform applies the write 1.5 s after the request arrives; the process dies before.
    site.fault(platform, latency_ms=1500)
    command = ("post", "calls", "first", "--platform", platform)
    proc = subprocess.Popen(
        bot_argv(*command, config=site.config),
        cwd=site.root,
        env=bot_env({**os.environ, **site.env}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ledger = open_ledger(site.database)
    try:

        def attempted() -> bool:
            rows = ledger.deliveries_for_post("calls", "first")
            return any(r.attempts > 0 for r in rows)

        assert wait_for(attempted, timeout=20)
        # Killed once the request reached the server (Bluesky signs in and loads its SDK first):
        # the server applies the write 1.5 s later all the same.
        assert wait_for(lambda: not site.sandbox.servers[platform].faults, timeout=20)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        [row] = ledger.deliveries_for_post("calls", "first")
        assert row.state == "claimed"
    finally:
        ledger.close()
    assert wait_for(lambda: len(site.live_texts(platform)) == 1, timeout=5)  # the write landed after all
    # Restarted at once: the dead process's claim is released and reconciled, not sent again.
    again = site_bot(site, *command, timeout=60)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "reconciled" in again.stderr and "calls/first posted: http" in again.stdout
    assert site.live_texts(platform) == ["First ask: drop the contracts. #NoTechForICE"]
