"""X's documented rate limits per tier, and the headers X sends with them.

Numbers: X's rate-limit docs (docs.x.com; source github.com/xdevplatform/docs, commit 7c59f7be,
2025-12-01) and, for the media endpoints the tier table omits, the current rate-limit page (500
per 15 min per user).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.sandbox.server import RateWindow

MINUTES_15 = timedelta(minutes=15)
HOURS_24 = timedelta(hours=24)


@dataclass(frozen=True)
class Limit:
    """One endpoint's limits: per user (any window) and, optionally, a 24-hour cap per app."""

    user: int
    period: timedelta
    app_day: int | None = None


# Endpoint names are the routes as X's rate-limit tables write them.
POST_TWEETS = "POST /2/tweets"
DELETE_TWEET = "DELETE /2/tweets/:id"
SEARCH_RECENT = "GET /2/tweets/search/recent"
MENTIONS = "GET /2/users/:id/mentions"
USER_TWEETS = "GET /2/users/:id/tweets"
USERS_ME = "GET /2/users/me"
RETWEET = "POST /2/users/:id/retweets"
MEDIA_UPLOAD = "POST /2/media/upload"
MEDIA_METADATA = "POST /2/media/metadata"
UNRETWEET = "DELETE /2/users/:id/retweets/:tweet_id"
TWEET_LOOKUP = "GET /2/tweets/:id"
TWEETS_LOOKUP = "GET /2/tweets"
# What a read-only app's token may not call: X answers 403 `oauth1-permissions`.
WRITES = frozenset({POST_TWEETS, DELETE_TWEET, RETWEET, UNRETWEET, MEDIA_UPLOAD, MEDIA_METADATA})

_MEDIA = {MEDIA_UPLOAD: Limit(500, MINUTES_15), MEDIA_METADATA: Limit(500, MINUTES_15)}

PRESETS: dict[str, dict[str, Limit]] = {
    "free": {
        POST_TWEETS: Limit(17, HOURS_24, app_day=17),
        DELETE_TWEET: Limit(17, HOURS_24, app_day=17),
        SEARCH_RECENT: Limit(1, MINUTES_15),
        MENTIONS: Limit(1, MINUTES_15),
        USER_TWEETS: Limit(1, MINUTES_15),
        USERS_ME: Limit(25, HOURS_24),
        RETWEET: Limit(1, MINUTES_15),
        UNRETWEET: Limit(1, MINUTES_15),
        TWEET_LOOKUP: Limit(1, MINUTES_15),
        TWEETS_LOOKUP: Limit(1, MINUTES_15),
        **_MEDIA,
    },
    "basic": {
        POST_TWEETS: Limit(100, HOURS_24, app_day=1667),
        DELETE_TWEET: Limit(5, MINUTES_15),
        SEARCH_RECENT: Limit(60, MINUTES_15),
        MENTIONS: Limit(10, MINUTES_15),
        USER_TWEETS: Limit(5, MINUTES_15),
        USERS_ME: Limit(250, HOURS_24),
        RETWEET: Limit(5, MINUTES_15),
        UNRETWEET: Limit(5, MINUTES_15),
        TWEET_LOOKUP: Limit(15, MINUTES_15),
        TWEETS_LOOKUP: Limit(15, MINUTES_15),
        **_MEDIA,
    },
    "pro": {
        POST_TWEETS: Limit(100, MINUTES_15, app_day=10_000),
        DELETE_TWEET: Limit(50, MINUTES_15),
        SEARCH_RECENT: Limit(300, MINUTES_15),
        MENTIONS: Limit(300, MINUTES_15),
        USER_TWEETS: Limit(900, MINUTES_15),
        USERS_ME: Limit(75, MINUTES_15),
        RETWEET: Limit(50, MINUTES_15),
        UNRETWEET: Limit(50, MINUTES_15),
        TWEET_LOOKUP: Limit(900, MINUTES_15),
        TWEETS_LOOKUP: Limit(900, MINUTES_15),
        **_MEDIA,
    },
}
# "none": real-looking headers with numbers no rehearsal reaches.
PRESETS["none"] = {name: Limit(1_000_000, MINUTES_15) for name in PRESETS["pro"]}


def _epoch(moment: datetime) -> str:
    return str(int(moment.timestamp()))


class RateBook:
    """Spends requests against one preset and writes X's rate-limit headers."""

    def __init__(self, preset: str, windows: RateWindow) -> None:
        if preset not in PRESETS:
            raise ValueError(f"unknown X rate-limit preset {preset!r}: one of {sorted(PRESETS)}")
        self.limits = PRESETS[preset]
        self.windows = windows

    def spend(self, endpoint: str, user_id: str, app_key: str) -> tuple[bool, dict[str, str]]:
        """Count one request; return (allowed, headers). A refused request costs nothing."""
        limit = self.limits[endpoint]
        user_key = (endpoint, "user", user_id)
        app_key_t = (endpoint, "app", app_key)
        # Check both windows before spending either, so a refusal leaves both untouched.
        user_left, user_reset = self.windows.peek(user_key, limit.user, limit.period)
        app_left, app_reset = (
            self.windows.peek(app_key_t, limit.app_day, HOURS_24) if limit.app_day else (1, user_reset)
        )
        allowed = user_left > 0 and app_left > 0
        if allowed:
            _, user_left, user_reset = self.windows.hit(user_key, limit.user, limit.period)
            if limit.app_day:
                _, app_left, app_reset = self.windows.hit(app_key_t, limit.app_day, HOURS_24)
        headers = {
            "x-rate-limit-limit": str(limit.user),
            "x-rate-limit-remaining": str(user_left),
            "x-rate-limit-reset": _epoch(user_reset),
        }
        if limit.period == HOURS_24:
            headers |= {
                "x-user-limit-24hour-limit": str(limit.user),
                "x-user-limit-24hour-remaining": str(user_left),
                "x-user-limit-24hour-reset": _epoch(user_reset),
            }
        if limit.app_day:
            headers |= {
                "x-app-limit-24hour-limit": str(limit.app_day),
                "x-app-limit-24hour-remaining": str(app_left),
                "x-app-limit-24hour-reset": _epoch(app_reset),
            }
        if not allowed:
            # tweepy's wait_on_rate_limit sleeps until x-rate-limit-reset: point it at the window
            # that actually refused (the app's 24-hour cap may outlast the user's window).
            headers["x-rate-limit-reset"] = _epoch(user_reset if user_left == 0 else app_reset)
        return allowed, headers
