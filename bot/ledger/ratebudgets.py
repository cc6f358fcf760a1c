"""The platforms' own rate budgets per account and endpoint, kept in the database for `status`.

Every answer from X, Bluesky and Mastodon states what is left of its endpoint's window
(`x-rate-limit-*`, `ratelimit-*`, `X-RateLimit-*`); the adapters report each to a sink
(`bot.platforms.ratelimits.RateBudget`). `status` runs in another process than the daemon, so
the last budget of each (platform, account, endpoint) is stored, not only held in memory.

Writing on every answer would add a committed (fsynced) transaction to every HTTP call, so the
sink only notes the newest budget in memory and one background thread writes what changed every
`FLUSH_EVERY`, all in one transaction; `close()` writes the rest.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select

from bot.ledger.database import insert_for, reading, writing
from bot.ledger.schema import rate_budgets
from bot.platforms.ratelimits import BudgetSink, RateBudget

log = logging.getLogger("bot.ratebudgets")

FLUSH_EVERY = 2.0  # seconds


@dataclass(frozen=True)
class StoredBudget:
    platform: str
    account: str
    endpoint: str
    limit: int
    remaining: int
    reset_at: datetime | None
    seen_at: datetime


def read_budgets(engine: Engine) -> list[StoredBudget]:
    """Every stored budget, by platform, account and endpoint."""
    stmt = select(rate_budgets).order_by(
        rate_budgets.c.platform, rate_budgets.c.account, rate_budgets.c.endpoint
    )
    with reading(engine) as conn:
        return [
            StoredBudget(
                platform=row.platform,
                account=row.account,
                endpoint=row.endpoint,
                limit=row.quota,
                remaining=row.remaining,
                reset_at=row.reset_at,
                seen_at=row.seen_at,
            )
            for row in conn.execute(stmt)
        ]


class BudgetRecorder:
    """Collects the budgets the adapters report and writes them in the background."""

    def __init__(self, engine: Engine, now: Callable[[], datetime]) -> None:
        self._engine = engine
        self._now = now
        self._pending: dict[tuple[str, str, str], StoredBudget] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sink(self, platform: str, account: str) -> BudgetSink:
        """What one account's adapter reports its budgets to."""

        def note(budget: RateBudget) -> None:
            stored = StoredBudget(
                platform,
                account,
                budget.endpoint,
                budget.limit,
                budget.remaining,
                budget.reset_at,
                self._now(),
            )
            with self._lock:
                self._pending[(platform, account, budget.endpoint)] = stored
                if self._thread is None and not self._stop.is_set():
                    self._thread = threading.Thread(target=self._run, name="rate-budgets", daemon=True)
                    self._thread.start()

        return note

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = list(self._pending.values()), {}
        if not pending:
            return
        try:
            with writing(self._engine) as conn:
                # Upsert in key order: workers sharing a PostgreSQL ledger write overlapping
                # rows, and two transactions locking the same rows in different orders deadlock.
                for b in sorted(pending, key=lambda b: (b.platform, b.account, b.endpoint)):
                    values = {
                        "quota": b.limit,
                        "remaining": b.remaining,
                        "reset_at": b.reset_at,
                        "seen_at": b.seen_at,
                    }
                    stmt = insert_for(conn, rate_budgets).values(
                        platform=b.platform, account=b.account, endpoint=b.endpoint, **values
                    )
                    conn.execute(
                        stmt.on_conflict_do_update(
                            index_elements=["platform", "account", "endpoint"], set_=values
                        )
                    )
        except Exception as exc:  # a note for `status`: never worth stopping the daemon for
            log.warning("could not store the platforms' rate budgets: %s", type(exc).__name__)

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(timeout=5)
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_EVERY):
            self.flush()
