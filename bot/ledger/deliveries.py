"""The ledger: what was posted where and which slots fired, in the database every worker shares.

One database (SQLite by default, PostgreSQL for several workers) holds everything that must
survive a restart (docs/design.md, ledger). The rules that make "exactly once" hold:

- A slot is claimed by inserting its unique (queue, slot name): one worker wins, the others
  see False and do nothing.
- A delivery is claimed before the network call (`claim_delivery`), its attempt recorded just
  before each call (`record_attempt`, which also checks the claim is still ours), and confirmed
  after (`confirm_delivery`). A claim holds a lease; a worker that dies leaves a claim whose
  lease runs out, and the next claimer takes it over with the same nonce and must reconcile
  first (`Delivery.attempted`).
- A lease's end is the database's clock plus the lease (`DatabaseClock`), set and compared in
  the claiming statement itself: a worker whose clock is off can neither take over a claim
  still held nor shorten its own.

Every other time comes in as an argument (aware UTC) and is kept for people, `min_gap` and
lookups: nothing here reads the worker's clock. The pause, saved
sessions and account health (`ledger.shared`), the slots (`ledger.slots`), monitoring's store
(`ledger.mentions`), the leases and our posts are the ledger's other parts, each its own class
over the same engine.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    FromClause,
    Row,
    Update,
    and_,
    bindparam,
    func,
    or_,
    select,
    update,
)

from bot.ledger.database import DatabaseClock, connect, insert_of, reading, writing
from bot.ledger.leases import Leases
from bot.ledger.mentions import MonitorStore
from bot.ledger.ourposts import OurPosts
from bot.ledger.schema import DELIVERY_KEY, DeliveryKey, apply_migrations, deliveries
from bot.ledger.sharedstate import SharedState
from bot.ledger.slotbook import SlotBook

DeliveryState = Literal["claimed", "posted", "failed", "retracted"]

# Long enough to cover one call with its timeout and a short backoff; a worker renews it
# (record_attempt, renew_delivery) before every call and every longer wait, so the lease only
# runs out when the worker is gone. See docs/decisions.md.
DELIVERY_LEASE = timedelta(seconds=90)
# How long a request may still reach the platform after it was sent: one call's timeout
# (bot.daemon.runtime.CALL_TIMEOUT, 20 s) and a margin for the server. A claim whose worker died
# mid-call (`INTERRUPTED`) and whose call is not found on the platform is not sent again
# before that (`bot.delivery.courier`).
CALL_IN_FLIGHT = timedelta(seconds=30)
# `last_error` of an attempted claim ended by `expire_claims`: its call may still be in flight.
INTERRUPTED = "interrupted: its worker died during a call"


@dataclass(frozen=True)
class Delivery:
    key: DeliveryKey
    state: DeliveryState
    nonce: str  # chosen at the first claim, kept: the Bluesky rkey or the Mastodon Idempotency-Key
    claimed_by: str | None
    lease_until: datetime | None
    attempts: int
    text: str | None  # the exact text of the last attempt, for lookups by text
    remote_id: str | None
    remote_cid: str | None  # Bluesky: the record's CID, for the strong refs of replies
    url: str | None
    last_error: str | None
    claimed_at: datetime
    attempted_at: datetime | None
    posted_at: datetime | None
    updated_at: datetime
    checkpoint: str | None = None  # Instagram: the container made before media_publish

    @property
    def attempted(self) -> bool:
        """A call may have reached the platform: reconcile before sending again."""
        return self.attempts > 0


@dataclass(frozen=True)
class DeliveryCounts:
    """Deliveries of one queue by state (one per part, platform and account)."""

    claimed: int = 0
    posted: int = 0
    failed: int = 0
    retracted: int = 0


def open_ledger(url: str) -> Ledger:
    """Connect to `url` and bring its schema up to date (safe with several workers starting)."""
    engine = connect(url)
    apply_migrations(engine)
    return Ledger(engine)


def _is_key(key: DeliveryKey) -> ColumnElement[bool]:
    return and_(*(deliveries.c[name] == getattr(key, name) for name in DELIVERY_KEY))


def _delivery(row: Row[Any]) -> Delivery:
    m = row._mapping
    key = DeliveryKey(*(m[name] for name in DELIVERY_KEY))
    return Delivery(key=key, **{c: m[c] for c in _DELIVERY_FIELDS})


_DELIVERY_FIELDS = [c.name for c in deliveries.c if c.name not in DELIVERY_KEY and c.name != "id"]


# The statements of a delivery's way out (claim, attempt, confirm), built once: building one
# costs SQLAlchemy more than SQLite takes to run it (bench/overhead.py). Values come as bound
# parameters: the key's as `k_<field>`, the others as `v_<name>`.
def _by_key(table: FromClause = deliveries) -> ColumnElement[bool]:
    return and_(*(table.c[name] == bindparam(f"k_{name}") for name in DELIVERY_KEY))


def _key_params(key: DeliveryKey) -> dict[str, object]:
    return {f"k_{name}": getattr(key, name) for name in DELIVERY_KEY}


# A lease's end: the database's clock plus the lease, in seconds.
_LEASE_END = DatabaseClock(bindparam("v_lease_s"))
_MINE = and_(_by_key(), deliveries.c.state == "claimed", deliveries.c.claimed_by == bindparam("v_worker"))


@functools.cache
def _claim_new(dialect: str) -> Any:
    return (
        insert_of(dialect, deliveries)
        .values(
            **{name: bindparam(f"k_{name}") for name in DELIVERY_KEY},
            state="claimed",
            nonce=bindparam("v_nonce"),
            claimed_by=bindparam("v_worker"),
            lease_until=_LEASE_END,
            attempts=0,
            claimed_at=bindparam("v_now"),
            updated_at=bindparam("v_now"),
        )
        .on_conflict_do_nothing(index_elements=list(DELIVERY_KEY))
        .returning(*deliveries.c)
    )


def _take_over(retry_failed: bool) -> Update:
    """Move an existing claim whose lease ran out (or a failed one, if asked) to `v_worker`."""

    def takeable(table: FromClause) -> ColumnElement[bool]:
        expired = and_(table.c.state == "claimed", table.c.lease_until <= DatabaseClock())
        return or_(expired, table.c.state == "failed") if retry_failed else expired

    # PostgreSQL: SKIP LOCKED lets a loser move on at once instead of queueing behind the
    # winner's transaction; the outer condition is checked again on the row it locks.
    # SQLite ignores FOR UPDATE: BEGIN IMMEDIATE already admits one writer at a time.
    candidate = deliveries.alias("candidate")
    locked = (
        select(candidate.c.id)
        .where(_by_key(candidate), takeable(candidate))
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    return (
        update(deliveries)
        .where(deliveries.c.id == locked, takeable(deliveries))
        .values(
            state="claimed",
            claimed_by=bindparam("v_worker"),
            lease_until=_LEASE_END,
            updated_at=bindparam("v_now"),
        )
        .returning(*deliveries.c)
    )


_TAKE_OVER = {False: _take_over(False), True: _take_over(True)}
_ATTEMPT = (
    update(deliveries)
    .where(_MINE)
    .values(
        attempts=deliveries.c.attempts + 1,
        last_error=None,  # this call is the last one now
        text=bindparam("v_text"),
        attempted_at=bindparam("v_now"),
        lease_until=_LEASE_END,
        updated_at=bindparam("v_now"),
    )
)
_RENEW = update(deliveries).where(_MINE).values(lease_until=_LEASE_END, updated_at=bindparam("v_now"))
_CONFIRM = (
    update(deliveries)
    .where(_by_key(), deliveries.c.state.in_(["claimed", "failed"]))
    .values(
        state="posted",
        remote_id=bindparam("v_remote_id"),
        remote_cid=bindparam("v_cid"),
        url=bindparam("v_url"),
        posted_at=bindparam("v_now"),
        lease_until=None,
        last_error=None,
        updated_at=bindparam("v_now"),
    )
)
_GET = select(deliveries).where(_by_key())


def _claim_in(
    conn: Connection,
    key: DeliveryKey,
    worker: str,
    now: datetime,
    lease: timedelta,
    nonce_factory: Callable[[], str],
    retry_failed: bool,
) -> Row[Any] | None:
    """A new claim, or one taken over; None when another holds it or it is done."""
    params = {**_key_params(key), "v_worker": worker, "v_now": now, "v_lease_s": lease.total_seconds()}
    row: Row[Any] | None = conn.execute(
        _claim_new(conn.dialect.name), {**params, "v_nonce": nonce_factory()}
    ).first()
    if row is None:
        row = conn.execute(_TAKE_OVER[retry_failed], params).first()
    return row


class Ledger:
    """The database every worker shares: the deliveries here, and its other parts, each a class
    over the same engine: `slots` (slots decided), `shared` (pause, sessions, account health),
    `mentions` (monitoring's store), `leases`, `ourposts`. Thread-safe: every method is its own
    transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.slots = SlotBook(engine)
        self.shared = SharedState(engine)
        self.mentions = MonitorStore(engine)
        self.leases = Leases(engine)
        self.ourposts = OurPosts(engine)

    def close(self) -> None:
        self.engine.dispose()

    # --- deliveries -----------------------------------------------------------------------

    def claim_delivery(
        self,
        key: DeliveryKey,
        worker: str,
        now: datetime,
        lease: timedelta,
        nonce_factory: Callable[[], str],
        *,
        retry_failed: bool = False,
    ) -> Delivery | None:
        """Take the delivery for `worker`, or None when another holds it or it is done.

        Takes a delivery never claimed (a new row, its nonce from `nonce_factory`), or one whose
        lease ran out (its worker died: the nonce is kept), or with `retry_failed` one that
        failed. Exactly one of racing workers wins. When the result is `attempted`, a call may
        have reached the platform: reconcile before sending.
        """
        with writing(self.engine) as conn:
            row = _claim_in(conn, key, worker, now, lease, nonce_factory, retry_failed)
        return _delivery(row) if row is not None else None

    def claim_to_send(
        self,
        key: DeliveryKey,
        worker: str,
        now: datetime,
        lease: timedelta,
        nonce_factory: Callable[[], str],
        text: str,
        *,
        retry_failed: bool = False,
    ) -> tuple[Delivery | None, bool]:
        """`claim_delivery`, and when the claim was never attempted, `record_attempt(text)` in the
        same transaction: for a caller that sends at once. One commit instead of two.

        Returns the claim as it was taken (`attempted` says whether to reconcile first) and
        whether the attempt was recorded. A claim attempted before is only claimed: look first,
        then `record_attempt`. A crash between this and the call leaves an attempted claim,
        which the next claimer reconciles before sending: never a second copy.
        """
        with writing(self.engine) as conn:
            row = _claim_in(conn, key, worker, now, lease, nonce_factory, retry_failed)
            if row is None:
                return None, False
            claim = _delivery(row)
            if claim.attempted:
                return claim, False
            params = {**_key_params(key), "v_worker": worker, "v_text": text, "v_now": now}
            recorded = conn.execute(_ATTEMPT, {**params, "v_lease_s": lease.total_seconds()}).rowcount == 1
        return claim, recorded

    def claim_slot_owing(
        self,
        queue: str,
        slot_name: str,
        *,
        cycle: int,
        post_id: str,
        worker: str,
        now: datetime,
        owed: Sequence[DeliveryKey],
        nonce_factory: Callable[[], str],
        once_per_cycle: bool = True,
    ) -> dict[DeliveryKey, Delivery] | None:
        """`slots.claim_slot`: None when the slot is not won, else the owed claims it made, as
        made (given back, never attempted, in `worker`'s name). A worker that sends one of them
        at once needs no claim of its own: `record_attempt` takes it back, or says another
        worker took it first (one statement, not `claim_to_send`'s three)."""
        made: list[Row[Any]] = []
        won = self.slots.claim_slot(
            queue,
            slot_name,
            cycle=cycle,
            post_id=post_id,
            worker=worker,
            now=now,
            owed=owed,
            nonce_factory=nonce_factory,
            once_per_cycle=once_per_cycle,
            made=made,
        )
        return {claim.key: claim for claim in map(_delivery, made)} if won else None

    def record_attempt(
        self, key: DeliveryKey, worker: str, text: str, now: datetime, lease: timedelta = DELIVERY_LEASE
    ) -> bool:
        """Call just before each network call: counts it, keeps the exact text, renews the lease.

        False means the claim is no longer `worker`'s (its lease ran out and another worker
        took it over): do not send.
        """
        params = {**_key_params(key), "v_worker": worker, "v_text": text, "v_now": now}
        with writing(self.engine) as conn:
            return conn.execute(_ATTEMPT, {**params, "v_lease_s": lease.total_seconds()}).rowcount == 1

    def record_checkpoint(
        self, key: DeliveryKey, worker: str, checkpoint: str, now: datetime, lease: timedelta = DELIVERY_LEASE
    ) -> bool:
        """Keep what a two-step publish made (a container id) before its final call; renews the
        lease. False if the claim is no longer `worker`'s: do not make the final call."""
        with writing(self.engine) as conn:
            result = conn.execute(
                update(deliveries)
                .where(_is_key(key), deliveries.c.state == "claimed", deliveries.c.claimed_by == worker)
                .values(
                    checkpoint=checkpoint, lease_until=DatabaseClock(lease.total_seconds()), updated_at=now
                )
            )
            return result.rowcount == 1

    def renew_delivery(
        self, key: DeliveryKey, worker: str, now: datetime, lease: timedelta = DELIVERY_LEASE
    ) -> bool:
        """Extend `worker`'s claim before a long wait (a backoff); False if it is no longer ours."""
        params = {**_key_params(key), "v_worker": worker, "v_now": now, "v_lease_s": lease.total_seconds()}
        with writing(self.engine) as conn:
            return conn.execute(_RENEW, params).rowcount == 1

    def confirm_delivery(
        self, key: DeliveryKey, remote_id: str, url: str | None, now: datetime, *, cid: str | None = None
    ) -> bool:
        """The platform has the post (answered, or found by reconciliation); False if already done."""
        params = {**_key_params(key), "v_remote_id": remote_id, "v_cid": cid, "v_url": url, "v_now": now}
        with writing(self.engine) as conn:
            return conn.execute(_CONFIRM, params).rowcount == 1

    def fail_delivery(
        self, key: DeliveryKey, error: str, now: datetime, *, worker: str | None = None
    ) -> bool:
        """Give up on a claimed delivery with the platform's message (never a secret).

        With `worker`, only while that worker holds the claim: a worker whose lease ran out
        must not fail the delivery another worker took over (and may be posting right now).
        """
        held = [deliveries.c.claimed_by == worker] if worker is not None else []
        with writing(self.engine) as conn:
            result = conn.execute(
                update(deliveries)
                .where(_is_key(key), deliveries.c.state == "claimed", *held)
                .values(state="failed", last_error=error, lease_until=None, updated_at=now)
            )
            return result.rowcount == 1

    def mark_retracted(self, key: DeliveryKey, now: datetime) -> bool:
        """Record that a posted delivery was deleted on its platform."""
        with writing(self.engine) as conn:
            result = conn.execute(
                update(deliveries)
                .where(_is_key(key), deliveries.c.state == "posted")
                .values(state="retracted", updated_at=now)
            )
            return result.rowcount == 1

    def cancel_unsent(self, key: DeliveryKey, now: datetime) -> bool:
        """Record a delivery never attempted (held, pending, failed before a call) as retracted, so
        no worker sends it: a claim attempted since (even by a live worker) is left alone, and a
        worker holding an unattempted claim finds it gone at `record_attempt` and sends nothing."""
        return self._cancel(key, now, "cancelled: retracted before sending", deliveries.c.attempts == 0)

    def cancel_unfound(self, key: DeliveryKey, attempts: int, now: datetime) -> bool:
        """Record an attempted delivery that a look did not find as retracted, so that no worker
        resumes and sends it after the retraction; False while a worker's lease on it is live
        (it may be sending now) or if it was attempted again since the look."""
        return self._cancel(
            key,
            now,
            "cancelled: retracted, not found after an attempt",
            deliveries.c.attempts == attempts,
            or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until <= DatabaseClock()),
        )

    def _cancel(self, key: DeliveryKey, now: datetime, why: str, *conditions: ColumnElement[bool]) -> bool:
        """A claimed or failed delivery recorded `retracted` unsent, if `conditions` all hold."""
        with writing(self.engine) as conn:
            result = conn.execute(
                update(deliveries)
                .where(_is_key(key), deliveries.c.state.in_(["claimed", "failed"]), *conditions)
                .values(state="retracted", lease_until=None, last_error=why, updated_at=now)
            )
            return result.rowcount == 1

    def sent_by_another_queue(self, queue: str, copies: Sequence[tuple[str, str, str, str]]) -> str | None:
        """The other queue that already posted one of `copies` (platform, account, post id, the
        first part's exact text), if any: the same post under a new queue name (a renamed file)."""
        stmt = (
            select(deliveries.c.queue)
            .where(
                deliveries.c.platform == bindparam("p"),
                deliveries.c.account == bindparam("a"),
                deliveries.c.post_id == bindparam("i"),
                deliveries.c.text == bindparam("t"),
                deliveries.c.part == 0,
                deliveries.c.state == "posted",
                deliveries.c.queue != queue,
            )
            .limit(1)
        )
        with reading(self.engine) as conn:
            for platform, account, post_id, text in copies:
                found = conn.execute(stmt, {"p": platform, "a": account, "i": post_id, "t": text}).scalar()
                if found is not None:
                    return str(found)
        return None

    def owner_of(self, platform: str, account: str, remote_id: str) -> DeliveryKey | None:
        """The delivery whose copy on (platform, account) has the id `remote_id`, if any."""
        stmt = select(*(deliveries.c[name] for name in DELIVERY_KEY)).where(
            deliveries.c.platform == platform,
            deliveries.c.account == account,
            deliveries.c.remote_id == remote_id,
        )
        with reading(self.engine) as conn:
            row = conn.execute(stmt.limit(1)).first()
        return DeliveryKey(**row._mapping) if row is not None else None

    def get_delivery(self, key: DeliveryKey) -> Delivery | None:
        with reading(self.engine) as conn:
            row = conn.execute(_GET, _key_params(key)).first()
        return _delivery(row) if row is not None else None

    def deliveries_for_post(self, queue: str, post_id: str, cycle: int | None = None) -> list[Delivery]:
        """Every delivery of one post (one cycle, or all), by cycle, part, platform, account."""
        stmt = select(deliveries).where(deliveries.c.queue == queue, deliveries.c.post_id == post_id)
        if cycle is not None:
            stmt = stmt.where(deliveries.c.cycle == cycle)
        order = (deliveries.c.cycle, deliveries.c.part, deliveries.c.platform, deliveries.c.account)
        with reading(self.engine) as conn:
            return [_delivery(row) for row in conn.execute(stmt.order_by(*order))]

    def unconfirmed_deliveries(self) -> list[Delivery]:
        """Claims whose worker is gone (lease run out): to reconcile at start-up, oldest first."""
        stmt = (
            select(deliveries)
            .where(deliveries.c.state == "claimed", deliveries.c.lease_until <= DatabaseClock())
            .order_by(deliveries.c.claimed_at, deliveries.c.id)
        )
        with reading(self.engine) as conn:
            return [_delivery(row) for row in conn.execute(stmt)]

    def claim_holders(self) -> set[str]:
        """Workers that hold a live-looking claim (state claimed), whatever their lease says."""
        stmt = select(deliveries.c.claimed_by).where(deliveries.c.state == "claimed").distinct()
        with reading(self.engine) as conn:
            return {worker for worker in conn.execute(stmt).scalars() if worker is not None}

    def expire_claims(self, worker: str, now: datetime) -> int:
        """End the leases of a worker known to be dead, so its claims can be taken over at once.

        The ledger cannot know a worker died before its lease runs out; a restarted daemon can
        (on its own host, a worker id whose pid is gone: `new_worker_id` names host and pid), and
        need not then wait out the lease before reconciling what the dead one left.
        """
        live = and_(
            deliveries.c.state == "claimed",
            deliveries.c.claimed_by == worker,
            deliveries.c.lease_until > DatabaseClock(),
        )
        with writing(self.engine) as conn:
            # An attempted claim is marked: its call may still be in the server, which applies it
            # though nobody reads the answer, so the next claimer must not resend too soon.
            conn.execute(
                update(deliveries).where(live, deliveries.c.attempts > 0).values(last_error=INTERRUPTED)
            )
            result = conn.execute(
                update(deliveries).where(live).values(lease_until=DatabaseClock(), updated_at=now)
            )
            return result.rowcount

    # --- status and limits ----------------------------------------------------------------

    def delivery_counts(self) -> dict[str, DeliveryCounts]:
        """Per queue, how many deliveries are in each state (for `status`)."""
        stmt = select(deliveries.c.queue, deliveries.c.state, func.count()).group_by(
            deliveries.c.queue, deliveries.c.state
        )
        counts: dict[str, dict[str, int]] = {}
        with reading(self.engine) as conn:
            for queue, state, n in conn.execute(stmt):
                counts.setdefault(queue, {})[state] = n
        return {queue: DeliveryCounts(**by_state) for queue, by_state in counts.items()}

    def last_posts(self) -> dict[tuple[str, str], datetime]:
        """(platform, account) -> time of its most recent post (for `status` and `min_gap`)."""
        stmt = (
            select(deliveries.c.platform, deliveries.c.account, func.max(deliveries.c.posted_at))
            .where(deliveries.c.posted_at.is_not(None))
            .group_by(deliveries.c.platform, deliveries.c.account)
        )
        with reading(self.engine) as conn:
            return {(p, a): t for p, a, t in conn.execute(stmt)}

    def count_posts(self, platform: str, account: str, since: datetime) -> int:
        """Posts (each thread part counts, as the platforms count them) since `since`: for `posts_per_day`."""
        stmt = select(func.count()).where(
            deliveries.c.platform == platform,
            deliveries.c.account == account,
            deliveries.c.posted_at >= since,
        )
        with reading(self.engine) as conn:
            return int(conn.execute(stmt).scalar_one())

    def post_times(self, since: datetime) -> dict[tuple[str, str], list[datetime]]:
        """(platform, account) -> times of its posts since `since`, oldest first (`preview`'s limits)."""
        stmt = (
            select(deliveries.c.platform, deliveries.c.account, deliveries.c.posted_at)
            .where(deliveries.c.posted_at >= since)
            .order_by(deliveries.c.posted_at)
        )
        times: dict[tuple[str, str], list[datetime]] = {}
        with reading(self.engine) as conn:
            for platform, account, posted_at in conn.execute(stmt):
                times.setdefault((platform, account), []).append(posted_at)
        return times

    def post_counts(self) -> dict[str, DeliveryCounts]:
        """Per queue, how many posts (post and cycle, whatever its targets and parts) have a
        delivery in each state: what `status` counts."""
        posts = (
            select(deliveries.c.queue, deliveries.c.state, deliveries.c.post_id, deliveries.c.cycle)
            .distinct()
            .subquery()
        )
        stmt = select(posts.c.queue, posts.c.state, func.count()).group_by(posts.c.queue, posts.c.state)
        counts: dict[str, dict[str, int]] = {}
        with reading(self.engine) as conn:
            for queue, state, n in conn.execute(stmt):
                counts.setdefault(queue, {})[state] = n
        return {queue: DeliveryCounts(**by_state) for queue, by_state in counts.items()}
