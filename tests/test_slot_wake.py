"""The daemon wakes at a slot's time instead of waiting for its next regular tick."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from bot.daemon.runtime import Runtime, utc_now
from bot.daemon.scheduler import Daemon
from bot.ledger.database import reading
from bot.ledger.schema import slots
from tests.fakeplatform import FakeGate
from tests.sandboxsite import Site

HOURLY = 'schedule: {every: 1h}\nstart: 2026-01-01\nposts:\n  - {id: a, text: "Hourly ask"}\n'


def daemon_for(site: Site, now: datetime | None = None) -> Daemon:
    clock = (lambda: now) if now is not None else utc_now
    return Daemon(Runtime(site.config, site.env, now=clock), gate=FakeGate(), worker="test-worker")


def test_next_fire_is_the_first_slot_within_the_horizon(site: Site) -> None:
    site.write_queue("hourly", HOURLY)
    half_second_before = datetime(2026, 12, 1, 9, 59, 59, 500_000, tzinfo=UTC)
    daemon = daemon_for(site, half_second_before)
    try:
        assert daemon.next_fire_within(timedelta(seconds=2)) == datetime(2026, 12, 1, 10, tzinfo=UTC)
    finally:
        daemon.rt.close()
    ten_seconds_before = daemon_for(site, datetime(2026, 12, 1, 9, 59, 50, tzinfo=UTC))
    try:
        assert ten_seconds_before.next_fire_within(timedelta(seconds=2)) is None
    finally:
        ten_seconds_before.rt.close()


def test_a_slot_between_ticks_fires_on_time(site: Site) -> None:
    # Slots every second, so at least one falls between two of the 2-second ticks.
    start = utc_now().replace(microsecond=0) + timedelta(seconds=1)
    posts = "".join(f'  - {{id: p{n}, text: "Ask number {n}"}}\n' for n in range(5))
    site.write_queue("fast", f"schedule: {{every: 1s}}\nstart: {start.isoformat()}\nposts:\n{posts}")
    daemon = daemon_for(site)
    runner = threading.Thread(target=daemon.run)
    runner.start()
    try:
        threading.Event().wait(2.6)  # the first tick, then slots at +1 s and +2 s, the second between ticks
    finally:
        daemon.stop.set()
        runner.join(timeout=30)
    with reading(daemon.rt.ledger.engine) as conn:
        rows = conn.execute(
            select(slots.c.slot_name, slots.c.recorded_at).where(slots.c.state == "fired")
        ).all()
    daemon.rt.close()
    late = {
        row.slot_name: (row.recorded_at - datetime.fromisoformat(row.slot_name)).total_seconds()
        for row in rows
    }
    assert len(late) >= 2, late
    assert max(late.values()) < 0.5, late
