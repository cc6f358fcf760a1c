"""The ledger on real SQLite, and on PostgreSQL too when BOT_TEST_DATABASE_URL is set.

Every test takes `database_url`: a fresh SQLite file, or a fresh PostgreSQL schema of its own
(other helpers' tests share the database), dropped afterwards.
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, select, text

from bot.ledger.database import connect, database_now, normalise_url
from bot.ledger.deliveries import INTERRUPTED, Delivery, DeliveryCounts, Ledger, open_ledger
from bot.ledger.mentions import MentionRecord, MonitorStore
from bot.ledger.schema import MIGRATIONS, DeliveryKey, apply_migrations, leases, metadata
from bot.ledger.workers import new_worker_id

REPO = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
LEASE = timedelta(seconds=90)
# A lease that ran out a second ago, as a dead worker's has. Leases run on the database's clock,
# never on the `now` a worker passes in, so a test ends one this way instead of moving a clock.
RAN_OUT = timedelta(seconds=-1)
# A worker whose clock runs 5 minutes fast (or slow): what it passes as `now`.
FAST = timedelta(minutes=5)
KEY = DeliveryKey("calls", "petition-launch", 0, 0, "bluesky", "main")


@pytest.fixture
def ledger(database_url: str) -> Iterator[Ledger]:
    opened = open_ledger(database_url)
    yield opened
    opened.close()


@pytest.fixture
def store(ledger: Ledger) -> MonitorStore:
    return ledger.mentions


def race(n: int, attempt: Callable[[int], Any]) -> list[Any]:
    """Run `attempt(i)` in n threads released at the same moment; their results in order."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = attempt(i)
        except BaseException as exc:  # surfaced below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return results


# --- engine and migrations -----------------------------------------------------------------


