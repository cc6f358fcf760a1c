"""What the ledger says about a period: deliveries, what others posted, reposts, account health.

Plain values, read in one snapshot, no rendering. Counted as the ledger counts them:

- a post sent is a confirmed first part (`part` 0) whose `posted_at` falls in the period, on one
  account (a thread counts once; a post later retracted was still sent);
- a failure is a delivery (any part) that ended `failed`, last updated in the period;
- retried: sent after more than one attempt; waiting: a claim nobody holds now (an account
  limit, a rate limit or a pause holds it back), by when it was claimed;
- replies, mentions and hashtag posts by others by when we saw them (`seen_at`): a platform's
  own `created_at` can be missing or wrong, our clock is the one every count shares;
- reposts of allies by when we made them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, and_, func, or_, select

from bot.ledger.database import reading
from bot.ledger.schema import account_health, amplifications, deliveries, mentions
from bot.monitoring.classification import normalize_handle
from bot.platforms import UNNAMED_AUTHORS
from bot.report.period import Period

Account = tuple[str, str]  # (platform, account name)
Outcome = str  # "sent", "retried", "failed", "waiting"
OUTCOMES = ("sent", "retried", "failed", "waiting")
KINDS = ("reply", "mention", "hashtag")


@dataclass(frozen=True)
class Link:
    platform: str
    account: str
    url: str


@dataclass
class RankedPost:
    """One of our posts with the replies (and quotes) it drew, and its copies on every network."""

    queue: str
    post_id: str
    cycle: int
    text: str
    first_sent: datetime
    links: list[Link] = field(default_factory=list)
    replies: int = 0
    replies_by_platform: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class HealthEvent:
    at: datetime
    platform: str
    account: str
    what: str  # "credentials refused: …", "healthy again", "failed: …"


@dataclass(frozen=True)
class Voice:
    author: str
    platforms: tuple[str, ...]
    posts: int


@dataclass
class Figures:
    period: Period
    sent: Counter[Account] = field(default_factory=Counter)
    failed: Counter[Account] = field(default_factory=Counter)
    seen: Counter[tuple[str, str]] = field(default_factory=Counter)  # (kind, platform)
    reposts: Counter[str] = field(default_factory=Counter)  # platform
    # (bucket start, kind, platform) for the timeline; (bucket, account, outcome) for deliveries
    timeline: Counter[tuple[datetime, str, str]] = field(default_factory=Counter)
    outcomes: Counter[tuple[datetime, Account, Outcome]] = field(default_factory=Counter)
    ranked: list[RankedPost] = field(default_factory=list)
    health: list[HealthEvent] = field(default_factory=list)
    voices: list[Voice] = field(default_factory=list)

    def total(self, kind: str) -> int:
        return sum(n for (k, _), n in self.seen.items() if k == kind)

    @property
    def empty(self) -> bool:
        return not (self.sent or self.failed or self.seen or self.reposts or self.outcomes)


def read_figures(
    engine: Engine,
    period: Period,
    now: datetime,
    *,
    ignore: tuple[str, ...] = (),
    retention: timedelta = timedelta(days=30),
    voices: int = 10,
) -> Figures:
    """Everything the report shows for `period`, in one read-only snapshot of the ledger."""
    figures = Figures(period)
    with reading(engine) as conn:
        by_url = _read_deliveries(conn, figures, now)
        _read_mentions(conn, figures, by_url)
        _read_reposts(conn, figures)
        _read_health(conn, figures)
        figures.voices = _read_voices(conn, period, now - retention, ignore, voices)
    posts = {(p.queue, p.post_id, p.cycle): p for p in by_url.values()}
    figures.ranked = sorted(posts.values(), key=lambda p: (-p.replies, p.first_sent))
    figures.health.sort(key=lambda e: e.at)
    return figures


def _read_deliveries(conn: Connection, figures: Figures, now: datetime) -> dict[str, RankedPost]:
    """Sent, failed, retried and waiting deliveries; our posts by every URL they have (for replies)."""
    period = figures.period
    d = deliveries.c
    stmt = select(deliveries).where(
        or_(
            d.posted_at.between(period.since, period.until),
            d.updated_at.between(period.since, period.until),
            and_(d.state == "claimed", d.claimed_at < period.until),
        )
    )
    posts: dict[tuple[str, str, int], RankedPost] = {}
    urls: dict[str, tuple[str, str, int]] = {}  # every part's URL: a reply may answer any part
    for row in conn.execute(stmt.order_by(d.posted_at, d.id)):
        account = (row.platform, row.account)
        if row.posted_at in period and row.state in ("posted", "retracted"):
            outcome = "retried" if row.attempts > 1 else "sent"
            figures.outcomes[(period.bucket(row.posted_at), account, outcome)] += 1
            key = (row.queue, row.post_id, row.cycle)
            if row.url:
                urls[row.url] = key
            if row.part == 0:
                figures.sent[account] += 1
                post = posts.setdefault(key, RankedPost(*key, text=row.text or "", first_sent=row.posted_at))
                if row.url:
                    post.links.append(Link(row.platform, row.account, row.url))
        elif row.state == "failed" and row.updated_at in period:
            figures.failed[account] += 1
            figures.outcomes[(period.bucket(row.updated_at), account, "failed")] += 1
            figures.health.append(
                HealthEvent(row.updated_at, *account, f"failed {row.queue}/{row.post_id}: {row.last_error}")
            )
        elif row.state == "claimed" and (row.lease_until is None or row.lease_until <= now):
            figures.outcomes[(period.bucket(max(row.claimed_at, period.since)), account, "waiting")] += 1
    return {url: posts[key] for url, key in urls.items() if key in posts}


def _read_mentions(conn: Connection, figures: Figures, posts_by_url: dict[str, RankedPost]) -> None:
    period = figures.period
    m = mentions.c
    stmt = select(m.kind, m.platform, m.in_reply_to, m.seen_at).where(
        m.seen_at >= period.since, m.seen_at < period.until
    )
    for kind, platform, in_reply_to, seen_at in conn.execute(stmt):
        figures.seen[(kind, platform)] += 1
        figures.timeline[(period.bucket(seen_at), kind, platform)] += 1
        post = posts_by_url.get(in_reply_to) if kind == "reply" and in_reply_to else None
        if post is not None:
            post.replies += 1
            post.replies_by_platform[platform] += 1


def _read_reposts(conn: Connection, figures: Figures) -> None:
    a = amplifications.c
    stmt = select(a.platform).where(
        a.reposted_at >= figures.period.since, a.reposted_at < figures.period.until
    )
    figures.reposts.update(platform for (platform,) in conn.execute(stmt))


def _read_health(conn: Connection, figures: Figures) -> None:
    """Each account's recorded health, when it last changed within the period."""
    for row in conn.execute(select(account_health)):
        if row.updated_at in figures.period:
            what = "healthy" if row.healthy else f"credentials refused: {row.last_error}"
            figures.health.append(HealthEvent(row.updated_at, row.platform, row.account, what))


