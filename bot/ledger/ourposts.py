"""Our published posts as monitoring needs them: which delivery a reply answers, which
conversations to search for replies. Read-only queries on the ledger's `deliveries` table."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, bindparam, select

from bot.ledger.database import reading
from bot.ledger.schema import deliveries

_CHUNK = 500  # under SQLite's bound-parameter limit
# Built once: monitoring asks for every page it reads (bench/ingest.py), and building the
# statement cost SQLAlchemy more than the database took to answer it.
_FIND = select(deliveries.c.remote_id, deliveries.c.account, deliveries.c.url).where(
    deliveries.c.platform == bindparam("platform"),
    deliveries.c.remote_id.in_(bindparam("ids", expanding=True)),
)


@dataclass(frozen=True)
class OurPost:
    """One of our published posts, as a reply links to it."""

    account: str
    url: str


class OurPosts:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def find(self, platform: str, remote_ids: Iterable[str]) -> dict[str, OurPost]:
        """Those of `remote_ids` that are parts we published (retracted ones too: a reply may
        outlive the post it answers), by id."""
        wanted = sorted(set(remote_ids))
        found: dict[str, OurPost] = {}
        with reading(self.engine) as conn:
            for start in range(0, len(wanted), _CHUNK):
                rows = conn.execute(_FIND, {"platform": platform, "ids": wanted[start : start + _CHUNK]})
                for remote_id, account, url in rows:
                    found[remote_id] = OurPost(account=account, url=url or "")
        return found

    def recent_roots(self, platform: str, since: datetime, limit: int = 100) -> list[str]:
        """Ids of the first parts we posted since `since`, newest first: on X a reply anywhere
        in the thread carries the first part's id as its `conversation_id`."""
        query = (
            select(deliveries.c.remote_id)
            .where(
                deliveries.c.platform == platform,
                deliveries.c.part == 0,
                deliveries.c.state == "posted",
                deliveries.c.remote_id.is_not(None),
                deliveries.c.posted_at >= since,
            )
            .order_by(deliveries.c.posted_at.desc())
            .limit(limit)
        )
        with reading(self.engine) as conn:
            return [str(r) for r in conn.execute(query).scalars()]
