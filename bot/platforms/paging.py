"""Reading everything newer than a mark from an API that pages newest first.

X search and mentions, Bluesky searchPosts and listNotifications, and Mastodon's notifications
and tag timelines all answer newest first and page towards older posts. A *sweep* reads from
the newest post down to the mark left by the last complete sweep; only when it reaches the mark
does the mark move up to the newest post the sweep saw. A sweep interrupted (a 429, a budget
spent, a restart) resumes from its page token, so a gap longer than a page is read completely,
none skipped, and posts seen twice are left to the ledger's deduplication.

Marks compare as `key()` does: ids and timestamps of one platform sort as (length, text).
"""

from __future__ import annotations

import json
from dataclasses import dataclass


def key(value: str) -> tuple[int, str]:
    """Numeric ids (X, Mastodon) sort by length first; ISO timestamps and ULIDs have one length."""
    return (len(value), value)


def newer(a: str, b: str | None) -> bool:
    return b is None or key(a) > key(b)


@dataclass(frozen=True)
class Sweep:
    mark: str | None = None  # everything up to it was read
    top: str | None = None  # the newest post of the sweep in progress
    page: str | None = None  # the token of its next, older page

    def dump(self) -> str:
        return json.dumps({"mark": self.mark, "top": self.top, "page": self.page})

    @classmethod
    def load(cls, cursor: str | None) -> Sweep:
        if not cursor:
            return cls()
        try:
            data = json.loads(cursor)
            return cls(data.get("mark"), data.get("top"), data.get("page"))
        except (ValueError, AttributeError):
            return cls()

    def advance(self, newest: str | None, next_page: str | None, reached_end: bool) -> tuple[Sweep, bool]:
        """The sweep after one page: `newest` is the page's newest key, `next_page` its token,
        `reached_end` whether it came down to the mark (or the start time). Returns (sweep, more)."""
        top = self.top
        if newest is not None and newer(newest, top):
            top = newest
        if next_page and not reached_end:
            return Sweep(self.mark, top, next_page), True
        mark = top if top is not None and newer(top, self.mark) else self.mark
        return Sweep(mark, None, None), False
