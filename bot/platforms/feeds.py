"""The read side of an adapter, for monitoring: what others said to us and with our hashtag.

Each adapter implements `FeedReader` beside `PlatformClient`. A poll returns a `Page`: the
posts found, oldest first, and an opaque cursor to pass back as `after` next time, which the
monitor keeps in the database so a restart neither repeats nor skips. Without a cursor (the
first pass) a read looks back to `since` (the `monitor.backfill`). A post on the boundary may be
returned twice across polls: the monitor deduplicates by id. The account's own posts are left
out; posts by the campaign's other accounts are the monitor's to drop.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from bot.platforms import Mention

MAX_PAGES = 50  # per poll: 5,000 posts on X and Bluesky, 2,000 on Mastodon


@dataclass(frozen=True)
class Page:
    mentions: tuple[Mention, ...]  # oldest first
    cursor: str | None  # pass back as `after`; None until something was seen
    # False: the page cap stopped the read before reaching `after`. X and Bluesky page from the
    # newest backwards, so the posts between are skipped (the monitor logs the gap); Mastodon
    # pages forward from `after`, and the cursor stops where the read stopped.
    complete: bool = True


class FeedReader(Protocol):
    def read_mentions(self, after: str | None, since: datetime) -> Page:
        """Replies, quotes and mentions addressed to this account (X mentions timeline, Bluesky
        notifications, Mastodon mention notifications)."""
        ...

    def search_hashtag(self, tag: str, after: str | None, since: datetime) -> Page:
        """Recent public posts with `#tag` (`tag` without '#'), retweets and boosts left out."""
        ...