def test_sqlite_file_and_new_folders_are_owner_only(tmp_path: Path) -> None:
    ledger = open_ledger(f"sqlite:///{tmp_path}/state/deep/bot.sqlite3")
    ledger.shared.pause("testing", T0)  # a write, so the -wal file exists while the engine is open
    db = tmp_path / "state" / "deep" / "bot.sqlite3"
    for folder in (tmp_path / "state", tmp_path / "state" / "deep"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for file in (db, db.with_name("bot.sqlite3-wal")):
        assert stat.S_IMODE(file.stat().st_mode) == 0o600
    ledger.close()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_an_in_memory_database_is_refused_with_what_to_write_instead(url: str) -> None:
    with pytest.raises(ValueError, match="needs a SQLite file"):
        connect(url)


def test_worker_ids_differ_between_runs() -> None:
    assert new_worker_id() != new_worker_id()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    engine = connect(f"sqlite:///{tmp_path}/bot.sqlite3")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
    engine.dispose()


@pytest.mark.parametrize(
    "url",
    ["postgres://bot:pw@db.example:5432/campaign", "postgresql://bot:pw@db.example/campaign"],
)
def test_heroku_and_bare_postgres_urls_use_psycopg3(url: str) -> None:
    assert normalise_url(url).drivername == "postgresql+psycopg"


def test_other_databases_are_refused() -> None:
    with pytest.raises(ValueError, match="unsupported database"):
        normalise_url("mysql://bot@localhost/campaign")


def test_migrations_are_recorded_once_in_order(database_url: str) -> None:
    engine = connect(database_url)
    assert apply_migrations(engine) == [m.__name__ for m in MIGRATIONS]
    assert apply_migrations(engine) == []
    with engine.connect() as conn:
        names = conn.execute(text("SELECT name FROM schema_migrations ORDER BY name")).scalars().all()
    assert names == sorted(m.__name__ for m in MIGRATIONS)
    engine.dispose()


def test_tables_queried_match_tables_migrated(ledger: Ledger) -> None:
    inspector = inspect(ledger.engine)
    for table in metadata.sorted_tables:
        migrated = {c["name"] for c in inspector.get_columns(table.name)}
        assert migrated == {c.name for c in table.columns}, table.name


def test_migrations_started_by_several_workers_at_once_apply_once(database_url: str) -> None:
    engines = [connect(database_url) for _ in range(4)]
    applied = race(4, lambda i: apply_migrations(engines[i]))
    assert sorted(len(names) for names in applied) == [0, 0, 0, len(MIGRATIONS)]
    with engines[0].connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM schema_migrations")).scalar() == len(MIGRATIONS)
    for engine in engines:
        engine.dispose()


def test_naive_times_are_refused(ledger: Ledger) -> None:
    with pytest.raises(Exception, match="aware datetimes"):
        ledger.shared.pause("oops", datetime(2026, 12, 1, 9, 0))


def test_times_come_back_as_the_same_instant_in_utc(ledger: Ledger) -> None:
    local = datetime(2026, 12, 1, 9, 0, 0, 123456, tzinfo=timezone(timedelta(hours=-5)))
    ledger.shared.pause("rally", local)
    since = ledger.shared.pause_state().since
    assert since == local and since is not None and since.tzinfo == UTC


# --- slots ----------------------------------------------------------------------------------


def test_a_slot_fires_once(ledger: Ledger) -> None:
    assert ledger.slots.claim_slot("calls", "2026-12-01T09:00", cycle=0, post_id="a", worker="w1", now=T0)
    assert not ledger.slots.claim_slot("calls", "2026-12-01T09:00", cycle=0, post_id="a", worker="w2", now=T0)
    # The same slot name in another queue is another slot.
    assert ledger.slots.claim_slot("news", "2026-12-01T09:00", cycle=0, post_id="x", worker="w2", now=T0)


def test_racing_workers_fire_a_slot_once(ledger: Ledger) -> None:
    wins = race(
        8, lambda i: ledger.slots.claim_slot("calls", "s1", cycle=0, post_id="a", worker=f"w{i}", now=T0)
    )
    assert wins.count(True) == 1
    assert ledger.slots.sent_posts("calls") == [(0, "a")]


def test_a_fired_slot_records_the_deliveries_it_owes_with_it(ledger: Ledger) -> None:
    owed = [DeliveryKey("calls", "a", 1, 0, platform, "main") for platform in ("x", "bluesky", "mastodon")]
    nonces = iter(f"n{i}" for i in range(10))

    def fire(worker: str, keys: list[DeliveryKey]) -> bool:
        return ledger.slots.claim_slot(
            "calls",
            "s1",
            cycle=1,
            post_id="a",
            worker=worker,
            now=T0,
            owed=keys,
            nonce_factory=lambda: next(nonces),
        )

    assert fire("w1", owed)
    # Recorded as claims given back: whoever resumes pending work picks them up at once.
    pending = ledger.unconfirmed_deliveries()
    assert sorted(d.key.platform for d in pending) == ["bluesky", "mastodon", "x"]
    assert not any(d.attempted for d in pending)
    taken = ledger.claim_delivery(owed[0], "w2", T0, LEASE, lambda: "unused")
    assert taken is not None and taken.nonce == "n0"
    # A worker that lost the slot records none of what it would have owed.
    late = DeliveryKey("calls", "a", 1, 0, "x", "account2")
    assert not fire("w3", [late])
    assert ledger.get_delivery(late) is None


def test_a_fired_slot_hands_back_the_claims_it_made_and_only_those(ledger: Ledger) -> None:
    # A delivery sent at once uses its slot's claim (one statement before the call, not three).
    keys = [DeliveryKey("calls", "a", 7, 0, platform, "main") for platform in ("x", "bluesky")]
    nonces = iter(f"n{i}" for i in range(10))

    def fire(slot: str, worker: str) -> dict[DeliveryKey, Delivery] | None:
        return ledger.claim_slot_owing(
            "calls", slot, cycle=7, post_id="a", worker=worker, now=T0, owed=keys,
            nonce_factory=lambda: next(nonces), once_per_cycle=False,
        )  # fmt: skip

    made = fire("pinned:1", "w1")
    assert made is not None and set(made) == set(keys)
    assert {(c.claimed_by, c.attempted, c.nonce) for c in made.values()} == {
        ("w1", False, "n0"),
        ("w1", False, "n1"),
    }
    # The attempt takes the claim back; one another worker took first is not taken back.
    assert ledger.claim_delivery(keys[1], "w2", T0, LEASE, lambda: "unused") is not None
    assert ledger.record_attempt(keys[0], "w1", "text", T0)
    assert not ledger.record_attempt(keys[1], "w1", "text", T0)
    # A later slot owing the same keys (a pinned post) made none of them: nothing handed back.
    assert fire("pinned:2", "w1") == {}
    assert fire("pinned:2", "w3") is None  # the slot is decided


def test_a_post_fires_in_one_slot_per_cycle(ledger: Ledger) -> None:
    def fire(slot: str, cycle: int, **options: bool) -> bool:
        return ledger.slots.claim_slot("calls", slot, cycle=cycle, post_id="a", worker="w", now=T0, **options)

    assert fire("s1", 1)
    assert not fire("s2", 1)  # chosen from a history read before s1 committed: choose again
    assert not ledger.slots.slot_decided("calls", "s2")
    assert fire("s2", 2)  # the next cycle sends it again
    assert fire("pinned:a", 1, once_per_cycle=False)
    assert ledger.slots.sent_posts("calls") == [(1, "a"), (2, "a"), (1, "a")]


def test_racing_workers_fire_a_post_in_one_slot(ledger: Ledger) -> None:
    wins = race(
        8, lambda i: ledger.slots.claim_slot("calls", f"s{i}", cycle=1, post_id="a", worker=f"w{i}", now=T0)
    )
    assert wins.count(True) == 1
    assert ledger.slots.sent_posts("calls") == [(1, "a")]


def test_a_missed_slot_never_fires_later(ledger: Ledger) -> None:
    assert ledger.slots.mark_slot("calls", "s1", "missed", T0)
    assert not ledger.slots.mark_slot("calls", "s1", "missed", T0)
    assert not ledger.slots.claim_slot("calls", "s1", cycle=0, post_id="a", worker="w1", now=T0)
    assert ledger.slots.sent_posts("calls") == []


def test_sent_posts_follow_the_order_slots_fired_across_cycles(ledger: Ledger) -> None:
    fired = [("s3", 0, "a"), ("s1", 0, "b"), ("s2", 1, "a")]  # names need not sort in time order
    for minutes, (slot, cycle, post) in enumerate(fired):
        ledger.slots.claim_slot(
            "calls", slot, cycle=cycle, post_id=post, worker="w", now=T0 + timedelta(minutes=minutes)
        )
    ledger.slots.mark_slot("calls", "s4", "skipped", T0 + timedelta(minutes=5))
    assert ledger.slots.sent_posts("calls") == [(0, "a"), (0, "b"), (1, "a")]
    last = ledger.slots.last_slot("calls")
    assert last is not None and (last.slot_name, last.state) == ("s4", "skipped")
    assert ledger.slots.last_slot("other") is None


# --- deliveries -----------------------------------------------------------------------------


def test_a_new_claim_gets_its_nonce_and_needs_no_reconciling(ledger: Ledger) -> None:
    claim = ledger.claim_delivery(KEY, "w1", T0, LEASE, lambda: "3kabc2rkey")
    assert claim is not None
    assert (claim.state, claim.nonce, claim.claimed_by, claim.attempted) == (
        "claimed",
        "3kabc2rkey",
        "w1",
        False,
    )
    # The lease ends on the database's clock, whatever time the worker passed in.
    assert claim.lease_until is not None
    assert abs(claim.lease_until - (database_now(ledger.engine) + LEASE)) < timedelta(seconds=5)


def test_a_held_claim_is_not_taken(ledger: Ledger) -> None:
    ledger.claim_delivery(KEY, "w1", T0, LEASE, lambda: "n1")
    assert ledger.claim_delivery(KEY, "w2", T0 + LEASE - timedelta(seconds=1), LEASE, lambda: "n2") is None


def test_a_worker_whose_clock_runs_fast_cannot_take_or_end_a_live_claim(ledger: Ledger) -> None:
    now = database_now(ledger.engine)
    held = ledger.claim_delivery(KEY, "w1", now, LEASE, lambda: "n1")
    assert held is not None and ledger.record_attempt(KEY, "w1", "Sign the petition", now)
    skewed = now + FAST  # past the lease by its own clock: it must still not touch the claim
    assert ledger.claim_delivery(KEY, "w2", skewed, LEASE, lambda: "n2", retry_failed=True) is None
    assert ledger.claim_to_send(KEY, "w2", skewed, LEASE, lambda: "n2", "Sign it") == (None, False)
    assert ledger.unconfirmed_deliveries() == []
    assert not ledger.record_attempt(KEY, "w2", "Sign it", skewed)
    assert not ledger.renew_delivery(KEY, "w2", skewed, LEASE)
    assert not ledger.fail_delivery(KEY, "gave up", skewed, worker="w2")  # not its claim
    assert ledger.expire_claims("w2", skewed) == 0
    stored = ledger.get_delivery(KEY)
    assert stored is not None and (stored.state, stored.claimed_by, stored.attempts) == ("claimed", "w1", 1)
    # Its own claim lasts the lease from the database's clock, not from its fast one.
    ledger.claim_delivery(replace(KEY, part=1), "w2", skewed, LEASE, lambda: "n3")
    mine = ledger.get_delivery(replace(KEY, part=1))
    assert mine is not None and mine.lease_until is not None and mine.lease_until < now + 2 * LEASE


@pytest.mark.parametrize("skew", [FAST, -FAST], ids=["fast", "slow"])
def test_a_worker_whose_clock_is_off_takes_a_claim_that_ran_out(ledger: Ledger, skew: timedelta) -> None:
    now = database_now(ledger.engine)
    ledger.claim_delivery(KEY, "w1", now, timedelta(seconds=0.3), lambda: "n1")
    time.sleep(0.4)  # the lease runs out on the database's clock
    taken = ledger.claim_delivery(KEY, "w2", now + skew, LEASE, lambda: "n2")
    assert taken is not None and (taken.claimed_by, taken.nonce) == ("w2", "n1")
    assert not ledger.fail_delivery(KEY, "too late", now, worker="w1")  # w1 holds it no longer
    assert ledger.fail_delivery(KEY, "rejected", now + skew, worker="w2")


def test_a_dead_workers_claim_is_taken_over_with_its_nonce_and_reconciled_first(ledger: Ledger) -> None:
    ledger.claim_delivery(KEY, "w1", T0, LEASE, lambda: "n1")
    assert ledger.record_attempt(KEY, "w1", "Sign the petition #NoTechForICE", T0, RAN_OUT)  # then died
    later = T0 + LEASE + timedelta(seconds=1)
    assert [d.key for d in ledger.unconfirmed_deliveries()] == [KEY]
    taken = ledger.claim_delivery(KEY, "w2", later, LEASE, lambda: "n2")
    assert taken is not None
    assert (taken.claimed_by, taken.nonce, taken.attempted) == ("w2", "n1", True)
    assert taken.text == "Sign the petition #NoTechForICE"
    assert ledger.unconfirmed_deliveries() == []
    # The old worker wakes up: its claim is gone, so it must not send.
    assert not ledger.record_attempt(KEY, "w1", "Sign the petition #NoTechForICE", later)


def test_a_restarted_daemon_takes_over_its_dead_predecessors_claims_at_once(ledger: Ledger) -> None:
    other = DeliveryKey("calls", "petition-launch", 0, 0, "x", "main")
    ledger.claim_delivery(KEY, "host:111:aaaa", T0, LEASE, lambda: "n1")
    ledger.claim_delivery(other, "host:222:bbbb", T0, LEASE, lambda: "n2")
    assert ledger.claim_holders() == {"host:111:aaaa", "host:222:bbbb"}
    restart = T0 + timedelta(seconds=5)
    assert ledger.expire_claims("host:111:aaaa", restart) == 1
    assert [d.key for d in ledger.unconfirmed_deliveries()] == [KEY]
    assert ledger.claim_delivery(KEY, "host:333:cccc", restart, LEASE, lambda: "n3") is not None
    assert ledger.claim_delivery(other, "host:333:cccc", restart, LEASE, lambda: "n3") is None


def test_a_dead_workers_attempted_claim_is_marked_interrupted_until_attempted_again(ledger: Ledger) -> None:
    sent = DeliveryKey("calls", "petition-launch", 0, 0, "x", "main")
    ledger.claim_delivery(KEY, "host:111:aaaa", T0, LEASE, lambda: "n1")  # never attempted
    ledger.claim_delivery(sent, "host:111:aaaa", T0, LEASE, lambda: "n2")
    assert ledger.record_attempt(sent, "host:111:aaaa", "Sign the petition", T0)
    restart = T0 + timedelta(seconds=5)
    assert ledger.expire_claims("host:111:aaaa", restart) == 2
    rows = {d.key: d for d in ledger.unconfirmed_deliveries()}
    assert rows[KEY].last_error is None
    assert rows[sent].last_error == INTERRUPTED  # its call may still be in the server
    taken = ledger.claim_delivery(sent, "host:333:cccc", restart, LEASE, lambda: "unused")
    assert taken is not None and taken.last_error == INTERRUPTED and taken.attempted
    assert ledger.record_attempt(sent, "host:333:cccc", "Sign the petition", restart)
    row = ledger.get_delivery(sent)
    assert row is not None and row.last_error is None


def test_a_claim_never_attempted_is_taken_over_without_reconciling(ledger: Ledger) -> None:
    ledger.claim_delivery(KEY, "w1", T0, RAN_OUT, lambda: "n1")
    taken = ledger.claim_delivery(KEY, "w2", T0 + LEASE, LEASE, lambda: "n2")
    assert taken is not None and not taken.attempted


def test_claiming_to_send_records_the_attempt_in_the_same_commit(ledger: Ledger) -> None:
    claim, recorded = ledger.claim_to_send(KEY, "w1", T0, RAN_OUT, lambda: "n1", "Sign the petition")
    assert claim is not None and recorded and not claim.attempted  # sent at once, no lookup
    # A crash now (before or during the call): the next claimer must reconcile first.
    taken = ledger.claim_delivery(KEY, "w2", T0 + LEASE, LEASE, lambda: "n2")
    assert taken is not None and taken.attempted and (taken.nonce, taken.text) == ("n1", "Sign the petition")


def test_claiming_to_send_a_claim_attempted_before_leaves_the_attempt_to_after_the_lookup(
    ledger: Ledger,
) -> None:
    ledger.claim_delivery(KEY, "w1", T0, LEASE, lambda: "n1")
    assert ledger.record_attempt(KEY, "w1", "Sign the petition", T0, RAN_OUT)
    claim, recorded = ledger.claim_to_send(KEY, "w2", T0 + LEASE, LEASE, lambda: "n2", "Sign it now")
    assert claim is not None and claim.attempted and not recorded
    stored = ledger.get_delivery(KEY)
    assert stored is not None
    assert (stored.attempts, stored.text, stored.claimed_by) == (1, "Sign the petition", "w2")


def test_racing_workers_claim_to_send_once(ledger: Ledger) -> None:
    claims = race(8, lambda i: ledger.claim_to_send(KEY, f"w{i}", T0, LEASE, lambda: f"n{i}", "text"))
    assert [recorded for _, recorded in claims].count(True) == 1
    assert len([claim for claim, _ in claims if claim is not None]) == 1


def test_every_write_is_committed_when_it_returns_though_threads_share_commits(
    ledger: Ledger, database_url: str
) -> None:
    keys = [replace(KEY, post_id=f"post-{i}") for i in range(16)]
    other = connect(database_url)  # another connection, as another process would see it

    def claim_and_look(i: int) -> bool:
        ledger.claim_delivery(keys[i], f"w{i}", T0, LEASE, lambda: f"n{i}")
        with other.connect() as conn:
            query = text("SELECT count(*) FROM deliveries WHERE post_id = :p")
            found = conn.execute(query, {"p": f"post-{i}"})
            return found.scalar_one() == 1

    try:
        assert race(16, claim_and_look) == [True] * 16
    finally:
        other.dispose()


@pytest.mark.parametrize("failing_first", [True, False], ids=["first-fails", "second-fails"])
def test_a_write_that_fails_undoes_only_its_own_rows(ledger: Ledger, failing_first: bool) -> None:
    """Two threads' writes in one shared transaction: the one that raises loses its rows only."""
    from bot.ledger.database import writing

    queued = threading.Event()

    def first() -> None:
        with writing(ledger.engine) as conn:
            stream = "doomed" if failing_first else "kept"
            conn.execute(text(f"INSERT INTO cursors VALUES ('{stream}', 'x', '2026-12-01 14:00:00')"))
            queued.wait(5)
            time.sleep(0.2)  # the other writer is now queued behind this one, in its transaction
            if failing_first:
                raise ValueError("a bug in this body")

    def second() -> None:
        queued.set()
        with writing(ledger.engine) as conn:
            stream = "kept" if failing_first else "doomed"
            conn.execute(text(f"INSERT INTO cursors VALUES ('{stream}', 'x', '2026-12-01 14:00:00')"))
            if not failing_first:
                raise ValueError("a bug in this body")

    errors: list[BaseException] = []

    def run(work: Callable[[], None]) -> None:
        try:
            work()
        except ValueError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(work,)) for work in (first, second)]
    for t in threads:
        t.start()
        time.sleep(0.05)  # the first takes the turn first
    for t in threads:
        t.join()
    assert [str(e) for e in errors] == ["a bug in this body"]
    with ledger.engine.connect() as conn:
        kept = conn.execute(text("SELECT stream FROM cursors WHERE stream IN ('kept', 'doomed')"))
        assert kept.scalars().all() == ["kept"]


