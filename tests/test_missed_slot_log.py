"""The log line of a slot skipped after downtime says why: past the grace, or a later slot fires."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from bot.daemon.runtime import Runtime, utc_now
from bot.daemon.scheduler import Daemon
from tests.cli import site_bot
from tests.fakeplatform import FakeGate
from tests.sandboxsite import Site


def missed_lines(site: Site, caplog: pytest.LogCaptureFixture) -> list[str]:
    rt = Runtime(site.config, site.env)
    try:
        daemon = Daemon(rt, gate=FakeGate(), worker="test-worker")
        with caplog.at_level(logging.INFO, logger="bot"):
            daemon.tick()
            daemon.wait_idle(30)
    finally:
        rt.close()
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("missed slot")]


def queue_started(minutes_ago: int) -> str:
    start = (utc_now() - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M")
    return f'schedule: {{every: 10m}}\nstart: "{start}"\nposts:\n  - {{id: a, text: "Often ask"}}\n'


def test_slots_skipped_within_the_grace_say_a_later_one_fires(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    site.write_queue("often", queue_started(35))  # slots 35, 25, 15 and 5 minutes ago: the last fires
    missed = missed_lines(site, caplog)
    assert len(missed) == 3
    assert all(line.endswith("late, a later slot fires instead") for line in missed), missed


def test_a_new_queue_without_a_start_has_missed_nothing(site: Site) -> None:
    site.write_queue(
        "fast", 'schedule: {every: 1m}\nplatforms: [mastodon]\nposts:\n  - {id: a, text: "Ask"}\n'
    )
    result = site_bot(site, "run", "--once")
    assert result.returncode == 0, result.stderr
    assert "missed" not in result.stderr, result.stderr
    assert (
        "queue fast starts: " in result.stderr and " earlier slots of its schedule not owed" in result.stderr
    )
    assert site.live_texts("mastodon") == ["Ask #NoTechForICE"]  # its latest slot fired, once