def _read_voices(
    conn: Connection, period: Period, kept_since: datetime, ignore: tuple[str, ...], top: int
) -> list[Voice]:
    """The most active public accounts using the hashtag: handles only, never an ignored one."""
    m = mentions.c
    since = max(period.since, kept_since)  # nothing older than retention, even before the purge runs
    stmt = select(m.author, m.platform).where(
        m.kind == "hashtag", m.seen_at >= since, m.seen_at < period.until
    )
    ignored = {normalize_handle(handle) for handle in ignore}
    counts: Counter[str] = Counter()
    networks: dict[str, set[str]] = {}
    for author, platform in conn.execute(stmt):
        if normalize_handle(author) in ignored or author == UNNAMED_AUTHORS.get(platform):
            continue  # ignored, or nobody the network names: not one voice
        counts[author] += 1
        networks.setdefault(author, set()).add(platform)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0].lower()))[:top]
    return [Voice(author, tuple(sorted(networks[author])), n) for author, n in ranked]


def activity_span(engine: Engine) -> tuple[datetime, datetime] | None:
    """When the ledger first and last recorded anything (a delivery or a sighting); None if never."""
    d, m = deliveries.c, mentions.c
    with reading(engine) as conn:
        ends = [
            *conn.execute(select(func.min(d.claimed_at), func.max(d.updated_at))).one(),
            *conn.execute(select(func.min(m.seen_at), func.max(m.seen_at))).one(),
        ]
    firsts, lasts = [t for t in ends[::2] if t is not None], [t for t in ends[1::2] if t is not None]
    return (min(firsts), max(lasts)) if firsts else None