def test_a_write_inside_another_on_one_thread_is_refused_not_hung(ledger: Ledger) -> None:
    from bot.ledger.database import writing

    if ledger.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL takes concurrent transactions")
    with writing(ledger.engine), pytest.raises(RuntimeError, match="wait for itself"):
        ledger.claim_delivery(KEY, "w1", T0, LEASE, lambda: "n1")


def test_renewing_keeps_a_claim_through_a_long_backoff(ledger: Ledger) -> None:
    ledger.claim_delivery(KEY, "w1", T0, timedelta(seconds=0.3), lambda: "n1")
    assert ledger.renew_delivery(KEY, "w1", T0 + timedelta(seconds=80), LEASE)
    time.sleep(0.4)  # past the first lease: the renewed one holds
    assert ledger.claim_delivery(KEY, "w2", T0 + timedelta(seconds=100), LEASE, lambda: "n2") is None
    assert not ledger.renew_delivery(KEY, "w2", T0 + timedelta(seconds=100), LEASE)


def test_racing_workers_claim_a_delivery_once(ledger: Ledger) -> None:
    claims = race(8, lambda i: ledger.claim_delivery(KEY, f"w{i}", T0, LEASE, lambda: f"n{i}"))
    winners = [c for c in claims if c is not None]
    assert len(winners) == 1
    stored = ledger.get_delivery(KEY)
    assert (
        stored is not None and stored.claimed_by == winners[0].claimed_by and stored.nonce == winners[0].nonce
    )


