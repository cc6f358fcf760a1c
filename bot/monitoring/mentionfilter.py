"""What `mentions` keeps of the stored mentions: since when (by when each was written), and the
`--kind`, `--platform`, `--author` and `--grep` filters."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from bot.campaign.durations import parse_duration
from bot.ledger.mentions import MentionRecord

_WEEKS = re.compile(r"(\d+)w")


def parse_since(text: str, now: datetime, zone: ZoneInfo) -> datetime:
    """`30m`, `2d`, `2w`, a date (`2026-12-01`, midnight in `zone`) or a date and time."""
    cleaned = text.strip()
    if match := _WEEKS.fullmatch(cleaned):
        return now - timedelta(weeks=int(match.group(1)))
    try:
        return now - parse_duration(cleaned)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(cleaned) if "T" in cleaned else None
        if moment is None:
            moment = datetime.combine(date.fromisoformat(cleaned), datetime.min.time())
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a duration (30m, 2h, 1d, 2w) nor a date (2026-12-01 or 2026-12-01T09:00)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


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
