"""The slots every worker decided: each fires once, each post once per cycle, with its deliveries.

Part of the ledger's database (`ledger.slots`). A slot is recorded whatever happens to it
(`fired`, `missed`, `skipped`), unique by (queue, slot name), so a slot one worker decided is
never decided again by another; a fired slot records, in the same transaction, a claim for every
delivery it owes (docs/design.md, the ledger).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, Engine, Row, bindparam, select, text

from bot.ledger.database import DatabaseClock, insert_of, reading, writing
from bot.ledger.schema import DELIVERY_KEY, DeliveryKey, deliveries, slots


@dataclass(frozen=True)
class SlotRecord:
    queue: str
    slot_name: str
    state: Literal["fired", "missed", "skipped"]
    cycle: int | None
    post_id: str | None
    claimed_by: str | None
    recorded_at: datetime


# Statements run for every slot of every queue on every tick, built once: building one costs
# SQLAlchemy more than SQLite takes to run it (bench/overhead.py). Values are bound parameters.
@functools.cache
def _record_slot(dialect: str) -> Any:
    names = ("queue", "slot_name", "state", "cycle", "post_id")
    values: dict[str, Any] = {name: bindparam(f"v_{name}") for name in names}
    insert = insert_of(dialect, slots).values(
        **values, claimed_by=bindparam("v_worker"), recorded_at=bindparam("v_now")
    )
    # RETURNING, not rowcount: PostgreSQL adds an implicit RETURNING id that hides it.
    return insert.on_conflict_do_nothing(index_elements=["queue", "slot_name"]).returning(slots.c.id)


@functools.cache
def _owe(dialect: str, returning: bool = False) -> Any:
    # Released at once (its lease ends now, on the database's clock): any worker may take it.
    owed = insert_of(dialect, deliveries).values(lease_until=DatabaseClock())
    owed = owed.on_conflict_do_nothing(index_elements=list(DELIVERY_KEY))
    # RETURNING: the rows this insert made (one made earlier conflicts and returns nothing).
    return owed.returning(*deliveries.c) if returning else owed


_FIRED_ALREADY = (
    select(slots.c.id)
    .where(
        slots.c.queue == bindparam("v_queue"),
        slots.c.state == "fired",
        slots.c.cycle == bindparam("v_cycle"),
        slots.c.post_id == bindparam("v_post_id"),
    )
    .limit(1)
)
_SENT = (
    select(slots.c.cycle, slots.c.post_id)
    .where(slots.c.queue == bindparam("v_queue"), slots.c.state == "fired")
    .order_by(slots.c.recorded_at, slots.c.id)
)
_LAST = (
    select(slots)
    .where(slots.c.queue == bindparam("v_queue"))
    .order_by(slots.c.recorded_at.desc(), slots.c.id.desc())
    .limit(1)
)


def _queue_lock_key(queue: str) -> int:
    """The advisory lock of one queue's slot decisions: a signed 64-bit number from its name."""
    digest = hashlib.sha256(f"campaign-bot slots\x00{queue}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class SlotBook:
    """The slots every worker decided. Thread-safe: every method is its own transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def claim_slot(
        self,
        queue: str,
        slot_name: str,
        *,
        cycle: int,
        post_id: str,
        worker: str,
        now: datetime,
        owed: Sequence[DeliveryKey] = (),
        nonce_factory: Callable[[], str] | None = None,
        once_per_cycle: bool = True,
        made: list[Row[Any]] | None = None,
    ) -> bool:
        """Record that this slot fires with this post; True for exactly one of racing workers.

        With `once_per_cycle` (every slot but a pinned post's), it is also refused when another
        slot of the queue already fired this post in this cycle: a worker that chose the post
        from a history read just before another worker's slot committed must choose again, or
        two slots would send one post and the queue would lose a slot. Slots of one queue are
        decided one at a time for that (PostgreSQL: a transaction-level advisory lock per queue;
        SQLite: `BEGIN IMMEDIATE` admits one writer).

        `owed` are the deliveries the slot sends (part 0 per target). The winner records them in
        the same transaction, as claims already given back (lease ends now), so a worker that
        dies right after deciding the slot still leaves every one of them to resume: deciding a
        slot and owing its deliveries are one fact, never two commits a crash could split.
        `made` receives the delivery rows this made (a key owed before is not among them).
        """
        with writing(self.engine) as conn:
            if once_per_cycle:
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _queue_lock_key(queue)})
                already = {"v_queue": queue, "v_cycle": cycle, "v_post_id": post_id}
                if conn.execute(_FIRED_ALREADY, already).first() is not None:
                    return False
            won = self._record_slot_in(
                conn, queue, slot_name, "fired", now, cycle=cycle, post_id=post_id, worker=worker
            )
            if won and owed:
                if nonce_factory is None:
                    raise ValueError("owed deliveries need a nonce_factory")
                rows = [
                    {
                        **{name: getattr(key, name) for name in DELIVERY_KEY},
                        "state": "claimed",
                        "nonce": nonce_factory(),
                        "claimed_by": worker,
                        "attempts": 0,
                        "claimed_at": now,
                        "updated_at": now,
                    }
                    for key in owed
                ]
                result = conn.execute(_owe(conn.dialect.name, made is not None), rows)
                if made is not None:
                    made.extend(result.all())
            return won

    def mark_slot(
        self, queue: str, slot_name: str, state: Literal["missed", "skipped"], now: datetime
    ) -> bool:
        """Record a slot that will not fire (past the grace, or nothing to send); False if decided already."""
        with writing(self.engine) as conn:
            return self._record_slot_in(conn, queue, slot_name, state, now)

    @staticmethod
    def _record_slot_in(
        conn: Connection,
        queue: str,
        slot_name: str,
        state: str,
        now: datetime,
        *,
        cycle: int | None = None,
        post_id: str | None = None,
        worker: str | None = None,
    ) -> bool:
        values = dict(queue=queue, slot_name=slot_name, state=state, cycle=cycle, post_id=post_id)
        params: dict[str, object] = {f"v_{name}": value for name, value in values.items()}
        params.update(v_worker=worker, v_now=now)
        return conn.execute(_record_slot(conn.dialect.name), params).first() is not None

    def slot_decided(self, queue: str, slot_name: str) -> bool:
        """Whether any worker recorded this slot (fired, missed or skipped)."""
        stmt = select(slots.c.id).where(slots.c.queue == queue, slots.c.slot_name == slot_name)
        with reading(self.engine) as conn:
            return conn.execute(stmt).first() is not None

    def sent_posts(self, queue: str) -> list[tuple[int, str]]:
        """(cycle, post id) of every fired slot of the queue, in the order they fired: the planner's input."""
        with reading(self.engine) as conn:
            return [(row.cycle, row.post_id) for row in conn.execute(_SENT, {"v_queue": queue})]

    def last_slot(self, queue: str) -> SlotRecord | None:
        """The slot decided most recently (fired, missed or skipped): where catching up starts."""
        with reading(self.engine) as conn:
            row = conn.execute(_LAST, {"v_queue": queue}).first()
        if row is None:
            return None
        m = row._mapping
        return SlotRecord(**{name: m[name] for name in SlotRecord.__dataclass_fields__})