def test_racing_workers_take_over_an_expired_claim_once(ledger: Ledger) -> None:
    ledger.claim_delivery(KEY, "dead", T0, RAN_OUT, lambda: "n0")
    later = T0 + 2 * LEASE
    claims = race(8, lambda i: ledger.claim_delivery(KEY, f"w{i}", later, LEASE, lambda: f"n{i}"))
    winners = [c for c in claims if c is not None]
    assert len(winners) == 1 and winners[0].nonce == "n0"


def test_a_confirmed_delivery_is_never_claimed_again(ledger: Ledger) -> None:
    ledger.claim_delivery(KEY, "w1", T0, LEASE, lambda: "n1")
    ledger.record_attempt(KEY, "w1", "text", T0)
    url = "https://bsky.app/profile/campaign.example/post/3kabc2rkey"
    assert ledger.confirm_delivery(KEY, "at://did:plc:x/app.bsky.feed.post/3kabc2rkey", url, T0, cid="bafy")
    for worker, when in [("w2", T0), ("w2", T0 + 10 * LEASE)]:
        assert ledger.claim_delivery(KEY, worker, when, LEASE, lambda: "n2", retry_failed=True) is None
    done = ledger.get_delivery(KEY)
    assert done is not None
    assert (done.state, done.url, done.remote_cid, done.posted_at, done.lease_until) == (
        "posted",
        url,
        "bafy",
        T0,
        None,
    )
    assert not ledger.confirm_delivery(KEY, "other", None, T0)


