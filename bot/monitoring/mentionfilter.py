"""What `mentions` keeps of the stored mentions: since when (by when each was written), and the
`--kind`, `--platform`, `--author` and `--grep` filters."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from bot.ledger.mentions import MentionRecord


@dataclass(frozen=True)
class MentionFilter:
    since: datetime | None = None
    kinds: Collection[str] = ()
    platforms: Collection[str] = ()
    author: str | None = None  # case and a leading @ ignored; a part of the handle is enough
    grep: str | None = None  # a part of the text, any case

    def keep(self, mention: MentionRecord) -> bool:
        written = mention.created_at or mention.seen_at
        if self.since is not None and written < self.since:
            return False
        if self.kinds and mention.kind not in self.kinds:
            return False
        if self.platforms and mention.platform not in self.platforms:
            return False
        if self.author and self.author.lower().lstrip("@") not in mention.author.lower():
            return False
        return not self.grep or self.grep.casefold() in mention.text.casefold()
