"""Leases: the one worker that may do a thing for a while (poll a stream, post to a limited account).

A lease passes on when its holder stops renewing it, or at once when it gives it up (a clean
stop) or is known to be dead. Expiries are the database's clock (`DatabaseClock`), set and
compared in the statement itself: a worker whose own clock is off cannot take a live lease.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, delete, select

from bot.ledger.database import DatabaseClock, insert_for, reading, writing
from bot.ledger.schema import leases


class Leases:
    """Thread-safe: every method is its own transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def acquire_lease(self, name: str, holder: str, ttl: timedelta) -> bool:
        """Take or renew the lease `name` for `ttl` from now (the database's clock); False while
        another holder's is valid."""
        with writing(self.engine) as conn:
            until = DatabaseClock(ttl.total_seconds())
            insert = insert_for(conn, leases).values(name=name, holder=holder, expires_at=until)
            # One statement: insert it, or take it over when it is ours or has run out.
            stmt = insert.on_conflict_do_update(
                index_elements=["name"],
                set_={"holder": holder, "expires_at": until},
                where=(leases.c.holder == holder) | (leases.c.expires_at <= DatabaseClock()),
            ).returning(leases.c.holder)
            return conn.execute(stmt).first() is not None

    def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up at once (a clean stop), so the next worker need not wait it out."""
        with writing(self.engine) as conn:
            conn.execute(delete(leases).where(leases.c.name == name, leases.c.holder == holder))

    def lease_holders(self) -> set[str]:
        """Everyone holding a lease, run out or not (to find the dead among them)."""
        with reading(self.engine) as conn:
            return set(conn.execute(select(leases.c.holder).distinct()).scalars())

    def release_leases_of(self, holder: str) -> int:
        """Hand every lease of a worker known to be dead on at once; returns how many."""
        with writing(self.engine) as conn:
            return conn.execute(delete(leases).where(leases.c.holder == holder)).rowcount