def test_a_failed_delivery_keeps_the_platforms_message_and_can_be_retried(ledger: Ledger) -> None:
    ledger.claim_delivery(KEY, "w1", T0, LEASE, lambda: "n1")
    ledger.record_attempt(KEY, "w1", "text", T0)
    assert ledger.fail_delivery(KEY, "Invalid record: text too long", T0)
    failed = ledger.get_delivery(KEY)
    assert failed is not None and (failed.state, failed.last_error) == (
        "failed",
        "Invalid record: text too long",
    )
    assert ledger.claim_delivery(KEY, "w2", T0 + 10 * LEASE, LEASE, lambda: "n2") is None
    retry = ledger.claim_delivery(KEY, "w2", T0, LEASE, lambda: "n2", retry_failed=True)
    assert retry is not None and (retry.state, retry.nonce, retry.attempted) == ("claimed", "n1", True)


def test_a_failed_delivery_found_on_the_platform_is_confirmed(ledger: Ledger) -> None:
    # Retries ran out after a 503 that had in fact applied the write; a later reconciliation
    # finds the post, and the ledger must then say posted, not failed.
    ledger.claim_delivery(KEY, "w1", T0, LEASE, lambda: "n1")
    ledger.fail_delivery(KEY, "503 Service Unavailable", T0)
    assert ledger.confirm_delivery(KEY, "id1", "https://example/1", T0 + timedelta(minutes=5))
    done = ledger.get_delivery(KEY)
    assert done is not None and (done.state, done.last_error) == ("posted", None)


