"""The daemon against the emulators: slots, grace, outages, limits, live edits, pause, SIGTERM, alerts."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from bot.daemon.runtime import Runtime, utc_now
from bot.daemon.scheduler import Daemon
from bot.delivery.gate import LiveGate
from bot.delivery.pool import DeliveryPool
from bot.ledger.deliveries import open_ledger
from bot.ledger.slotbook import SlotBook
from bot.planning.slots import slots_between
from tests.fakeplatform import FakeGate
from tests.sandboxsite import PLATFORMS, Site, wait_for

REPO = Path(__file__).resolve().parent.parent


def at_queue(*posts: str, when: datetime | None = None) -> str:
    """A queue with one `at` slot (default: a minute ago) and the given posts."""
    moment = (when or utc_now() - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S")
    body = "".join(f'  - id: p{i + 1}\n    text: "{text}"\n' for i, text in enumerate(posts))
    return f'schedule: {{at: ["{moment}"]}}\nposts:\n{body}'


@pytest.fixture
def opened() -> Iterator[list[Runtime]]:
    runtimes: list[Runtime] = []
    yield runtimes
    for rt in runtimes:
        rt.close()


def daemon_for(
    site: Site, opened: list[Runtime], *, now: Any = utc_now, gate: Any = None, worker: str = "test-worker"
) -> Daemon:
    rt = Runtime(site.config, site.env, now=now)
    opened.append(rt)
    return Daemon(rt, gate=gate or FakeGate(), worker=worker)


def test_a_missed_slot_after_downtime_fires_once_and_older_ones_are_logged_missed(
    site: Site, opened: list[Runtime], caplog: pytest.LogCaptureFixture
) -> None:
    site.write_queue(
        "hourly", 'schedule: {every: 1h}\nstart: 2026-01-01\nposts:\n  - {id: a, text: "Hourly ask"}\n'
    )
    daemon = daemon_for(site, opened)
    queue = daemon.rt.queue("hourly")
    assert queue is not None
    now = utc_now()
    # The daemon was down for the last three hours: the ledger's last slot is from before.
    slots = slots_between(queue, now - timedelta(hours=4), now)
    down_at = slots[-4]
    daemon.rt.ledger.slots.claim_slot(
        "hourly", down_at.name, cycle=1, post_id="zzz", worker="old", now=down_at.fire_at
    )
    with caplog.at_level(logging.INFO, logger="bot"):
        fired = daemon.tick()
        daemon.wait_idle(30)
        assert [f.slot for f in fired] == [slots[-1].name]
        assert daemon.tick() == []  # a second pass never fires it again
        daemon.wait_idle(30)
    missed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("missed slot")]
    assert len(missed) == 2
    for platform in PLATFORMS:
        assert len(site.live_texts(platform)) == 1


def test_an_outage_on_one_platform_delays_none_of_the_others(site: Site, opened: list[Runtime]) -> None:
    site.write_queue("calls", at_queue("Outage day ask"))
    site.fault("mastodon", latency_ms=3000)
    daemon = daemon_for(site, opened)
    started = time.monotonic()
    assert len(daemon.tick()) == 1
    ledger = daemon.rt.ledger

    def posted(platform: str) -> bool:
        return any(
            r.state == "posted" and r.key.platform == platform
            for r in ledger.deliveries_for_post("calls", "p1")
        )

    assert wait_for(lambda: posted("x") and posted("bluesky"), timeout=2.5)
    assert not posted("mastodon")  # still hanging: the others did not wait for it
    assert time.monotonic() - started < 2.8
    assert daemon.wait_idle(30)
    assert posted("mastodon")
    assert all(len(site.live_texts(p)) == 1 for p in PLATFORMS)


def test_a_platform_that_stays_down_fails_after_its_retries_while_the_others_post(
    site: Site, opened: list[Runtime]
) -> None:
    site.write_queue("calls", at_queue("Down day ask"))
    site.fault("bluesky", status=503, times=100)
    gate = FakeGate()
    daemon = daemon_for(site, opened, gate=gate)
    daemon.tick()
    daemon.wait_idle(30)
    outcomes = {r.job.platform: r.outcome for r in daemon.results}
    assert outcomes == {"x": "posted", "bluesky": "failed", "mastodon": "posted"}
    assert gate.waits == [2.0, 4.0, 8.0, 16.0]  # the backoff, never slept for real
    assert site.live_texts("bluesky") == []


def test_account_limits_hold_a_post_until_the_gap_has_passed(site: Site, opened: list[Runtime]) -> None:
    site.limits = "{min_gap: 20m}"
    site.write_config()
    site.write_queue("calls", at_queue("Ask from calls"))
    site.write_queue("events", at_queue("Ask from events"))
    daemon = daemon_for(site, opened)
    assert len(daemon.tick()) == 2
    daemon.wait_idle(30)
    assert len(site.live_texts("x")) == 1
    assert len(site.live_texts("mastodon")) == 2  # no limit there
    from bot.commands.status import build_status

    [x] = [a for a in build_status(daemon.rt)["accounts"] if a["platform"] == "x"]
    assert x["waiting_until"] is not None
    # 21 minutes later (a new process: the lease of the held claim was already given back).
    later = utc_now() + timedelta(minutes=21)
    again = daemon_for(site, opened, now=lambda: later)
    again.tick()
    again.wait_idle(30)
    assert sorted(site.live_texts("x")) == ["Ask from calls #NoTechForICE", "Ask from events #NoTechForICE"]
    assert len(site.live_texts("mastodon")) == 2


def test_a_live_edit_that_breaks_a_file_keeps_the_last_good_version_until_fixed(
    site: Site, opened: list[Runtime], caplog: pytest.LogCaptureFixture
) -> None:
    start = time.time() - 100
    path = site.write_queue("calls", at_queue("Old text"), mtime=start)
    daemon = daemon_for(site, opened)
    queue = daemon.rt.queue("calls")
    assert queue is not None and queue.posts[0].parts[0].text == "Old text"
    path.write_text(at_queue("New text") + "  - id: [broken\n")
    os.utime(path, (start + 10, start + 10))
    with caplog.at_level(logging.INFO, logger="bot"):
        daemon.tick()
        daemon.wait_idle(30)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert f"{path}:6: YAML syntax error" in errors[0]
    assert site.live_texts("x") == ["Old text #NoTechForICE"]  # the last good version ran
    path.write_text(at_queue("Fixed text", "Another"))
    os.utime(path, (start + 20, start + 20))
    daemon.tick()
    daemon.wait_idle(30)
    queue = daemon.rt.queue("calls")
    assert queue is not None and [p.parts[0].text for p in queue.posts] == ["Fixed text", "Another"]


def test_a_pause_during_a_fan_out_stops_the_waiting_delivery_and_resume_finishes_it(
    site: Site, opened: list[Runtime]
) -> None:
    site.write_queue("calls", at_queue("Pause day ask"))
    site.fault("mastodon", status=503, times=100)
    rt = Runtime(site.config, site.env)
    opened.append(rt)
    stop = threading.Event()
    daemon = Daemon(rt, stop=stop, gate=LiveGate(rt.ledger, stop, refresh=0.1, step=0.05), worker="w")
    daemon.tick()
    assert wait_for(
        lambda: len(site.live_texts("x")) == 1 and len(site.live_texts("bluesky")) == 1, timeout=5
    )
    paused_at = time.monotonic()
    rt.ledger.shared.pause("vigil", rt.now())
    assert daemon.wait_idle(5)
    assert time.monotonic() - paused_at < 1.5  # the 2 s backoff was cut short
    [masto] = [r for r in daemon.results if r.job.platform == "mastodon"]
    assert masto.outcome == "deferred" and masto.error == "paused"
    assert daemon.tick() == []  # paused: nothing new starts
    site.sandbox.servers["mastodon"].faults.clear()
    rt.ledger.shared.resume(rt.now())
    time.sleep(0.15)
    daemon.tick()
    assert daemon.wait_idle(10)
    assert site.live_texts("mastodon") == ["Pause day ask #NoTechForICE"]
    assert all(len(site.live_texts(p)) == 1 for p in PLATFORMS)


class Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_alerts_reach_the_webhook_without_secrets(site: Site, opened: list[Runtime]) -> None:
    server = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    Hook.received = []
    try:
        site.webhook = f"http://127.0.0.1:{server.server_address[1]}/hook/t0ken"
        site.write_config()
        site.write_queue("calls", at_queue("Rejected ask"))
        site.fault("mastodon", status=422)
        daemon = daemon_for(site, opened)
        daemon.tick()
        daemon.wait_idle(30)
        daemon.rt.alert.close()
        assert wait_for(lambda: len(Hook.received) >= 1, timeout=5)
    finally:
        server.shutdown()
        server.server_close()
    [alert] = Hook.received
    assert alert["kind"] == "rejected" and "mastodon/main" in alert["text"] and alert["campaign"] == "Test"
    dumped = json.dumps(Hook.received)
    assert not any(secret in dumped for secret in site.env.values() if len(secret) > 8)


def test_sigterm_mid_fan_out_exits_0_and_nothing_is_lost_or_doubled(site: Site) -> None:
    site.write_queue("calls", at_queue("Shutdown day ask"))
    site.fault("mastodon", latency_ms=2500)
    env = {**os.environ, **site.env}
    command = [sys.executable, "-m", "bot", "--config", str(site.config), "run"]
    proc = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    ledger = open_ledger(site.database)
    try:

        def mastodon_in_flight() -> bool:
            rows = ledger.deliveries_for_post("calls", "p1")
            return any(r.key.platform == "mastodon" and r.attempts > 0 for r in rows)

        assert wait_for(mastodon_in_flight, timeout=20)
        sent_at = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, output
        assert time.monotonic() - sent_at < 25
        states = {r.key.platform: r.state for r in ledger.deliveries_for_post("calls", "p1")}
        assert states == {"x": "posted", "bluesky": "posted", "mastodon": "posted"}, output
    finally:
        if proc.poll() is None:
            proc.kill()
        ledger.close()
    # A restart finds nothing left to do, and doubles nothing.
    again = subprocess.run(
        [*command, "--once"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 0, again.stderr
    assert all(site.live_texts(p) == ["Shutdown day ask #NoTechForICE"] for p in PLATFORMS)


def test_run_once_fires_what_is_due_and_exits(site: Site) -> None:
    site.write_queue("calls", at_queue("Once ask", when=datetime.now(UTC) - timedelta(minutes=5)))
    env = {**os.environ, **site.env}
    result = subprocess.run(
        [sys.executable, "-m", "bot", "--config", str(site.config), "run", "--once"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "slot fired calls" in result.stderr and result.stderr.count(" posted ") == 3
    assert all(site.live_texts(p) == ["Once ask #NoTechForICE"] for p in PLATFORMS)


def test_a_refused_account_is_marked_unhealthy_held_and_healthy_again_after_a_fix(
    site: Site, opened: list[Runtime]
) -> None:
    good = site.env["MASTODON_ACCESS_TOKEN"]
    site.env["MASTODON_ACCESS_TOKEN"] = "revoked-token"
    site.write_queue("calls", at_queue("First", "Second"))
    daemon = daemon_for(site, opened)
    daemon.tick()
    daemon.wait_idle(30)
    outcomes = {r.job.platform: (r.outcome, r.error) for r in daemon.results}
    assert outcomes["mastodon"][0] == "deferred" and "held: authentication refused" in (
        outcomes["mastodon"][1] or ""
    )
    assert outcomes["x"][0] == outcomes["bluesky"][0] == "posted"
    [health] = daemon.rt.ledger.shared.account_health()
    assert (health.platform, health.healthy) == ("mastodon", False)
    # The next slot holds the account's delivery (a released claim, nothing spent), the others post.
    site.write_queue("calls", at_queue("First", "Second", when=utc_now() - timedelta(seconds=20)))
    os.utime(site.root / "content" / "calls.yaml", (time.time() + 5, time.time() + 5))
    daemon.tick()
    daemon.wait_idle(30)
    rows = daemon.rt.ledger.deliveries_for_post("calls", "p2")
    [second] = [r for r in rows if r.key.platform == "mastodon"]
    assert second.state == "claimed" and second.attempts == 0  # a released claim: nothing spent
    # Staff fix the token: the config change makes the daemon probe the account again.
    site.env["MASTODON_ACCESS_TOKEN"] = good
    os.utime(site.config, (time.time() + 10, time.time() + 10))
    daemon.tick()
    daemon.wait_idle(30)
    assert wait_for(lambda: all(h.healthy for h in daemon.rt.ledger.shared.account_health()), timeout=5)
    # The next tick sends what was held, each once.
    daemon.tick()
    daemon.wait_idle(30)
    assert sorted(site.live_texts("mastodon")) == ["First #NoTechForICE", "Second #NoTechForICE"]


def test_a_tick_reads_account_health_once_for_all_its_slots(site: Site, opened: list[Runtime]) -> None:
    # Once per tick, not once per fired slot: a read per post (bench/overhead.py).
    for n in range(4):
        site.write_queue(f"calls{n}", at_queue(f"Ask {n}"))
    daemon = daemon_for(site, opened)
    shared = daemon.rt.ledger.shared
    reads: list[int] = []
    real = shared.refused

    def counted() -> dict[tuple[str, str], str]:
        reads.append(1)
        return real()

    shared.refused = counted  # type: ignore[method-assign]
    fired = daemon.tick()
    daemon.wait_idle(30)
    assert len(fired) == 4 and all(r.outcome == "posted" for r in daemon.results)
    assert len(reads) == 3  # the slots, the resumed deliveries, the probe: none per slot


def test_a_read_only_x_app_makes_the_account_unhealthy_and_holds_its_posts(
    site: Site, opened: list[Runtime]
) -> None:
    """A token made while the X app was read-only passes users/me, then every post is 403
    oauth1-permissions: the account's failure, not the post's."""
    site.settings("x", read_only=["main"])
    site.write_queue("calls", at_queue("First", "Second"))
    daemon = daemon_for(site, opened)
    daemon.tick()
    daemon.wait_idle(30)
    outcomes = {r.job.platform: (r.outcome, r.error or "") for r in daemon.results}
    assert outcomes["x"][0] == "deferred" and "Read and write" in outcomes["x"][1]
    assert outcomes["bluesky"][0] == outcomes["mastodon"][0] == "posted"
    [health] = daemon.rt.ledger.shared.account_health()
    assert (health.platform, health.healthy) == ("x", False)
    # The probe after a config change still sees a read-only token (x-access-level: read).
    os.utime(site.config, (time.time() + 10, time.time() + 10))
    daemon.tick()
    daemon.wait_idle(30)
    assert not any(h.healthy for h in daemon.rt.ledger.shared.account_health())
    # Staff regenerate the token with Read and write: healthy again at the next probe.
    site.settings("x", read_only=[])
    os.utime(site.config, (time.time() + 20, time.time() + 20))
    daemon.tick()
    daemon.wait_idle(30)
    assert wait_for(lambda: all(h.healthy for h in daemon.rt.ledger.shared.account_health()), timeout=5)
    daemon.tick()
    daemon.wait_idle(30)
    assert site.live_texts("x") == ["First #NoTechForICE"]


def test_two_workers_on_one_database_fire_a_slot_once(site: Site, opened: list[Runtime]) -> None:
    site.write_queue("calls", at_queue("Two workers ask"))
    first, second = daemon_for(site, opened), daemon_for(site, opened, worker="other-worker")
    barrier = threading.Barrier(2)
    fired: list[int] = []

    def tick(daemon: Daemon) -> None:
        barrier.wait()
        fired.append(len(daemon.tick()))
        daemon.wait_idle(30)

    threads = [threading.Thread(target=tick, args=(d,)) for d in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(fired) == [0, 1]
    assert all(site.live_texts(p) == ["Two workers ask #NoTechForICE"] for p in PLATFORMS)


class Dying(BaseException):
    """The process dies here, as under SIGKILL: nothing after this line runs."""


class DyingPool(DeliveryPool):
    def dispatch(self, job: Any, owed: Any = None) -> None:
        raise Dying


def dies_after_firing(rt: Runtime) -> Daemon:
    """A daemon whose process dies right after it decided a slot, before any delivery starts."""
    daemon = Daemon(rt, gate=FakeGate(), worker="host:1:dead")
    daemon.deliveries = DyingPool(rt, daemon.courier)
    return daemon


def test_a_worker_that_dies_right_after_firing_a_slot_leaves_every_target_to_resume(
    site: Site, opened: list[Runtime]
) -> None:
    site.write_queue("calls", at_queue("Crash day ask"))
    rt = Runtime(site.config, site.env)
    opened.append(rt)
    with pytest.raises(Dying):
        dies_after_firing(rt).tick()
    # The next worker owes nothing to the dead one's memory: the ledger lists every target.
    survivor = daemon_for(site, opened)
    assert survivor.tick() == []  # the slot was decided: it never fires twice
    assert survivor.wait_idle(30)
    assert sorted(r.job.platform for r in survivor.results if r.outcome == "posted") == sorted(PLATFORMS)
    assert all(site.live_texts(p) == ["Crash day ask #NoTechForICE"] for p in PLATFORMS)


def test_claims_of_a_worker_gone_from_this_host_are_resumed_without_waiting_out_the_lease(
    site: Site, opened: list[Runtime]
) -> None:
    site.write_queue("calls", at_queue("Killed worker ask"))
    rt = Runtime(site.config, site.env)
    opened.append(rt)
    with pytest.raises(Dying):
        dies_after_firing(rt).tick()
    # The dead worker had taken one of them (a 90 s lease) before it was killed.
    [row, *_] = rt.ledger.unconfirmed_deliveries()
    held = rt.ledger.claim_delivery(row.key, "host:1:dead", rt.now(), timedelta(seconds=90), lambda: "n")
    assert held is not None
    alive = Daemon(rt, gate=FakeGate(), worker="w-alive", died=lambda worker: False)
    alive.tick()
    assert alive.wait_idle(30)
    assert len(alive.results) == 2  # the held one waits for its lease: its worker may be alive
    knows = Daemon(rt, gate=FakeGate(), worker="w-knows", died=lambda worker: worker == "host:1:dead")
    knows.tick()
    assert knows.wait_idle(30)
    assert [r.job.platform for r in knows.results] == [row.key.platform]
    assert all(site.live_texts(p) == ["Killed worker ask #NoTechForICE"] for p in PLATFORMS)


def test_monitoring_streams_of_a_worker_gone_from_this_host_pass_on_at_once(
    site: Site, opened: list[Runtime]
) -> None:
    rt = Runtime(site.config, site.env)
    opened.append(rt)
    streams = rt.ledger.leases
    lease = timedelta(minutes=5)
    assert streams.acquire_lease("monitor:x:hashtags", "host:1:dead", lease)
    assert streams.acquire_lease("monitor:mastodon:hashtags", "host:2:alive", lease)
    Daemon(rt, gate=FakeGate(), worker="w", died=lambda worker: worker == "host:1:dead").tick()
    assert streams.acquire_lease("monitor:x:hashtags", "w", lease)
    assert not streams.acquire_lease("monitor:mastodon:hashtags", "w", lease)


def test_a_daemon_killed_mid_fan_out_is_reconciled_by_the_next_start(site: Site) -> None:
    site.write_queue("calls", at_queue("Killed day ask"))
    site.fault("bluesky", latency_ms=1500)
    env = {**os.environ, **site.env}
    command = [sys.executable, "-m", "bot", "--config", str(site.config), "run"]
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ledger = open_ledger(site.database)
    try:

        def bluesky_in_flight() -> bool:
            rows = ledger.deliveries_for_post("calls", "p1")
            attempted = any(r.key.platform == "bluesky" and r.attempts > 0 for r in rows)
            return attempted and not site.sandbox.servers["bluesky"].faults  # the request arrived

        assert wait_for(bluesky_in_flight, timeout=20)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        # The server goes on with the write the dead daemon sent: it lands after the latency.
        assert wait_for(lambda: site.live_texts("bluesky") != [], timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        ledger.close()
    again = subprocess.run(
        [*command, "--once"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 0, again.stderr
    assert all(site.live_texts(p) == ["Killed day ask #NoTechForICE"] for p in PLATFORMS), again.stderr
    ledger = open_ledger(site.database)
    try:
        assert {r.state for r in ledger.deliveries_for_post("calls", "p1")} == {"posted"}
    finally:
        ledger.close()


def test_the_sandbox_rehearsal_posts_the_demo_queue_everywhere_with_no_real_secrets(
    site: Site, tmp_path: Path, opened: list[Runtime]
) -> None:
    from bot.campaign.config import load_config
    from bot.daemon.rehearsal import demo_queue, point_at_sandbox

    sandbox = site.sandbox
    shipped = REPO / "config.yaml"
    base, _ = load_config(shipped, {})  # the real secrets are absent
    assert base.platforms["x"].accounts[0].missing
    database = f"sqlite:///{tmp_path / 'sandbox.sqlite3'}"
    demo = demo_queue(base, utc_now() - timedelta(seconds=5))
    rt = Runtime(
        shipped,
        {},
        adjust=lambda config: point_at_sandbox(config, sandbox, database),
        extra_queues=(demo,),
        config_warnings=False,
    )
    opened.append(rt)
    assert all(not a.missing for p in rt.config.enabled_platforms() for a in rt.config.accounts(p))
    daemon = Daemon(rt, gate=FakeGate(), worker="rehearsal")
    fired = [f for f in daemon.tick() if f.queue == "sandbox-demo"]
    daemon.wait_idle(30)
    assert len(fired) == 1
    for platform in PLATFORMS:
        texts = [p["text"] for p in site.state(platform)]
        assert any("(sandbox demo " in t for t in texts), (platform, texts)


def test_an_account_limit_holds_across_workers_on_one_database(site: Site, opened: list[Runtime]) -> None:
    site.limits = "{min_gap: 20m}"
    site.write_config()
    site.fault("x", latency_ms=1500)  # the first X post is still on the wire when the second is due
    site.write_queue("calls", at_queue("Ask from calls"))
    first = daemon_for(site, opened)
    assert len(first.tick()) == 1
    assert wait_for(lambda: any(r.attempts for r in first.rt.ledger.deliveries_for_post("calls", "p1")))
    site.write_queue("events", at_queue("Ask from events"))
    second = daemon_for(site, opened)
    second.worker = second.courier.worker = "other-worker"
    assert [f.queue for f in second.tick()] == ["events"]
    assert first.wait_idle(30) and second.wait_idle(30)
    assert site.live_texts("x") == ["Ask from calls #NoTechForICE"]  # 20 minutes apart, whoever sends
    assert len(site.live_texts("mastodon")) == 2  # no limit there


class StaleSlots(SlotBook):
    """Its first history read misses the newest fired slot: read just before another worker's
    slot committed, as happens when two workers decide two slots of one queue at once."""

    stale = True

    def sent_posts(self, queue: str) -> list[tuple[int, str]]:
        history = super().sent_posts(queue)
        if self.stale:
            self.stale = False
            return history[:-1]
        return history


def test_a_slot_whose_post_another_worker_just_sent_sends_the_next_post(
    site: Site, opened: list[Runtime]
) -> None:
    site.write_queue("calls", at_queue("First ask", "Second ask"))
    ledger = open_ledger(site.database)
    ledger.slots = StaleSlots(ledger.engine)
    ledger.slots.claim_slot("calls", "manual:elsewhere", cycle=1, post_id="p1", worker="other", now=utc_now())
    rt = Runtime(site.config, site.env, ledger=ledger)
    opened.append(rt)
    daemon = Daemon(rt, gate=FakeGate(), worker="w")
    assert [f.post_id for f in daemon.tick()] == ["p2"]  # not p1 a second time: the queue keeps its pace
    assert daemon.wait_idle(30)
    assert site.live_texts("x") == ["Second ask #NoTechForICE"]


def test_a_dead_workers_request_still_in_the_server_is_found_not_sent_again(
    site: Site, opened: list[Runtime]
) -> None:
    """GoToSocial ignores Idempotency-Key: only waiting for the request to land avoids a double."""
    from dataclasses import replace

    from bot.delivery.jobs import build_job

    site.settings("mastodon", idempotency=False)
    site.write_queue("calls", at_queue("Orphan ask"))
    offset = timedelta(0)
    rt = Runtime(site.config, site.env, now=lambda: utc_now() + offset)
    opened.append(rt)
    with pytest.raises(Dying):
        dies_after_firing(rt).tick()
    # The dead worker had sent its Mastodon post; the server is still working on it (2 s).
    queue = rt.queue("calls")
    assert queue is not None
    account = rt.clients.account("mastodon", "main")
    job = build_job(rt.config, queue, queue.posts[0], 1, account)
    claim = rt.ledger.claim_delivery(job.key(0), "host:1:dead", rt.now(), timedelta(seconds=90), lambda: "n")
    assert claim is not None
    message = replace(job.parts[0], nonce=claim.nonce)
    assert rt.ledger.record_attempt(job.key(0), "host:1:dead", message.text, rt.now())
    site.fault("mastodon", latency_ms=2000)
    orphan = threading.Thread(target=lambda: rt.clients("mastodon", "main").publish(message))
    orphan.start()
    time.sleep(0.2)  # the request is in the server
    survivor = Daemon(rt, gate=FakeGate(), worker="w", died=lambda worker: worker == "host:1:dead")
    survivor.tick()
    assert survivor.wait_idle(30)
    orphan.join(10)
    assert site.live_texts("mastodon") == ["Orphan ask #NoTechForICE"]
    # Once the dead worker's call could have landed, its claim is reconciled: found, not resent.
    # 31 s later by the worker's clock, and by the database's, where the wait holds the claim
    # (unless a slow first tick found the post already).
    offset = timedelta(seconds=31)
    rt.ledger.renew_delivery(job.key(0), "w", rt.now(), timedelta(seconds=-1))
    survivor.tick()
    assert survivor.wait_idle(30)
    assert site.live_texts("mastodon") == ["Orphan ask #NoTechForICE"]
    [row] = [r for r in rt.ledger.deliveries_for_post("calls", "p1") if r.key.platform == "mastodon"]
    assert row.state == "posted"
    assert all(len(site.live_texts(p)) == 1 for p in PLATFORMS)
