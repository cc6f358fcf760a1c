"""Exactly once, on the orchestration side: claims, reconciliation, retries, threads, fan-out.

A real SQLite ledger and a fake platform that fails on cue (tests/fakeplatform.py); then the
same faults against the sandbox emulators with the real SDKs.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.daemon.runtime import Runtime
from bot.delivery.courier import Courier, Job, fan_out
from bot.delivery.jobs import build_jobs
from bot.errors import AuthFailed, RateLimited, Rejected, Transient
from bot.ledger.deliveries import DELIVERY_LEASE, Delivery, Ledger, open_ledger
from bot.platforms import Outgoing
from bot.platforms.tid import make_tid
from bot.retry import RetryPolicy
from tests.clock import Clock
from tests.fakeplatform import FakeClient, FakeGate, Step
from tests.sandboxsite import PLATFORMS, Site


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    led = open_ledger(f"sqlite:///{tmp_path / 'bot.sqlite3'}")
    yield led
    led.close()


def job(*texts: str, platform: str = "mastodon", account: str = "main", post_id: str = "p1") -> Job:
    return Job("calls", post_id, 0, platform, account, tuple(Outgoing(text=t, nonce="") for t in texts))


def courier(ledger: Ledger, clock: Clock, gate: FakeGate | None = None, **kw: object) -> Courier:
    alerts: list[tuple[str, str]] = []
    c = Courier(
        ledger=ledger,
        now=clock,
        gate=gate or FakeGate(clock),
        worker="w1",
        alert=lambda kind, msg: alerts.append((kind, msg)),
        **kw,  # type: ignore[arg-type]
    )
    c.alerts = alerts  # type: ignore[attr-defined]
    return c


def test_a_post_is_sent_once_and_confirmed_with_its_url(ledger: Ledger, clock: Clock) -> None:
    client = FakeClient("mastodon", "main", clock)
    result = courier(ledger, clock).deliver(job("Drop the contracts"), client)
    assert result.outcome == "posted"
    assert result.urls == ("https://mastodon.test/main/1",)
    assert "https://mastodon.test/main/1" in result.line()
    row = ledger.get_delivery(job("x").key(0))
    assert row is not None and row.state == "posted" and row.url == "https://mastodon.test/main/1"
    # Asking again sends nothing.
    again = courier(ledger, clock).deliver(job("Drop the contracts"), client)
    assert again.outcome == "done" and client.live_texts() == ["Drop the contracts"]


def test_a_lost_answer_after_the_write_is_reconciled_not_resent(ledger: Ledger, clock: Clock) -> None:
    client = FakeClient("x", "main", clock, script=[Step(Transient("connection dropped"), applied=True)])
    gate = FakeGate(clock)
    result = courier(ledger, clock, gate).deliver(job("Sign the petition", platform="x"), client)
    assert result.outcome == "posted"
    assert client.live_texts() == ["Sign the petition"]
    assert client.publish_calls == 1 and client.lookups == 1
    assert gate.waits == [2.0]


def test_a_5xx_before_the_write_is_retried_after_a_lookup(ledger: Ledger, clock: Clock) -> None:
    client = FakeClient("bluesky", "main", clock, match_by_nonce=True, script=[Step(Transient("503"))])
    result = courier(ledger, clock).deliver(job("Sign", platform="bluesky"), client)
    assert result.outcome == "posted"
    assert client.live_texts() == ["Sign"] and client.publish_calls == 2 and client.lookups == 1
    # Both calls carried the nonce chosen at claim time.
    assert client.copies[0].message.nonce == ledger.get_delivery(job("x", platform="bluesky").key(0)).nonce  # type: ignore[union-attr]


def test_a_burst_of_429s_waits_as_the_platform_says_without_real_sleeping(
    ledger: Ledger, clock: Clock
) -> None:
    limited = [Step(RateLimited("429", retry_after=30.0)) for _ in range(3)]
    client = FakeClient("x", "main", clock, script=limited)
    gate = FakeGate(clock)
    result = courier(ledger, clock, gate).deliver(job("Call your rep", platform="x"), client)
    assert result.outcome == "posted"
    assert gate.waits == [30.0, 30.0, 30.0]
    assert client.lookups == 0  # a 429 means nothing was written
    assert client.live_texts() == ["Call your rep"]


def test_retries_stop_at_the_bound_and_the_delivery_fails_with_the_message(
    ledger: Ledger, clock: Clock
) -> None:
    client = FakeClient("mastodon", "main", clock, script=[Step(Transient("503 Service Unavailable"))] * 9)
    gate = FakeGate(clock)
    result = courier(ledger, clock, gate, policy=RetryPolicy(max_attempts=4)).deliver(job("Hi"), client)
    assert result.outcome == "failed" and "503 Service Unavailable" in (result.error or "")
    assert client.publish_calls == 4 and gate.waits == [2.0, 4.0, 8.0]
    row = ledger.get_delivery(job("x").key(0))
    assert row is not None and row.state == "failed" and "503" in (row.last_error or "")


def test_a_last_call_that_landed_before_its_5xx_is_found_before_giving_up(
    ledger: Ledger, clock: Clock
) -> None:
    script = [Step(Transient("503")), Step(Transient("503 after the write"), applied=True)]
    client = FakeClient("x", "main", clock, script=script)
    result = courier(ledger, clock, policy=RetryPolicy(max_attempts=2)).deliver(
        job("Hi", platform="x"), client
    )
    assert result.outcome == "posted" and client.live_texts() == ["Hi"]
    row = ledger.get_delivery(job("x", platform="x").key(0))
    assert row is not None and row.state == "posted" and row.remote_id == client.copies[0].published.id


def test_a_reset_past_the_wait_bound_gives_up_at_once(ledger: Ledger, clock: Clock) -> None:
    client = FakeClient("x", "main", clock, script=[Step(RateLimited("429", retry_after=3600.0))])
    gate = FakeGate(clock)
    result = courier(ledger, clock, gate).deliver(job("Hi", platform="x"), client)
    assert result.outcome == "failed" and gate.waits == []


def test_a_rejection_fails_at_once_with_the_platforms_message_and_alerts(
    ledger: Ledger, clock: Clock
) -> None:
    client = FakeClient(
        "bluesky", "main", clock, script=[Step(Rejected("Record/text must not be longer than 300 graphemes"))]
    )
    c = courier(ledger, clock)
    result = c.deliver(job("Too long", platform="bluesky"), client)
    assert result.outcome == "failed" and "300 graphemes" in (result.error or "")
    assert client.publish_calls == 1
    assert [kind for kind, _ in c.alerts] == ["rejected"]  # type: ignore[attr-defined]


def test_a_duplicate_rejection_after_a_lost_answer_is_a_reason_to_look(ledger: Ledger, clock: Clock) -> None:
    # X: the first call landed but its answer was lost; the lookup misses it (X's search lags),
    # the retry is refused as a duplicate; looking again finds it.
    client = FakeClient(
        "x",
        "main",
        clock,
        script=[Step(Transient("timeout"), applied=True), Step(Rejected("403 duplicate content"))],
    )
    real_find = client.find_published
    misses = iter([True])

    def lagging_find(message: Outgoing, since: object) -> object:
        if next(misses, False):
            client.lookups += 1
            return None
        return real_find(message, since)  # type: ignore[arg-type]

    client.find_published = lagging_find  # type: ignore[method-assign,assignment]
    result = courier(ledger, clock).deliver(job("Dup", platform="x"), client)
    assert result.outcome == "posted" and client.live_texts() == ["Dup"]


def test_auth_failure_marks_the_account_unhealthy_once(ledger: Ledger, clock: Clock) -> None:
    client = FakeClient("x", "main", clock, script=[Step(AuthFailed("401 Unauthorized"))] * 2)
    c = courier(ledger, clock)
    assert c.deliver(job("a", platform="x", post_id="a"), client).outcome == "deferred"
    assert c.deliver(job("b", platform="x", post_id="b"), client).outcome == "deferred"
    # Held, never failed: each claim is given back, unconfirmed, for when the account is healthy.
    rows = [ledger.get_delivery(job(t, platform="x", post_id=t).key(0)) for t in "ab"]
    assert [row.state if row else None for row in rows] == ["claimed", "claimed"]
    health = ledger.shared.account_health()
    assert [(h.platform, h.account, h.healthy) for h in health] == [("x", "main", False)]
    assert [kind for kind, _ in c.alerts] == ["account_unhealthy"]  # type: ignore[attr-defined]


def test_a_crash_between_claim_and_confirm_is_reconciled_by_the_next_worker(
    ledger: Ledger, clock: Clock
) -> None:
    client = FakeClient("mastodon", "main", clock)
    j = job("Crash me")
    # Worker w0 claimed, started the call, the platform applied it, then w0 died.
    claim = ledger.claim_delivery(j.key(0), "w0", clock(), DELIVERY_LEASE, lambda: make_tid(clock()))
    assert claim is not None
    ledger.record_attempt(j.key(0), "w0", "Crash me", clock())
    client.publish(Outgoing(text="Crash me", nonce=claim.nonce))
    # Before the lease runs out nobody else may touch it, even a worker whose clock says it has:
    # leases run on the database's clock.
    early = courier(ledger, clock).deliver(j, client)
    assert early.outcome == "deferred"
    clock.advance(DELIVERY_LEASE.total_seconds() + 1)
    assert courier(ledger, clock).deliver(j, client).outcome == "deferred"
    ledger.renew_delivery(j.key(0), "w0", clock(), timedelta(seconds=-1))  # as if its 90 s had passed
    result = courier(ledger, clock).deliver(j, client)
    assert result.outcome == "posted" and client.publish_calls == 1 and client.live_texts() == ["Crash me"]


def test_a_failed_first_look_still_waits_for_a_dead_workers_call_before_sending(
    ledger: Ledger, clock: Clock
) -> None:
    # Facebook has no idempotency key: a second send while the dead worker's call is still in
    # the server would make two posts. A look that fails is no proof either way.
    client = FakeClient("facebook", "main", clock, lookup_errors=[Transient("connection dropped")])
    j = job("In flight")
    claim = ledger.claim_delivery(j.key(0), "host:111:dead", clock(), DELIVERY_LEASE, lambda: "n")
    assert claim is not None and ledger.record_attempt(j.key(0), "host:111:dead", "In flight", clock())
    clock.advance(2)
    assert ledger.expire_claims("host:111:dead", clock()) == 1  # the worker is gone, its call is not
    result = courier(ledger, clock).deliver(j, client)
    assert result.outcome == "deferred" and client.publish_calls == 0 and client.lookups == 2


def test_a_thread_broken_after_its_first_part_resumes_replying_to_it(ledger: Ledger, clock: Clock) -> None:
    client = FakeClient("bluesky", "main", clock, match_by_nonce=True)
    calls = {"n": 0}

    def break_second(message: Outgoing) -> None:
        calls["n"] += 1
        if message.reply_to is not None and calls["n"] <= 4:
            raise Transient("503")

    client.before_publish = break_second
    thread = job("one", "two", "three", platform="bluesky")
    first = courier(ledger, clock, policy=RetryPolicy(max_attempts=3)).deliver(thread, client)
    assert first.outcome == "failed" and client.live_texts() == ["one"]
    second = courier(ledger, clock, retry_failed=True).deliver(thread, client)
    assert second.outcome == "posted" and client.live_texts() == ["one", "two", "three"]
    two, three = client.copies[1].message, client.copies[2].message
    assert two.reply_to == client.copies[0].published and two.root == client.copies[0].published
    assert three.reply_to == client.copies[1].published and three.root == client.copies[0].published
    assert len(second.urls) == 3


def test_a_pause_during_backoff_defers_and_the_resumed_delivery_posts_once(
    ledger: Ledger, clock: Clock
) -> None:
    client = FakeClient("mastodon", "main", clock, script=[Step(Transient("timeout"), applied=True)])
    gate = FakeGate(clock, halt_after=1)
    result = courier(ledger, clock, gate).deliver(job("Paused"), client)
    assert result.outcome == "deferred" and result.error == "paused"
    # The claim was released at once: after resume another worker takes it without waiting for the lease.
    gate.paused = False
    gate.halt_after = None
    other = Courier(ledger=ledger, now=clock, gate=gate, worker="w2")
    again = other.deliver(job("Paused"), client)
    assert again.outcome == "posted" and client.publish_calls == 1 and client.live_texts() == ["Paused"]


def test_nothing_starts_while_paused(ledger: Ledger, clock: Clock) -> None:
    client = FakeClient("mastodon", "main", clock)
    result = courier(ledger, clock, FakeGate(clock, paused=True)).deliver(job("Nope"), client)
    assert result.outcome == "deferred" and client.publish_calls == 0
    assert ledger.get_delivery(job("x").key(0)) is None


def test_fan_out_never_lets_a_slow_platform_delay_the_others(ledger: Ledger, clock: Clock) -> None:
    others_done = threading.Event()
    confirmed: list[str] = []
    lock = threading.Lock()
    clients = {p: FakeClient(p, "main", clock) for p in ("x", "bluesky", "mastodon")}

    def slow_x(message: Outgoing) -> None:
        # X hangs until both other platforms have posted; a sequential fan-out would time out here.
        if not others_done.wait(timeout=5):
            raise Transient("timed out")

    def note(platform: str) -> None:
        with lock:
            confirmed.append(platform)
            if {"bluesky", "mastodon"} <= set(confirmed):
                others_done.set()

    clients["x"].before_publish = slow_x
    for name in ("bluesky", "mastodon"):
        real = clients[name].publish

        def publish(message: Outgoing, real=real, name=name) -> object:  # type: ignore[no-untyped-def]
            out = real(message)
            note(name)
            return out

        clients[name].publish = publish  # type: ignore[method-assign]
    jobs = [job("Go", platform=p) for p in ("x", "bluesky", "mastodon")]
    results = fan_out(courier(ledger, clock), jobs, lambda platform, account: clients[platform])
    assert [r.outcome for r in results] == ["posted", "posted", "posted"]
    assert clients["x"].publish_calls == 1


def test_a_delivery_sent_with_its_slots_claim_sends_nothing_once_another_worker_took_it(
    ledger: Ledger, clock: Clock
) -> None:
    def fire(post_id: str) -> Delivery:
        [key] = [job("Go", post_id=post_id).key(0)]
        made = ledger.claim_slot_owing(
            "calls", f"s-{post_id}", cycle=0, post_id=post_id, worker="w1", now=clock(), owed=[key],
            nonce_factory=lambda: make_tid(clock()),
        )  # fmt: skip
        assert made is not None
        return made[key]

    client = FakeClient("mastodon", "main", clock)
    ours, theirs = fire("p1"), fire("p2")
    assert courier(ledger, clock).deliver(job("Go", post_id="p1"), client, ours).outcome == "posted"
    assert ledger.claim_delivery(theirs.key, "w2", clock(), DELIVERY_LEASE, lambda: "x") is not None
    result = courier(ledger, clock).deliver(job("Go", post_id="p2"), client, theirs)
    assert result.outcome == "deferred" and client.publish_calls == 1


def test_one_thread_keeps_the_claims_of_every_slow_publish(ledger: Ledger, clock: Clock) -> None:
    # A keeper thread per publish cost more than the ledger's claim; one serves them all, and
    # renews each slow publish's claim while it runs.
    keepers: list[int] = []
    renewed = threading.Event()
    clients = {f"a{n}": FakeClient("mastodon", f"a{n}", clock) for n in range(6)}
    c = courier(ledger, clock, renew_every=0.05)
    real_renew = ledger.renew_delivery

    def renew(*args: object, **kw: object) -> bool:
        renewed.set()
        return real_renew(*args, **kw)  # type: ignore[arg-type]

    ledger.renew_delivery = renew  # type: ignore[method-assign]

    def slow(message: Outgoing) -> None:
        assert renewed.wait(timeout=5)  # held until a renewal has run
        keepers.append(sum(t.name == "lease-keeper" for t in threading.enumerate()))

    for client in clients.values():
        client.before_publish = slow
    jobs = [job("Go", account=name) for name in clients]
    results = fan_out(c, jobs, lambda platform, account: clients[account])
    assert [r.outcome for r in results] == ["posted"] * 6
    assert keepers and max(keepers) == 1


# --- against the emulators, with the real SDKs ------------------------------------------------

THREAD_QUEUE = """\
    schedule: {every: 1h}
    posts:
      - id: solo
        text: "Drop the contracts. #NoTechForICE"
      - id: thread
        thread:
          - "Part one: hundreds of employees asked their company to drop its ICE contract. #NoTechForICE"
          - "Part two: Salesforce employees asked the same about Border Patrol."
          - "Part three: you can ask too."