def test_only_posted_deliveries_are_retracted(ledger: Ledger) -> None:
    other = DeliveryKey("calls", "petition-launch", 0, 1, "bluesky", "main")
    for key in (KEY, other):
        ledger.claim_delivery(key, "w1", T0, LEASE, lambda: "n")
    ledger.confirm_delivery(KEY, "id1", "https://example/1", T0)
    assert ledger.mark_retracted(KEY, T0)
    assert not ledger.mark_retracted(other, T0)
    assert [d.state for d in ledger.deliveries_for_post("calls", "petition-launch")] == [
        "retracted",
        "claimed",
    ]


def test_a_cancelled_delivery_is_never_sent_and_an_attempted_one_is_never_cancelled(ledger: Ledger) -> None:
    held = DeliveryKey("calls", "petition-launch", 0, 0, "x", "main")
    sent = DeliveryKey("calls", "petition-launch", 0, 0, "mastodon", "main")
    live = KEY  # a worker holds it, not attempted yet
    ledger.claim_delivery(held, "w1", T0, LEASE, lambda: "n")
    ledger.renew_delivery(held, "w1", T0, timedelta(0))  # released: held for unset secrets
    ledger.claim_delivery(live, "w2", T0, LEASE, lambda: "n")
    ledger.claim_to_send(sent, "w3", T0, LEASE, lambda: "n", "the text")
    assert ledger.cancel_unsent(held, T0) and ledger.cancel_unsent(live, T0)
    assert not ledger.cancel_unsent(sent, T0)  # it may be out there: looked for, never cancelled
    # No worker can take the cancelled ones, resume them, or send the one it held.
    assert ledger.claim_delivery(held, "w4", T0 + LEASE, LEASE, lambda: "n", retry_failed=True) is None
    assert not ledger.record_attempt(live, "w2", "the text", T0)
    ledger.renew_delivery(sent, "w3", T0, RAN_OUT)  # w3 died
    assert [d.key for d in ledger.unconfirmed_deliveries()] == [sent]
    states = {
        d.key.platform: (d.state, d.remote_id) for d in ledger.deliveries_for_post("calls", "petition-launch")
    }
    assert states == {"x": ("retracted", None), "bluesky": ("retracted", None), "mastodon": ("claimed", None)}


def test_deliveries_for_a_post_come_in_thread_order(ledger: Ledger) -> None:
    keys = [
        DeliveryKey("calls", "thread", cycle, part, platform, "main")
        for cycle in (1, 0)
        for part in (1, 0)
        for platform in ("x", "bluesky")
    ]
    for key in keys:
        ledger.claim_delivery(key, "w", T0, LEASE, lambda: "n")
    ledger.claim_delivery(DeliveryKey("calls", "other", 0, 0, "x", "main"), "w", T0, LEASE, lambda: "n")
    got = [(d.key.cycle, d.key.part, d.key.platform) for d in ledger.deliveries_for_post("calls", "thread")]
    assert got == sorted(got) and len(got) == 8
    assert {d.key.cycle for d in ledger.deliveries_for_post("calls", "thread", cycle=1)} == {1}


# --- pause, sessions, health, status ---------------------------------------------------------


