"""Monitoring's share of the ledger: mentions seen, stream cursors, reposts.

Lives on the same engine as `bot.ledger.deliveries.Ledger` (`ledger.mentions`).

- Mentions are deduplicated by (platform, remote id) in the database, so a post seen by two
  streams or two workers is reported once: `record_mentions` returns only the new ones.
- Cursors (since_id, min_id, Bluesky cursors) survive restarts.
- Other people's posts are kept only as long as `retention_days` (`purge_mentions`, docs/design.md).

Every time comes in as an argument (aware UTC); nothing here reads a clock.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import Connection, Engine, delete, func, select
from sqlalchemy.exc import DBAPIError

from bot.ledger.database import insert_for, one_writer_at_a_time, reading, writing
from bot.ledger.schema import amplifications, cursors, mentions

MentionKind = Literal["reply", "mention", "hashtag"]


@dataclass(frozen=True)
class MentionRecord:
    """Someone else's post as stored and logged (docs/design.md, monitoring).

    Built by monitoring from a `bot.platforms.Mention` (what the platform returned).
    """

    platform: str
    remote_id: str
    kind: MentionKind
    account: str | None  # our account it concerns; None for hashtag posts
    url: str | None
    author: str
    text: str
    hashtags: tuple[str, ...]
    in_reply_to: str | None  # our post's URL, for replies
    created_at: datetime | None
    seen_at: datetime
    seq: int = 0  # the order stored, set when read back: `mentions --follow` continues after it


# The columns a new mention fills (`seq` is the database's), in the order of `_rows`.
_COLUMNS = "platform, remote_id, kind, account, url, author, text, hashtags, in_reply_to, created_at, seen_at"
_SQLITE_INSERT = f"INSERT INTO mentions ({_COLUMNS}) VALUES ({', '.join(['?'] * 11)})"
_LOOKUP_CHUNK = 500  # ids per look-up: under SQLite's bound-parameter limit


@functools.lru_cache(maxsize=8)
def _sqlite_lookup(count: int) -> str:
    """The look-up of `count` ids of one platform, one text per size (a page is mostly 100)."""
    return f"SELECT remote_id FROM mentions WHERE platform = ? AND remote_id IN ({', '.join(['?'] * count)})"


# PostgreSQL: one row's statement, run for every row of a batch in one pipeline (psycopg's
# executemany): fewer round trips than a statement per row, and less of the driver's CPU than
# a multi-row VALUES (whose long text psycopg parses anew each time) or arrays to unnest.
_POSTGRES_INSERT = (
    f"INSERT INTO mentions ({_COLUMNS}) VALUES ({', '.join(['%s'] * 11)})"
    " ON CONFLICT (platform, remote_id) DO NOTHING RETURNING platform, remote_id"
)


def _rows(conn: Connection, batch: Sequence[MentionRecord]) -> list[tuple[object, ...]]:
    """The driver's parameters for `batch`, in `_COLUMNS` order.

    Straight to the driver: SQLAlchemy's per-row parameter handling cost more than the
    database's own work (bench/ingest.py). Times still go through the column type's own
    conversion, once per distinct value, and tags are encoded once per distinct tuple: a
    batch's posts share their time seen and mostly their tags.
    """
    to_db = mentions.c.seen_at.type.bind_processor(conn.dialect)
    stamps: dict[datetime | None, object] = {None: None}
    encoded: dict[tuple[str, ...], str] = {}
    rows: list[tuple[object, ...]] = []
    for m in batch:
        created, seen, tags = m.created_at, m.seen_at, m.hashtags
        if created not in stamps:
            stamps[created] = to_db(created) if to_db else created
        if seen not in stamps:
            stamps[seen] = to_db(seen) if to_db else seen
        if tags not in encoded:
            encoded[tags] = json.dumps(list(tags))
        rows.append(
            (
                m.platform,
                m.remote_id,
                m.kind,
                m.account,
                m.url,
                m.author,
                m.text,
                encoded[tags],
                m.in_reply_to,
                stamps[created],
                stamps[seen],
            )
        )
    return rows


def _insert_unseen(conn: Connection, batch: list[MentionRecord]) -> list[MentionRecord]:
    """SQLite: look the keys up, then insert the rest with a plain executemany.

    Exact because the transaction began IMMEDIATE: no other writer can insert between the
    look-up and the insert. Faster than RETURNING there, most of all for pages seen before.
    """
    by_platform: dict[str, list[str]] = {}
    for m in batch:
        by_platform.setdefault(m.platform, []).append(m.remote_id)
    seen: set[tuple[str, str]] = set()
    for platform, ids in by_platform.items():
        for start in range(0, len(ids), _LOOKUP_CHUNK):
            chunk = ids[start : start + _LOOKUP_CHUNK]
            found = conn.exec_driver_sql(_sqlite_lookup(len(chunk)), (platform, *chunk)).scalars()
            seen.update((platform, remote_id) for remote_id in found)
    new = [m for m in batch if (m.platform, m.remote_id) not in seen]
    if new:
        conn.exec_driver_sql(_SQLITE_INSERT, _rows(conn, new))
    return new


def _insert_returning_new(conn: Connection, batch: list[MentionRecord]) -> list[MentionRecord]:
    """PostgreSQL: INSERT … ON CONFLICT DO NOTHING … RETURNING, each row in one pipeline.

    Exact under concurrent workers without a lock: only the rows this statement inserted come
    back, and a row another transaction is inserting makes this one wait for its outcome.
    """
    # Rows go in key order: two workers inserting overlapping posts in different orders would
    # each wait for the other's row, and PostgreSQL would abort one as a deadlock.
    rows = _rows(conn, sorted(batch, key=lambda m: (m.platform, m.remote_id)))
    stored: set[tuple[str, str]] = set()
    driver = conn.connection.driver_connection
    if driver is None:
        raise RuntimeError("no psycopg connection under this SQLAlchemy connection")
    try:
        with driver.cursor() as cursor:
            cursor.executemany(_POSTGRES_INSERT, rows, returning=True)
            while True:
                stored.update(cursor.fetchall())
                if not cursor.nextset():
                    break
    except driver.Error as exc:  # as SQLAlchemy reports it: a post the database refuses is skipped alone
        raise DBAPIError.instance(_POSTGRES_INSERT, None, exc, driver.Error, hide_parameters=True) from exc
    return [m for m in batch if (m.platform, m.remote_id) in stored]


class MonitorStore:
    """Thread-safe: every method is its own transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # --- mentions -------------------------------------------------------------------------

    def record_mentions(self, batch: Sequence[MentionRecord]) -> list[MentionRecord]:
        """Store the posts not seen before and return those, in the order given; one transaction.

        The database decides what is new, so two workers that fetch the same post report it once
        between them. Its speed is measured by bench/ingest.py (README, Performance).
        """
        unique: dict[tuple[str, str], MentionRecord] = {}
        for mention in batch:
            unique.setdefault((mention.platform, mention.remote_id), mention)
        if not unique:
            return []
        with writing(self.engine) as conn:
            if conn.dialect.name == "sqlite":
                new = _insert_unseen(conn, list(unique.values()))
            else:
                new = _insert_returning_new(conn, list(unique.values()))
        return new

    def replies(self, platform: str, ids: Collection[str]) -> dict[str, MentionRecord]:
        """The stored replies among `ids` (remote ids on `platform`): a thread continues them."""
        if not ids:
            return {}
        stmt = select(mentions).where(
            mentions.c.platform == platform, mentions.c.kind == "reply", mentions.c.remote_id.in_(list(ids))
        )
        with reading(self.engine) as conn:
            return {
                row.remote_id: MentionRecord(
                    **(dict(row._mapping) | {"hashtags": tuple(json.loads(row.hashtags))})
                )
                for row in conn.execute(stmt)
            }

    def list_mentions(
        self, *, since: datetime | None = None, after_seq: int = 0, limit: int | None = None
    ) -> list[MentionRecord]:
        """Stored mentions in the order stored, seen at or after `since` and after `after_seq`."""
        stmt = select(mentions).where(mentions.c.seq > after_seq).order_by(mentions.c.seq)
        if since is not None:
            stmt = stmt.where(mentions.c.seen_at >= since)
        if limit is not None:
            stmt = stmt.limit(limit)
        with reading(self.engine) as conn:
            return [
                MentionRecord(**(dict(row._mapping) | {"hashtags": tuple(json.loads(row.hashtags))}))
                for row in conn.execute(stmt)
            ]

    def forget_authors(self, handles: Collection[str]) -> int:
        """Forget every post by these handles (lower-case, without '@': `monitor.ignore`)."""
        if not handles:
            return 0
        with writing(self.engine) as conn:
            # Compared here, not by the database's lower(): SQLite's folds ASCII letters only.
            authors = conn.execute(select(mentions.c.author).distinct()).scalars()
            gone = sorted(a for a in authors if a.removeprefix("@").lower() in handles)
            if not gone:
                return 0
            return conn.execute(delete(mentions).where(mentions.c.author.in_(gone))).rowcount

    def purge_mentions(self, before: datetime) -> int:
        """Forget other people's posts seen before `before` (retention); returns how many."""
        with writing(self.engine) as conn:
            return conn.execute(delete(mentions).where(mentions.c.seen_at < before)).rowcount

    # --- cursors --------------------------------------------------------------------------

    def get_cursor(self, stream: str) -> str | None:
        with reading(self.engine) as conn:
            value: str | None = conn.execute(
                select(cursors.c.value).where(cursors.c.stream == stream)
            ).scalar()
        return value

    def set_cursor(self, stream: str, value: str, now: datetime) -> None:
        with writing(self.engine) as conn:
            stmt = insert_for(conn, cursors).values(stream=stream, value=value, updated_at=now)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["stream"], set_={"value": value, "updated_at": now}
                )
            )

    # --- amplification --------------------------------------------------------------------

    def record_amplification(
        self,
        platform: str,
        remote_id: str,
        account: str,
        now: datetime,
        cap: tuple[int, datetime] | None = None,
    ) -> bool:
        """Claim a repost before making it: True once per (platform, post), False ever after, and
        False when `cap` (at most N since a moment: `max_per_day`) is reached: counted and
        claimed in one transaction, so workers together keep to it."""
        with writing(self.engine) as conn:
            if cap is not None:
                one_writer_at_a_time(conn, f"campaign-bot reposts\x00{platform}")
                limit, since = cap
                counted = select(func.count()).where(
                    amplifications.c.platform == platform, amplifications.c.reposted_at >= since
                )
                if conn.execute(counted).scalar_one() >= limit:
                    return False
            stmt = insert_for(conn, amplifications).values(
                platform=platform, remote_id=remote_id, account=account, reposted_at=now
            )
            return (
                conn.execute(stmt.on_conflict_do_nothing().returning(amplifications.c.platform)).first()
                is not None
            )

    def count_amplifications(self, platform: str, since: datetime) -> int:
        """Reposts on `platform` since `since` (the start of the day), for `max_per_day`."""
        stmt = select(func.count()).where(
            amplifications.c.platform == platform, amplifications.c.reposted_at >= since
        )
        with reading(self.engine) as conn:
            return int(conn.execute(stmt).scalar_one())
