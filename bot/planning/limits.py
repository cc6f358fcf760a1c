"""Per-account limits (config `limits: {posts_per_day, min_gap}`), across every queue.

Pure: the ledger supplies the account's last post and its count over the last 24 hours.
`posts_per_day` is a rolling 24 hours, counting each part of a thread (as the platforms
count posts); `min_gap` separates the start of one post from the last part of the previous one.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.campaign.model import AccountLimits

# Without the times of the posts, a full day frees up as they age out; look again this often.
RECHECK = timedelta(minutes=5)


def next_allowed(
    limits: AccountLimits, now: datetime, *, last_post: datetime | None, posts_last_day: int
) -> datetime | None:
    """When the account may post next, or None if it may post now."""
    waits: list[datetime] = []
    if limits.min_gap is not None and last_post is not None and now < last_post + limits.min_gap:
        waits.append(last_post + limits.min_gap)
    if limits.posts_per_day is not None and posts_last_day >= limits.posts_per_day:
        waits.append(now + RECHECK)
    return max(waits) if waits else None