def test_pause_and_resume(ledger: Ledger) -> None:
    assert not ledger.shared.pause_state().paused
    ledger.shared.pause("ICE raid in progress: hold all posts", T0)
    state = ledger.shared.pause_state()
    assert (state.paused, state.reason, state.since) == (True, "ICE raid in progress: hold all posts", T0)
    ledger.shared.resume(T0 + timedelta(hours=1))
    assert not ledger.shared.pause_state().paused


def test_a_session_is_kept_and_replaced(ledger: Ledger) -> None:
    assert ledger.shared.load_session("bluesky", "main") is None
    ledger.shared.save_session("bluesky", "main", "session-1", T0)
    ledger.shared.save_session("bluesky", "main", "session-2", T0 + timedelta(minutes=1))
    ledger.shared.save_session("bluesky", "other", "session-3", T0)
    assert ledger.shared.load_session("bluesky", "main") == "session-2"


def test_account_health_is_recorded_per_account(ledger: Ledger) -> None:
    ledger.shared.set_account_health("x", "main", healthy=False, error="Unauthorized", now=T0)
    ledger.shared.set_account_health("bluesky", "main", healthy=True, error=None, now=T0)
    ledger.shared.set_account_health("x", "main", healthy=True, error=None, now=T0 + timedelta(minutes=15))
    health = {(h.platform, h.account): h for h in ledger.shared.account_health()}
    assert health[("x", "main")].healthy and health[("x", "main")].last_probe_at == T0 + timedelta(minutes=15)
    assert len(health) == 2


def test_status_counts_and_last_posts(ledger: Ledger) -> None:
    def deliver(post: str, account: str, at: datetime, ok: bool) -> None:
        key = DeliveryKey("calls", post, 0, 0, "x", account)
        ledger.claim_delivery(key, "w", at, LEASE, lambda: "n")
        if ok:
            ledger.confirm_delivery(key, post, None, at)
        else:
            ledger.fail_delivery(key, "rejected", at)

    deliver("a", "main", T0, ok=True)
    deliver("b", "main", T0 + timedelta(hours=2), ok=True)
    deliver("a", "second", T0, ok=False)
    ledger.claim_delivery(DeliveryKey("news", "n", 0, 0, "x", "main"), "w", T0, LEASE, lambda: "n")
    assert ledger.delivery_counts() == {
        "calls": DeliveryCounts(posted=2, failed=1),
        "news": DeliveryCounts(claimed=1),
    }
    assert ledger.last_posts() == {("x", "main"): T0 + timedelta(hours=2)}
    assert ledger.count_posts("x", "main", since=T0 + timedelta(hours=1)) == 1
    assert ledger.count_posts("x", "main", since=T0) == 2


# --- several processes ------------------------------------------------------------------------

RACER = textwrap.dedent(
    """
    import json, sys
    from datetime import datetime, timedelta, UTC
    from bot.ledger.deliveries import DeliveryKey, open_ledger
    ledger = open_ledger(sys.argv[1])  # both processes migrate the same fresh database at once
    worker, now = sys.argv[2], datetime(2026, 12, 1, 14, tzinfo=UTC)
    sys.stdin.readline()  # the starting gun: both processes are connected and waiting
    won = []
    for i in range(40):
        if ledger.slots.claim_slot("calls", f"slot-{i}", cycle=0, post_id=f"a{i}", worker=worker, now=now):
            won.append(f"slot-{i}")
        key = DeliveryKey("calls", f"post-{i}", 0, 0, "x", "main")
        if ledger.claim_delivery(key, worker, now, timedelta(seconds=90), lambda: worker):
            won.append(f"post-{i}")
    print(json.dumps(won))
    """
)


def test_two_processes_claim_each_slot_and_delivery_once(database_url: str) -> None:
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, database_url, f"worker-{n}"],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    for racer in racers:
        assert racer.stdin is not None
        racer.stdin.write("go\n")
        racer.stdin.flush()
    won = [json.loads(racer.communicate(timeout=60)[0]) for racer in racers]
    assert all(racer.returncode == 0 for racer in racers)
    assert sorted(won[0] + won[1]) == sorted(
        [f"slot-{i}" for i in range(40)] + [f"post-{i}" for i in range(40)]
    )


# --- monitoring: mentions, cursors, leases, amplification ------------------------------------


def mention(
    remote_id: str, kind: str = "hashtag", seen_at: datetime = T0, platform: str = "bluesky"
) -> MentionRecord:
    return MentionRecord(
        platform=platform,
        remote_id=remote_id,
        kind=kind,  # type: ignore[arg-type]
        account="main" if kind != "hashtag" else None,
        url=f"https://bsky.app/profile/alice.example/post/{remote_id}",
        author="alice.example",
        text="Drop the contract #NoTechForICE",
        hashtags=("#NoTechForICE",),
        in_reply_to=None,
        created_at=seen_at - timedelta(minutes=1),
        seen_at=seen_at,
    )


