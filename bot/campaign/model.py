"""The campaign's data model: plain frozen objects, built by the loaders and read by the pure core.

Nothing here reads files, the environment, the network or a clock. `bot.campaign.config` and
`bot.campaign.queues` (through `bot.campaign.yamlsource`, the only module that reads YAML)
produce these objects;
`bot.render.textrules` and `bot.planning.planner` consume them.

All datetimes are timezone-aware. Durations are `timedelta`. Paths to images are relative to the
content folder (as written in the YAML); `Config.content_dir` resolves them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Literal

Platform = Literal["x", "bluesky", "mastodon", "facebook", "instagram"]
PLATFORMS: tuple[Platform, ...] = ("x", "bluesky", "mastodon", "facebook", "instagram")
DEFAULT_DATABASE = "sqlite:///state/bot.sqlite3"  # beside config.yaml


# --- content --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Image:
    path: str  # relative to the content folder, checked to stay inside it and to exist
    alt: str


@dataclass(frozen=True)
class Part:
    """One message: a whole post, or one part of a thread."""

    text: str
    images: tuple[Image, ...] = ()


@dataclass(frozen=True)
class LinkCard:
    """A Bluesky external embed given in the content instead of read from the page."""

    title: str
    description: str = ""
    image: str | None = None  # path relative to the content folder


@dataclass(frozen=True)
class PlatformOptions:
    """Per-platform settings: a queue's defaults or one post's override.

    `parts` replaces the post's text (one part) or thread (several); None keeps the post's own.
    Options that do not apply to a platform are refused by the loader.
    """

    parts: tuple[Part, ...] | None = None
    spoiler_text: str | None = None  # mastodon: the content warning
    visibility: Literal["public", "unlisted", "private", "direct"] | None = None  # mastodon
    link_card: bool | LinkCard = False  # bluesky: True = read from the link's OpenGraph data
    language: str | None = None  # overrides the queue's language on this platform
    link: str | None = None  # facebook: the link the post shares (Facebook shows its preview)
    image: Image | None = None  # instagram: the card image of a post that has none of its own


@dataclass(frozen=True)
class Post:
    id: str
    parts: tuple[Part, ...]  # one part for `text`, several for `thread`
    line: int  # where the post starts in its file, for FILE:LINE messages
    overrides: Mapping[Platform, PlatformOptions] = field(default_factory=dict)
    at: datetime | None = None  # pinned: sent at this time only, outside the slot order
    start: datetime | None = None
    expires: datetime | None = None
    # Where its text is written, for length messages: "" the post's own `text`/`thread`, else a
    # platform's override (`x: "..."`); "#2" and "x#2" a thread's part 2, its own or the override's.
    text_lines: Mapping[str, int] = field(default_factory=dict)

    @property
    def is_thread(self) -> bool:
        return len(self.parts) > 1


@dataclass(frozen=True)
class Schedule:
    """Exactly one of cron, every and at is set (`kind` says which)."""

    kind: Literal["cron", "every", "at"]
    timezone: str  # an IANA zone name, checked to exist
    cron: str | None = None  # five standard crontab fields, checked to parse
    every: timedelta | None = None
    at: tuple[datetime, ...] = ()
    jitter: timedelta = timedelta(0)
    quiet_hours: tuple[time, time] | None = None  # [start, end) in local time; may wrap midnight


@dataclass(frozen=True)
class Queue:
    name: str
    file: Path
    schedule: Schedule
    posts: tuple[Post, ...]
    platforms: tuple[Platform, ...]  # resolved: the queue's list, or every enabled platform
    accounts: tuple[str, ...] | None = None  # None: every account of each platform
    hashtags: tuple[str, ...] = ()  # resolved: the queue's list, or (config.hashtags[0],)
    language: str | None = None
    defaults: Mapping[Platform, PlatformOptions] = field(default_factory=dict)
    start: datetime | None = None
    expires: datetime | None = None
    order: Literal["sequential", "shuffle"] = "sequential"
    when_exhausted: Literal["stop", "repeat"] = "stop"


# --- config ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountLimits:
    posts_per_day: int | None = None
    min_gap: timedelta | None = None


@dataclass(frozen=True)
class Account:
    """One account on one platform.

    `credentials` holds the secret values by config key (consumer_key, app_password,
    access_token, handle, ...); it is kept out of repr so it never reaches a log line.
    `missing` names the environment variables that were unset: `check` warns, `run` refuses
    to start the account.
    """

    platform: Platform
    name: str
    # X: api_base_url of the platform; Bluesky: service; Mastodon: api_base_url;
    # Facebook and Instagram: api_base_url/api_version (https://graph.facebook.com/v27.0)
    base_url: str
    credentials: Mapping[str, str] = field(default_factory=dict, repr=False)
    limits: AccountLimits = AccountLimits()
    missing: tuple[str, ...] = ()
    line: int = 0


@dataclass(frozen=True)
class PlatformConfig:
    platform: Platform
    enabled: bool
    accounts: tuple[Account, ...] = ()
    tier: Literal["free", "basic", "pro", "pay-per-use"] | None = None  # X only


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "INFO"
    format: Literal["text", "json"] = "text"
    mentions_log: Path | None = None  # None means "-": stdout


@dataclass(frozen=True)
class MonitorConfig:
    hashtags_every: timedelta = timedelta(minutes=2)
    replies_every: timedelta = timedelta(minutes=5)
    backfill: timedelta = timedelta(hours=24)
    retention_days: int = 30
    ignore: tuple[str, ...] = ()


@dataclass(frozen=True)
class AmplifyRule:
    allow: tuple[str, ...]
    max_per_day: int = 10


@dataclass(frozen=True)
class Config:
    path: Path  # the config file; relative paths below are already resolved from its folder
    campaign: str
    platforms: Mapping[Platform, PlatformConfig]
    timezone: str = "UTC"
    hashtags: tuple[str, ...] = ("#NoTechForICE",)
    content_dir: Path = Path("content")
    database_url: str = field(default=DEFAULT_DATABASE, repr=False)  # may embed a password
    schedule_grace: timedelta = timedelta(hours=1)
    logging: LoggingConfig = LoggingConfig()
    alerts_webhook: str | None = field(default=None, repr=False)  # webhook URLs embed tokens
    monitor: MonitorConfig = MonitorConfig()
    amplify: Mapping[Platform, AmplifyRule] = field(default_factory=dict)

    def enabled_platforms(self) -> tuple[Platform, ...]:
        return tuple(p for p in PLATFORMS if p in self.platforms and self.platforms[p].enabled)

    def accounts(self, platform: Platform) -> tuple[Account, ...]:
        pc = self.platforms.get(platform)
        return pc.accounts if pc is not None and pc.enabled else ()
