"""Reading a page of tweets as X's timelines and recent search do: parameters, checks, cursors.

The error messages are X's own wording (docs/platforms.md, X: the 400 tweepy surfaces for
`max_results`; the 7-day `since_id` rule as X words it, with the boundary in minutes and the
smallest id X would accept).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.sandbox.server import Request
from bot.sandbox.x_tweets import MEDIA_FIELDS, TWEET_FIELDS, USER_FIELDS, XTweet, snowflake_at

EXPANSIONS = frozenset(
    [
        "attachments.media_keys",
        "attachments.poll_ids",
        "author_id",
        "edit_history_tweet_ids",
        "entities.mentions.username",
        "geo.place_id",
        "in_reply_to_user_id",
        "referenced_tweets.id",
        "referenced_tweets.id.author_id",
    ]
)
_TWEET_ID = re.compile(r"[0-9]{1,19}")
RECENT = timedelta(days=7)


class TimelineError(Exception):
    """A parameter X would refuse with a 400."""

    def __init__(self, message: str, parameter: str, value: str) -> None:
        super().__init__(message)
        self.message, self.parameter, self.value = message, parameter, value


@dataclass(frozen=True)
class Page:
    tweets: list[XTweet]  # newest first
    next_token: str | None
    tweet_fields: frozenset[str]
    user_fields: frozenset[str]
    media_fields: frozenset[str]
    expansions: frozenset[str]


def _field_list(request: Request, name: str, allowed: frozenset[str]) -> frozenset[str]:
    raw = request.arg(name) or ""
    values = [v for v in raw.split(",") if v]
    for value in values:
        if value not in allowed:
            raise TimelineError(
                f"The `{name}` query parameter value [{value}] is not one of [{','.join(sorted(allowed))}]",
                name,
                raw,
            )
    return frozenset(values)


def lookup_fields(request: Request) -> tuple[frozenset[str], frozenset[str], frozenset[str], frozenset[str]]:
    """The `tweet.fields`, `user.fields`, `media.fields` and `expansions` a request asks for."""
    return (
        _field_list(request, "tweet.fields", TWEET_FIELDS),
        _field_list(request, "user.fields", USER_FIELDS),
        _field_list(request, "media.fields", MEDIA_FIELDS),
        _field_list(request, "expansions", EXPANSIONS),
    )


def _tweet_id(request: Request, name: str) -> int | None:
    raw = request.arg(name)
    if raw is None:
        return None
    if not _TWEET_ID.fullmatch(raw):
        raise TimelineError(
            f"The `{name}` query parameter value [{raw}] does not match ^[0-9]{{1,19}}$", name, raw
        )
    return int(raw)


def _time(request: Request, name: str) -> datetime | None:
    raw = request.arg(name)
    if raw is None:
        return None
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise TimelineError(
            f"The `{name}` query parameter value [{raw}] is not a valid RFC3339 date-time", name, raw
        ) from None


def encode_token(tweet_id: str) -> str:
    """An opaque cursor, lower-case alphanumerics like X's: the last id served, in base 36."""
    number, digits = int(tweet_id), ""
    while number:
        number, digit = divmod(number, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[digit] + digits
    return digits or "0"


def read_page(
    request: Request,
    tweets: list[XTweet],
    now: datetime,
    min_results: int,
    token_param: str,
    seven_days: bool = False,
) -> Page:
    """The page of `tweets` (oldest first) that the request's parameters select.

    `tweets` still holds deleted ones: X fills a page from its index, then drops what it may not
    show, so a page can be short, even empty, and still carry a `next_token` (tweepy's
    recordings show short pages with tokens). A reader must follow the token, not stop at a
    short page.
    """
    raw_max = request.arg("max_results", "10") or "10"
    if not raw_max.isdigit() or not min_results <= int(raw_max) <= 100:
        raise TimelineError(
            f"The `max_results` query parameter value [{raw_max}] is not between {min_results} and 100",
            "max_results",
            raw_max,
        )
    since_id, until_id = _tweet_id(request, "since_id"), _tweet_id(request, "until_id")
    start, end = _time(request, "start_time"), _time(request, "end_time")
    if seven_days:
        boundary = now - RECENT
        if since_id is not None and since_id < snowflake_at(boundary):
            raise TimelineError(
                f"'since_id' must be a tweet id created after {boundary:%Y-%m-%dT%H:%MZ}. "
                f"Please use a 'since_id' that is larger than {snowflake_at(boundary)}",
                "since_id",
                str(since_id),
            )
        if start is not None and start < boundary:
            raise TimelineError(
                f"Invalid 'start_time':'{request.arg('start_time')}'. 'start_time' must be on or after "
                f"{boundary:%Y-%m-%dT%H:%MZ}",
                "start_time",
                str(request.arg("start_time")),
            )
    cursor_raw = request.arg(token_param) or request.arg("pagination_token")
    cursor: int | None = None
    if cursor_raw is not None:
        try:
            cursor = int(cursor_raw, 36)
        except ValueError:
            raise TimelineError(
                f"The `{token_param}` query parameter value [{cursor_raw}] is not valid",
                token_param,
                cursor_raw,
            ) from None
    selected = [
        t
        for t in reversed(tweets)
        if (since_id is None or int(t.id) > since_id)
        and (until_id is None or int(t.id) < until_id)
        and (cursor is None or int(t.id) < cursor)
        and (start is None or t.created_at >= start)
        and (end is None or t.created_at < end)
    ]
    size = int(raw_max)
    window = selected[:size]
    token = encode_token(window[-1].id) if len(selected) > size else None
    return Page([t for t in window if not t.deleted], token, *lookup_fields(request))
