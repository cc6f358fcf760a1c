"""Servers that answer slowly, hugely or badly, through the real SDKs against the emulators.

A slow server drips the answer a byte at a time (`drip_ms`), a huge one sends more than any
real answer (`body_bytes`): every request must end within its total deadline and its size cap,
as our own `Transient` error, whatever the SDK.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from bot.daemon.runtime import Runtime
from bot.daemon.scheduler import Daemon
from bot.delivery.courier import Courier
from bot.delivery.jobs import build_jobs
from bot.delivery.pool import DeliveryPool
from bot.errors import RateLimited, Transient
from bot.monitoring.pacing import backoff
from bot.platforms import Outgoing
from bot.platforms.mastodon_stream import trusted_streaming_base
from bot.platforms.ratelimits import endpoint_of
from bot.platforms.tid import make_tid
from tests.clock import START, Clock
from tests.emulated import Emulated, emulated
from tests.fakeplatform import FakeGate
from tests.sandboxsite import PLATFORMS, POST_PATHS, Site

READ_PATHS = {
    "x": "/2/users/*/mentions",
    "bluesky": "/xrpc/app.bsky.notification.listNotifications",
    "mastodon": "/api/v1/notifications",
}


@pytest.fixture(params=PLATFORMS)
def server(request: pytest.FixtureRequest) -> Iterator[Emulated]:
    with emulated(Emulated, request.param, Clock()) as running:
        yield running


def test_a_server_dripping_its_answer_is_cut_off_at_the_total_deadline(server: Emulated) -> None:
    client = server.open(server.account(), timeout=1.5)
    client.verify()  # a session and an identity first: the drip is on the post itself
    server.fault(method="POST", path=POST_PATHS[server.platform], drip_ms=400)
    started = time.monotonic()
    with pytest.raises(Transient):
        client.publish(Outgoing(text="Slow answers #NoTechForICE", nonce=make_tid(START)))
    assert time.monotonic() - started < 5  # one byte every 0.4 s would take minutes


def test_a_read_dripping_its_answer_is_cut_off_too(server: Emulated) -> None:
    client = server.open(server.account(), timeout=1.5)
    client.identity()
    server.audience("mention", "a mention, so that the answer is long enough to drip")
    server.fault(method="GET", path=READ_PATHS[server.platform], drip_ms=400)
    started = time.monotonic()
    with pytest.raises(Transient):
        client.read_notifications(None, START - timedelta(hours=1))
    assert time.monotonic() - started < 5


def test_a_huge_answer_is_refused_before_it_is_held(server: Emulated) -> None:
    client = server.open(server.account(), timeout=10)
    client.identity()
    server.fault(method="GET", path=READ_PATHS[server.platform], body_bytes=64 * 1024 * 1024)
    with pytest.raises(Transient):
        client.read_notifications(None, START - timedelta(hours=1))


QUEUE = """\
    schedule: {every: 1h}
    posts:
      - {id: solo, text: "Drop the contracts."}
      - {id: two, text: "Cancel the contracts."}
      - {id: three, text: "End the contracts."}