"""


@pytest.fixture
def site(site: Site) -> Site:
    site.write_queue("calls", THREAD_QUEUE)
    return site


@pytest.fixture
def runtime(site: Site) -> Iterator[Runtime]:
    rt = Runtime(site.config, site.env)
    yield rt
    rt.close()


def sandbox_jobs(rt: Runtime, post_id: str, platform: str) -> list[Job]:
    queue = rt.queue("calls")
    assert queue is not None
    post = next(p for p in queue.posts if p.id == post_id)
    return build_jobs(rt.config, queue, post, 1, [platform])


def sandbox_courier(rt: Runtime, gate: FakeGate | None = None, **kw: object) -> Courier:
    return Courier(ledger=rt.ledger, now=rt.now, gate=gate or FakeGate(), worker="w1", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("platform", PLATFORMS)
def test_sandbox_a_dropped_connection_after_the_write_leaves_one_copy(
    site: Site, runtime: Runtime, platform: str
) -> None:
    site.fault(platform, drop="after")
    [j] = sandbox_jobs(runtime, "solo", platform)
    result = sandbox_courier(runtime).deliver(j, runtime.clients(platform, "main"))
    assert result.outcome == "posted", result.line()
    assert site.live_texts(platform) == ["Drop the contracts. #NoTechForICE"]
    row = runtime.ledger.get_delivery(j.key(0))
    assert row is not None and row.remote_id in [p["id"] for p in site.state(platform)]


@pytest.mark.parametrize("platform", PLATFORMS)
def test_sandbox_a_503_after_the_write_leaves_one_copy(site: Site, runtime: Runtime, platform: str) -> None:
    site.fault(platform, status=503, apply=True)
    [j] = sandbox_jobs(runtime, "solo", platform)
    result = sandbox_courier(runtime).deliver(j, runtime.clients(platform, "main"))
    assert result.outcome == "posted", result.line()
    assert site.live_texts(platform) == ["Drop the contracts. #NoTechForICE"]


def test_sandbox_mastodon_without_idempotency_still_leaves_one_copy(site: Site, runtime: Runtime) -> None:
    site.settings("mastodon", idempotency=False)
    site.fault("mastodon", drop="after")
    [j] = sandbox_jobs(runtime, "solo", "mastodon")
    result = sandbox_courier(runtime).deliver(j, runtime.clients("mastodon", "main"))
    assert result.outcome == "posted", result.line()
    assert site.live_texts("mastodon") == ["Drop the contracts. #NoTechForICE"]


class FaultBeforePart:
    """A gate that injects a fault just before the given part is claimed (a thread broken midway)."""

    def __init__(self, part: int, inject: object) -> None:
        self.calls = 0
        self.part = part
        self.inject = inject
        self.waits: list[float] = []

    def halted(self) -> str | None:
        self.calls += 1
        if self.calls == self.part:
            self.inject()  # type: ignore[operator]
        return None

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        return True


@pytest.mark.parametrize("platform", PLATFORMS)
def test_sandbox_a_thread_broken_after_its_first_part_resumes_without_doubles(
    site: Site, runtime: Runtime, platform: str
) -> None:
    gate = FaultBeforePart(2, lambda: site.fault(platform, status=503, times=3))
    [j] = sandbox_jobs(runtime, "thread", platform)
    client = runtime.clients(platform, "main")
    first = sandbox_courier(runtime, gate, policy=RetryPolicy(max_attempts=3)).deliver(j, client)  # type: ignore[arg-type]
    assert first.outcome == "failed", first.line()
    assert len(site.live_texts(platform)) == 1
    second = sandbox_courier(runtime, retry_failed=True).deliver(j, client)
    assert second.outcome == "posted", second.line()
    posts = [p for p in site.state(platform) if not p.get("deleted")]
    assert [p["text"].split(":")[0] for p in posts] == ["Part one", "Part two", "Part three"]
    assert posts[1]["in_reply_to"] == posts[0]["id"] and posts[2]["in_reply_to"] == posts[1]["id"]


@pytest.mark.parametrize("platform", PLATFORMS)
def test_sandbox_a_burst_of_429s_waits_for_the_reset_then_posts_once(
    site: Site, runtime: Runtime, platform: str
) -> None:
    site.fault(platform, status=429, reset_in=30, times=3)
    gate = FakeGate()
    [j] = sandbox_jobs(runtime, "solo", platform)
    result = sandbox_courier(runtime, gate).deliver(j, runtime.clients(platform, "main"))
    assert result.outcome == "posted", result.line()
    assert len(gate.waits) == 3 and all(20 <= w <= 31 for w in gate.waits), gate.waits
    assert site.live_texts(platform) == ["Drop the contracts. #NoTechForICE"]


def test_json_logs_carry_one_event_per_line_with_its_url(ledger: Ledger, clock: Clock) -> None:
    import io
    import json
    import logging

    from bot.campaign.model import LoggingConfig
    from bot.daemon.logs import setup_logging

    stream = io.StringIO()
    setup_logging(LoggingConfig(format="json"), stream)
    try:
        client = FakeClient("mastodon", "main", clock, script=[Step(RateLimited("429", retry_after=5.0))])
        courier(ledger, clock).deliver(job("Logged"), client)
    finally:
        for handler in list(logging.getLogger("bot").handlers):
            logging.getLogger("bot").removeHandler(handler)
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [e["event"] for e in events] == ["retry", "posted"]
    assert events[1]["url"] == "https://mastodon.test/main/1" and events[1]["target"] == "mastodon/main"
    assert events[1]["message"].startswith("posted mastodon/main calls/p1")


def test_a_post_edited_after_a_lost_answer_is_found_by_the_text_that_was_sent(
    ledger: Ledger, clock: Clock
) -> None:
    client = FakeClient("x", "main", clock, script=[Step(Transient("timeout"), applied=True)])
    first = courier(ledger, clock, FakeGate(clock, halt_after=1)).deliver(
        job("Old wording", platform="x"), client
    )
    assert first.outcome == "deferred"
    # Staff fix a typo before the delivery resumes: the copy already out there is the old one.
    again = courier(ledger, clock).deliver(job("New wording", platform="x"), client)
    assert again.outcome == "posted" and client.live_texts() == ["Old wording"]
