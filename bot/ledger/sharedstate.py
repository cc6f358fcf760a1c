"""What every worker shares beside the deliveries: the pause switch, saved sessions, account health.

Part of the ledger's database (`ledger.shared`), kept apart because none of it is about posting
exactly once: a global kill switch honoured within 5 s, the Bluesky session that must outlive a
restart (createSession is limited to 30 per 5 minutes), and which accounts refused their
credentials.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select, update

from bot.ledger.database import insert_for, reading, writing
from bot.ledger.schema import account_health, pause, sessions


@dataclass(frozen=True)
class PauseState:
    paused: bool
    reason: str | None
    since: datetime | None


@dataclass(frozen=True)
class AccountHealth:
    platform: str
    account: str
    healthy: bool
    last_error: str | None
    last_probe_at: datetime | None
    updated_at: datetime


# Read before every slot and delivery: built once (building costs more than running them).
_HEALTH = select(account_health).order_by(account_health.c.platform, account_health.c.account)
_PAUSE = select(pause.c.paused, pause.c.reason, pause.c.since)


class SharedState:
    """The pause, saved sessions and account health. Thread-safe: every method is its own
    transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # --- pause ----------------------------------------------------------------------------

    def pause(self, reason: str | None, now: datetime) -> None:
        with writing(self.engine) as conn:
            conn.execute(update(pause).where(pause.c.id == 1).values(paused=True, reason=reason, since=now))

    def resume(self, now: datetime) -> None:
        with writing(self.engine) as conn:
            conn.execute(update(pause).where(pause.c.id == 1).values(paused=False, reason=None, since=now))

    def pause_state(self) -> PauseState:
        with reading(self.engine) as conn:
            row = conn.execute(_PAUSE).one()
        return PauseState(paused=bool(row.paused), reason=row.reason, since=row.since)

    # --- sessions -------------------------------------------------------------------------

    def save_session(self, platform: str, account: str, blob: str, now: datetime) -> None:
        """Keep a platform session (the Bluesky session string); never logged by anyone."""
        with writing(self.engine) as conn:
            stmt = insert_for(conn, sessions).values(
                platform=platform, account=account, blob=blob, updated_at=now
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["platform", "account"], set_={"blob": blob, "updated_at": now}
                )
            )

    def load_session(self, platform: str, account: str) -> str | None:
        stmt = select(sessions.c.blob).where(sessions.c.platform == platform, sessions.c.account == account)
        with reading(self.engine) as conn:
            blob: str | None = conn.execute(stmt).scalar()
        return blob

    # --- account health -------------------------------------------------------------------

    def set_account_health(
        self, platform: str, account: str, *, healthy: bool, error: str | None, now: datetime
    ) -> None:
        """Record the outcome of a post or probe: healthy, or refused with the platform's message."""
        values = {"healthy": healthy, "last_error": error, "last_probe_at": now, "updated_at": now}
        with writing(self.engine) as conn:
            stmt = insert_for(conn, account_health).values(platform=platform, account=account, **values)
            conn.execute(stmt.on_conflict_do_update(index_elements=["platform", "account"], set_=values))

    def account_health(self) -> list[AccountHealth]:
        """Every account with a recorded health; an account never recorded is presumed healthy."""
        with reading(self.engine) as conn:
            return [AccountHealth(**row._mapping) for row in conn.execute(_HEALTH)]

    def refused(self) -> dict[tuple[str, str], str]:
        """The unhealthy accounts, (platform, account) -> the network's refusal: their posts are held."""
        return {(h.platform, h.account): h.last_error or "" for h in self.account_health() if not h.healthy}