"""


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_worker_keeps_its_claim_while_a_slow_publish_is_within_its_deadline(
    site: Site, tmp_path: Path, platform: str
) -> None:
    site.write_queue("calls", QUEUE)
    rt = Runtime(site.config, site.env)
    try:
        queue = rt.queue("calls")
        assert queue is not None
        [job] = build_jobs(rt.config, queue, queue.posts[0], 1, [platform])
        client = rt.clients(platform, "main")
        client.verify()
        site.fault(platform, latency_ms=2500)  # slower than the lease below, within the deadline
        courier = Courier(
            ledger=rt.ledger,
            now=rt.now,
            gate=FakeGate(),
            worker="w1",
            lease=timedelta(seconds=1),
            renew_every=0.2,
        )
        taken: list[object] = []

        def another_worker() -> None:
            time.sleep(1.8)
            taken.append(
                rt.ledger.claim_delivery(job.key(0), "w2", rt.now(), timedelta(seconds=1), lambda: "x")
            )

        rival = threading.Thread(target=another_worker)
        rival.start()
        result = courier.deliver(job, client)
        rival.join()
        assert taken == [None]  # the claim was still w1's
        assert result.outcome == "posted", result.line()
        assert len(site.live_texts(platform)) == 1
    finally:
        rt.close()


# -- the Mastodon streaming host ---------------------------------------------------------------


def test_a_streaming_host_the_instance_names_elsewhere_never_gets_the_token() -> None:
    with (
        emulated(Emulated, "mastodon", Clock()) as instance,
        emulated(Emulated, "mastodon", Clock()) as elsewhere,
    ):
        # The instance's documents name another host (localhost is not 127.0.0.1) over ws://.
        evil = f"ws://localhost:{elsewhere.server.server_address[1]}"
        v1 = requests.get(f"{instance.url}/api/v1/instance", timeout=5).json()
        v2 = requests.get(f"{instance.url}/api/v2/instance", timeout=5).json()
        v1["urls"]["streaming_api"] = evil
        v2["configuration"]["urls"]["streaming"] = evil
        instance.fault(method="GET", path="/api/v1/instance*", body=json.dumps(v1), times=100)
        instance.fault(method="GET", path="/api/v2/instance*", body=json.dumps(v2), times=100)
        elsewhere.fault(method="GET", path="/api/v1/streaming*", status=500, times=1000)
        client = instance.open(instance.account())
        stream = client.open_hashtag_stream("NoTechForICE", lambda post: None)  # type: ignore[attr-defined]
        if stream is not None:
            time.sleep(1)
            stream.close()
        assert stream is None  # polled instead
        assert elsewhere.server.faults[0].times == 1000  # not one request reached that host


@pytest.mark.parametrize(
    ("configured", "named", "trusted"),
    [
        ("https://mastodon.social", "wss://streaming.mastodon.social", "https://streaming.mastodon.social"),
        ("https://mastodon.social", "https://mastodon.social", "https://mastodon.social"),
        ("https://mastodon.social", "ws://mastodon.social", None),  # plain text, when https is required
        ("https://mastodon.social", "wss://evil.example", None),
        ("https://mastodon.social", "wss://mastodon.social.evil.example", None),
        ("https://mastodon.social", "ftp://mastodon.social", None),
        ("http://127.0.0.1:8803", "ws://127.0.0.1:8803", "http://127.0.0.1:8803"),
        ("http://127.0.0.1:8803", "ws://sub.127.0.0.1", None),  # a subdomain only over TLS
    ],
)
def test_only_the_configured_host_or_its_subdomains_over_tls_may_stream(
    configured: str, named: str, trusted: str | None
) -> None:
    assert trusted_streaming_base(configured, named) == trusted


# -- malformed answers --------------------------------------------------------------------------

MALFORMED_ANSWERS = {
    "x": ['{"data": {"id": null}}', '{"data": 7}', '{"data": {"id": "12'],
    "bluesky": ['{"uri": "at://did:plc:x/app.bsky.feed.post/3k', '{"uri": null, "cid": null}', "[]"],
    "mastodon": ['{"id": null}', "[1, 2]", '{"id": "1'],
}


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_malformed_answer_to_a_post_is_reconciled_never_recorded_as_is_nor_left_claimed(
    site: Site, platform: str
) -> None:
    site.write_queue("calls", QUEUE)
    rt = Runtime(site.config, site.env)
    try:
        queue = rt.queue("calls")
        assert queue is not None
        client = rt.clients(platform, "main")
        client.verify()
        for index, answer in enumerate(MALFORMED_ANSWERS[platform]):
            [job] = build_jobs(rt.config, queue, queue.posts[index], 1, [platform])
            site.fault(platform, body=answer)  # the post is made; its answer is garbage
            result = Courier(ledger=rt.ledger, now=rt.now, gate=FakeGate(), worker="w1").deliver(job, client)
            assert result.outcome == "posted", (answer, result.line())
            row = rt.ledger.get_delivery(job.key(0))
            assert row is not None and row.state == "posted"
            assert row.remote_id == site.state(platform)[-1]["id"]  # the real id, found by looking
    finally:
        rt.close()


# -- waits a server names ----------------------------------------------------------------------


@pytest.mark.parametrize("wait", ["inf", "1e300", "nan", "-5"])
def test_a_wait_the_server_names_is_clamped_in_posting_and_in_monitoring(server: Emulated, wait: str) -> None:
    client = server.open(server.account(), timeout=5)
    client.identity()
    server.fault(method="POST", path=POST_PATHS[server.platform], status=429, headers={"Retry-After": wait})
    with pytest.raises(RateLimited) as refused:
        client.publish(Outgoing(text="Later #NoTechForICE", nonce=make_tid(START)))
    after = refused.value.retry_after
    assert after is None or 0 <= after <= 24 * 3600
    server.fault(method="GET", path=READ_PATHS[server.platform], status=429, headers={"Retry-After": wait})
    with pytest.raises(RateLimited) as read_refused:
        client.read_notifications(None, START - timedelta(hours=1))
    assert backoff(timedelta(minutes=5), 1, read_refused.value.retry_after) <= timedelta(days=1)


@pytest.mark.parametrize("platform", ["mastodon"])
def test_a_worker_whose_claim_was_taken_over_cannot_fail_the_delivery(site: Site, platform: str) -> None:
    site.write_queue("calls", QUEUE)
    rt = Runtime(site.config, site.env)
    try:
        queue = rt.queue("calls")
        assert queue is not None
        [job] = build_jobs(rt.config, queue, queue.posts[0], 1, [platform])
        client = rt.clients(platform, "main")
        client.verify()
        # A slow refusal, past a lease that is not renewed: meanwhile another worker takes over.
        site.fault(platform, status=422, latency_ms=2500)
        courier = Courier(
            ledger=rt.ledger,
            now=rt.now,
            gate=FakeGate(),
            worker="w1",
            lease=timedelta(seconds=1),
            renew_every=60,
        )
        rival = threading.Timer(
            1.8,
            lambda: rt.ledger.claim_delivery(job.key(0), "w2", rt.now(), timedelta(minutes=5), lambda: "x"),
        )
        rival.start()
        result = courier.deliver(job, client)
        rival.join()
        row = rt.ledger.get_delivery(job.key(0))
        assert row is not None and (row.state, row.claimed_by) == ("claimed", "w2"), (result.line(), row)
    finally:
        rt.close()


# -- growth -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/statuses/01HZX3S8K2V6Q9T4B7N1M5C0RD/context",  # GoToSocial: a ULID
        "/api/v1/statuses/AbC9dEf0GhIjK1lM/context",  # Pleroma: a flake id
        "/api/v1/statuses/117721859949264897/context",  # Mastodon: a snowflake
    ],
)
def test_rate_budgets_keep_one_row_per_endpoint_whatever_the_servers_ids(path: str) -> None:
    assert endpoint_of("GET", f"https://social.example{path}") == "GET /api/v1/statuses/:id/context"
    assert endpoint_of("GET", "https://social.example/api/v1/accounts/verify_credentials").endswith(
        "/verify_credentials"
    )


def test_the_delivery_pool_forgets_finished_jobs(site: Site) -> None:
    site.write_queue("calls", QUEUE)
    rt = Runtime(site.config, site.env)
    pool = DeliveryPool(
        rt, Courier(ledger=rt.ledger, now=rt.now, gate=FakeGate(), worker="w1"), max_workers=2
    )
    try:
        queue = rt.queue("calls")
        assert queue is not None
        for post in queue.posts:
            [job] = build_jobs(rt.config, queue, post, 1, ["mastodon"])
            pool.dispatch(job)
            assert pool.wait_idle(timeout=30)
        assert len(pool.in_flight) == 1  # only the last one, kept until the next dispatch
        assert pool.results.maxlen is not None
    finally:
        pool.shutdown(wait=True)
        rt.close()


# -- clocks -------------------------------------------------------------------------------------


@pytest.mark.parametrize("off", [timedelta(0), timedelta(minutes=3), -timedelta(minutes=3)])
def test_a_worker_whose_clock_is_off_the_databases_says_so_at_start(
    site: Site, off: timedelta, caplog: pytest.LogCaptureFixture
) -> None:
    site.write_queue("calls", QUEUE)
    rt = Runtime(site.config, site.env, now=lambda: datetime.now(UTC) + off)
    try:
        with caplog.at_level(logging.ERROR, logger="bot"):
            Daemon(rt, gate=FakeGate(), worker="w1").start_up()
    finally:
        rt.close()
    warned = [r.getMessage() for r in caplog.records if r.getMessage().startswith("clock:")]
    assert bool(warned) == bool(off), warned