def test_each_mention_is_reported_once(store: MonitorStore) -> None:
    first = store.record_mentions([mention("a"), mention("b"), mention("a", kind="reply")])
    assert [(m.remote_id, m.kind) for m in first] == [("a", "hashtag"), ("b", "hashtag")]
    again = store.record_mentions([mention("b"), mention("c"), mention("a", platform="mastodon")])
    assert [(m.platform, m.remote_id) for m in again] == [("bluesky", "c"), ("mastodon", "a")]
    assert store.record_mentions([]) == []


def test_stored_mentions_read_back_whole_and_in_order(store: MonitorStore) -> None:
    store.record_mentions([mention("a"), mention("b", seen_at=T0 + timedelta(hours=1))])
    stored = store.list_mentions()
    assert [m.remote_id for m in stored] == ["a", "b"]
    assert stored[0] == replace(mention("a"), seq=stored[0].seq)
    assert [m.remote_id for m in store.list_mentions(after_seq=stored[0].seq)] == ["b"]
    assert [m.remote_id for m in store.list_mentions(since=T0 + timedelta(minutes=30))] == ["b"]


def test_racing_workers_report_each_mention_once(store: MonitorStore) -> None:
    batches = [[mention(f"p{j}") for j in range(i * 50, i * 50 + 200)] for i in range(4)]  # overlapping
    reported = race(4, lambda i: [m.remote_id for m in store.record_mentions(batches[i])])
    flat = [rid for batch in reported for rid in batch]
    assert sorted(flat) == sorted({f"p{j}" for j in range(350)})


def test_mentions_are_purged_after_retention(store: MonitorStore) -> None:
    store.record_mentions([mention("old", seen_at=T0 - timedelta(days=31)), mention("new")])
    assert store.purge_mentions(before=T0 - timedelta(days=30)) == 1
    assert [m.remote_id for m in store.list_mentions()] == ["new"]


def test_cursors_survive_and_move(store: MonitorStore) -> None:
    assert store.get_cursor("x:hashtag:#NoTechForICE") is None
    store.set_cursor("x:hashtag:#NoTechForICE", "1790000000000000000", T0)
    store.set_cursor("x:hashtag:#NoTechForICE", "1790000000000000042", T0)
    assert store.get_cursor("x:hashtag:#NoTechForICE") == "1790000000000000042"


def test_a_lease_has_one_holder_until_it_runs_out_or_is_released(ledger: Ledger) -> None:
    store = ledger.leases
    ttl = timedelta(minutes=2)
    assert store.acquire_lease("poll:bluesky", "w1", ttl)
    assert not store.acquire_lease("poll:bluesky", "w2", ttl)
    assert store.acquire_lease("poll:bluesky", "w1", timedelta(seconds=0.3))  # renewed, shorter
    time.sleep(0.4)  # w1 died: its lease runs out on the database's clock
    assert store.acquire_lease("poll:bluesky", "w2", ttl)
    store.release_lease("poll:bluesky", "w1")  # not its lease any more: nothing happens
    assert not store.acquire_lease("poll:bluesky", "w1", ttl)
    store.release_lease("poll:bluesky", "w2")
    assert store.acquire_lease("poll:bluesky", "w1", ttl)


def test_a_lease_ends_on_the_databases_clock(ledger: Ledger) -> None:
    before = database_now(ledger.engine)
    assert ledger.leases.acquire_lease("poll:x", "w1", timedelta(minutes=2))
    after = database_now(ledger.engine)
    with ledger.engine.connect() as conn:
        expires = conn.execute(select(leases.c.expires_at)).scalar_one()
    assert before + timedelta(minutes=2) <= expires <= after + timedelta(minutes=2)


def test_the_leases_of_a_dead_worker_are_handed_on_at_once(ledger: Ledger) -> None:
    store = ledger.leases
    ttl = timedelta(minutes=5)
    assert store.acquire_lease("monitor:x:hashtags", "host:1:dead", ttl)
    assert store.acquire_lease("monitor:bluesky:replies:main", "host:1:dead", ttl)
    assert store.acquire_lease("monitor:mastodon:hashtags", "host:2:alive", ttl)
    assert store.lease_holders() == {"host:1:dead", "host:2:alive"}
    assert store.release_leases_of("host:1:dead") == 2
    assert store.acquire_lease("monitor:x:hashtags", "host:3:next", ttl)
    assert not store.acquire_lease("monitor:mastodon:hashtags", "host:3:next", ttl)


def test_racing_workers_get_a_lease_once(ledger: Ledger) -> None:
    store = ledger.leases
    wins = race(8, lambda i: store.acquire_lease("poll:x", f"w{i}", timedelta(minutes=2)))
    assert wins.count(True) == 1


def test_an_allys_post_is_amplified_once(store: MonitorStore) -> None:
    assert store.record_amplification("bluesky", "at://ally/1", "main", T0)
    assert not store.record_amplification("bluesky", "at://ally/1", "second", T0 + timedelta(hours=1))
    store.record_amplification("bluesky", "at://ally/2", "main", T0 - timedelta(days=1))
    store.record_amplification("mastodon", "1234", "main", T0)
    assert store.count_amplifications("bluesky", since=T0 - timedelta(hours=1)) == 1
