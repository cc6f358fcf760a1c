"""Counts for the terminal: `mentions --summary` (by day, kind and network) and `status`'s last 24 h.

Days are the campaign's (its timezone); a sighting counts on the day we saw it, as in the report.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select

from bot.ledger.database import reading
from bot.ledger.schema import amplifications, deliveries, mentions
from bot.report.figures import KINDS

DayCounts = Counter[tuple[date, str, str]]  # (local day, kind, platform) -> sightings


def mention_summary(engine: Engine, zone: ZoneInfo, since: datetime | None = None) -> DayCounts:
    m = mentions.c
    stmt = select(m.kind, m.platform, m.seen_at)
    if since is not None:
        stmt = stmt.where(m.seen_at >= since)
    counts: DayCounts = Counter()
    with reading(engine) as conn:
        for kind, platform, seen_at in conn.execute(stmt):
            counts[(seen_at.astimezone(zone).date(), kind, platform)] += 1
    return counts


def summary_records(counts: DayCounts) -> list[dict[str, Any]]:
    return [
        {"day": day.isoformat(), "kind": kind, "platform": platform, "count": n}
        for (day, kind, platform), n in sorted(counts.items())
    ]


def format_summary(counts: DayCounts, zone: ZoneInfo) -> str:
    """One row per day and kind, one column per network, with totals."""
    if not counts:
        return "nothing tracked yet"
    platforms = sorted({p for (_, _, p) in counts})
    head = ["day", "kind", *platforms, "total"]
    rows: list[list[str]] = []
    for day in sorted({d for (d, _, _) in counts}):
        for kind in KINDS:
            cells = [counts[(day, kind, p)] for p in platforms]
            if any(cells):
                rows.append([day.isoformat(), kind, *map(str, cells), str(sum(cells))])
    totals = [sum(n for (_, _, p), n in counts.items() if p == platform) for platform in platforms]
    rows.append(["total", "", *map(str, totals), str(sum(totals))])
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        left = [c.ljust(w) for c, w in zip(cells[:2], widths, strict=False)]
        right = [c.rjust(w) for c, w in zip(cells[2:], widths[2:], strict=True)]
        return "  ".join(left + right).rstrip()

    return "\n".join([line(head), *map(line, rows), f"(days in {zone.key}, by when the bot saw each post)"])


def last_day_counts(engine: Engine, now: datetime) -> dict[str, int]:
    """The report's headline figures for the 24 hours before `now`, counted by the database
    (`status` stays fast however many posts others made)."""
    since = now - timedelta(days=1)
    d, m, a = deliveries.c, mentions.c, amplifications.c
    with reading(engine) as conn:
        sent = conn.execute(
            select(func.count()).where(
                d.part == 0, d.state.in_(["posted", "retracted"]), d.posted_at >= since, d.posted_at < now
            )
        ).scalar_one()
        failed = conn.execute(
            select(func.count()).where(d.state == "failed", d.updated_at >= since, d.updated_at < now)
        ).scalar_one()
        by_kind = select(m.kind, func.count()).where(m.seen_at >= since, m.seen_at < now).group_by(m.kind)
        seen: dict[str, int] = {kind: n for kind, n in conn.execute(by_kind)}
        reposts = conn.execute(
            select(func.count()).where(a.reposted_at >= since, a.reposted_at < now)
        ).scalar_one()
    return {
        "sent": sent,
        "failed": failed,
        "replies": seen.get("reply", 0),
        "mentions": seen.get("mention", 0),
        "hashtag_posts": seen.get("hashtag", 0),
        "reposts": reposts,
    }


def format_last_day(counts: dict[str, int]) -> str:
    return (
        f"last 24 h: {counts['sent']} posts sent, {counts['failed']} failed (one per post and account), "
        f"{counts['replies']} replies, "
        f"{counts['mentions']} mentions, {counts['hashtag_posts']} hashtag posts by others, "
        f"{counts['reposts']} reposts of allies"
    )
