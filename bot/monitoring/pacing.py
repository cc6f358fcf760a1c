"""How often each monitoring stream may poll: the configured pace, slowed to the platform's budget.

`monitor.hashtags_every` and `monitor.replies_every` are the fastest polls; a platform whose
budget allows fewer requests is polled less often, so that steady state never meets a 429
(X Free: one recent search and one mentions call per 15 minutes, per docs.x.com's rate limits).
A 429 or an outage backs the one stream off (doubling, honouring the platform's reset), and a
long gap is paged through only as far as the budget's window allows; the rest waits for the
next poll. Pure: every time comes in as an argument.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from bot.campaign.model import Platform
from bot.retry import RetryPolicy

StreamKind = Literal["hashtags", "notifications"]
MAX_BACKOFF = timedelta(hours=1)
MAX_PAGES_PER_POLL = 50  # a runaway cursor must not keep one worker busy forever


@dataclass(frozen=True)
class Budget:
    """`requests` calls per `window` for one stream."""

    requests: int
    window: timedelta

    @property
    def spacing(self) -> timedelta:
        return self.window / self.requests


_15M = timedelta(minutes=15)
_5M = timedelta(minutes=5)

# X, per user token (we search and read mentions in user context): xdocs rate-limits, 2025-12-01.
X_SEARCH = {"free": Budget(1, _15M), "basic": Budget(60, _15M), "pro": Budget(300, _15M)}
X_MENTIONS = {"free": Budget(1, _15M), "basic": Budget(10, _15M), "pro": Budget(300, _15M)}
# Bluesky allows 3,000 requests per 5 minutes per IP for everything; a stream takes a small share,
# leaving the rest to posting and to the other streams of the same host.
BLUESKY_STREAM = Budget(150, _5M)
# Mastodon allows 300 requests per 5 minutes per account, posting included.
MASTODON_STREAM = Budget(60, _5M)
# A Page token's calls (4,800 x engaged users per 24 h) are shared with posting; one poll of a
# Page reads its feed, its posts and each recent post's comments, so each poll counts many.
FACEBOOK_STREAM = Budget(100, _5M)
# Instagram: all calls of an account share its BUC budget (4,800 x impressions per 24 h), and
# one poll of its replies reads its tags, its newest media and each one's comments (about a
# dozen calls): once a minute at most. The hashtag's recent media keep 24 hours; once a minute
# reads them well inside that, with the hashtag id searched once (30 unique tags per 7 days).
INSTAGRAM_STREAM = Budget(5, _5M)


def budget_for(platform: Platform, kind: StreamKind, tier: str | None = None) -> Budget:
    if platform == "x":
        table = X_SEARCH if kind == "hashtags" else X_MENTIONS
        return table.get(tier or "free", table["pro"])  # pay-per-use has Pro's windows
    if platform == "facebook":
        return FACEBOOK_STREAM
    if platform == "instagram":
        return INSTAGRAM_STREAM
    return BLUESKY_STREAM if platform == "bluesky" else MASTODON_STREAM


def poll_interval(every: timedelta, budget: Budget) -> timedelta:
    """The configured pace, or slower when the budget allows fewer requests."""
    return max(every, budget.spacing)


def backoff(interval: timedelta, failures: int, retry_after: float | None = None) -> timedelta:
    """The wait after the `failures`-th failure in a row: doubling from one interval, at most an
    hour, and the platform's own reset when it names one (never sooner than one interval)."""
    policy = RetryPolicy(
        base_delay=interval.total_seconds(), max_delay=max(MAX_BACKOFF, interval).total_seconds()
    )
    return timedelta(seconds=policy.delay(failures, retry_after))


@dataclass
class RequestWindow:
    """The requests one stream made in the budget's sliding window (in this process)."""

    budget: Budget
    times: deque[datetime] = field(default_factory=deque)

    def take(self, now: datetime) -> bool:
        """Spend one request if the window allows it."""
        while self.times and self.times[0] <= now - self.budget.window:
            self.times.popleft()
        if len(self.times) >= self.budget.requests:
            return False
        self.times.append(now)
        return True
