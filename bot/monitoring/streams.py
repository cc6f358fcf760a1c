"""The monitoring streams a config asks for: what is polled, by which account, how often. Pure.

A *stream* is one thing polled with one cursor (docs/design.md, monitoring):

    x:hashtags                         one recent search for the tags and our conversations
    bluesky:hashtags:<tag>             searchPosts, once per platform
    mastodon:hashtags:<host>:<tag>     the tag timeline, once per instance
                                       (Facebook: none; it has no public hashtag search)
    instagram:hashtags:<tag>           hashtag search's recent media, by the first account
    <platform>:notifications:<account> replies, quotes and mentions of one account

Its state in the ledger (`StreamState`) is the platform's cursor and the time of its next poll.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from bot.campaign.model import Config, Platform
from bot.monitoring.pacing import Budget, StreamKind, budget_for, poll_interval

log = logging.getLogger("bot.monitor")


@dataclass(frozen=True)
class Stream:
    key: str  # the cursor's and the lease's name
    platform: Platform
    account: str  # the account whose client polls it
    kind: StreamKind
    interval: timedelta
    budget: Budget
    tags: tuple[str, ...] = ()  # without '#'


@dataclass(frozen=True)
class StreamState:
    """What the ledger keeps per stream: the platform's cursor and when to poll next."""

    cursor: str | None = None
    next_at: datetime | None = None
    failures: int = 0

    def dump(self) -> str:
        return json.dumps(
            {
                "cursor": self.cursor,
                "next_at": self.next_at.isoformat() if self.next_at else None,
                "failures": self.failures,
            }
        )

    @classmethod
    def load(cls, raw: str | None) -> StreamState:
        if not raw:
            return cls()
        try:
            data = json.loads(raw)
            next_at = datetime.fromisoformat(data["next_at"]) if data.get("next_at") else None
            return cls(data.get("cursor"), next_at, int(data.get("failures") or 0))
        except (ValueError, TypeError, KeyError, AttributeError):
            log.warning("an unreadable monitoring cursor was reset: %.60r", raw)
            return cls()


def _host(url: str) -> str:
    return (urlsplit(url).netloc or url).lower()


def plan_streams(config: Config) -> list[Stream]:
    """Every stream the config asks for, in a stable order. Pure."""
    monitor = config.monitor
    tags = tuple(dict.fromkeys(t.lstrip("#") for t in config.hashtags))
    streams: list[Stream] = []
    for platform in config.enabled_platforms():
        accounts = [a for a in config.accounts(platform) if not a.missing]
        if not accounts:
            continue
        tier = config.platforms[platform].tier
        hashtags = budget_for(platform, "hashtags", tier)
        pace = poll_interval(monitor.hashtags_every, hashtags)
        if platform == "x":
            # One search for every tag and our conversations: Free allows one per 15 minutes.
            streams.append(Stream("x:hashtags", "x", accounts[0].name, "hashtags", pace, hashtags, tags))
        elif platform in ("bluesky", "instagram"):
            for tag in tags:
                key = f"{platform}:hashtags:{tag.lower()}"
                streams.append(Stream(key, platform, accounts[0].name, "hashtags", pace, hashtags, (tag,)))
        elif platform == "mastodon":
            instances: dict[str, str] = {}
            for account in accounts:
                instances.setdefault(_host(account.base_url), account.name)
            for host, name in instances.items():
                for tag in tags:
                    key = f"mastodon:hashtags:{host}:{tag.lower()}"
                    streams.append(Stream(key, platform, name, "hashtags", pace, hashtags, (tag,)))
        notes = budget_for(platform, "notifications", tier)
        for account in accounts:
            streams.append(
                Stream(
                    f"{platform}:notifications:{account.name}",
                    platform,
                    account.name,
                    "notifications",
                    poll_interval(monitor.replies_every, notes),
                    notes,
                )
            )
    return streams
