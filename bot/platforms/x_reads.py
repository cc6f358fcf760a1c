"""X's monitoring reads through tweepy: recent search and the mentions timeline, in user context.

Both need `user_auth=True` (tweepy defaults to a bearer token: `user_auth=False` in tweepy/client.py).
Recent search only reaches 7 days back, and refuses a `since_id` older than that with a 400
("'since_id' must be a tweet id created after ..."): an old mark is replaced by a `start_time`
just inside the window, and the 400 itself is answered the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.errors import Rejected
from bot.platforms import Batch, Mention, read_each
from bot.platforms.paging import Sweep

SNOWFLAKE_EPOCH_MS = 1288834974657
RECENT = timedelta(days=7)
# X checks the 7-day bound when the request arrives: leave room for the clocks to differ.
RECENT_MARGIN = timedelta(minutes=5)
# Free and Basic accept 512 characters of query (Pro 1,024); we stay within the lower.
QUERY_MAX = 512
PAGE_SIZE = 100
# No `created_at`: a tweet id is a snowflake that carries its creation time to the millisecond,
# and tweepy parses `created_at` while building the page, so one it cannot parse would fail the
# whole page instead of one post.
TWEET_FIELDS = [
    "author_id",
    "conversation_id",
    "entities",
    "in_reply_to_user_id",
    "referenced_tweets",
]
EXPANSIONS = ["author_id", "referenced_tweets.id"]
# Asked on every read: enough to classify each post (author, reply, quote) without another call.
FIELDS: dict[str, Any] = {
    "max_results": PAGE_SIZE,
    "tweet_fields": TWEET_FIELDS,
    "expansions": EXPANSIONS,
    "user_fields": ["username"],
}

Call = Callable[[Callable[[], Any]], Any]
# The text as written, from X's text and entities (t.co links expanded: the adapter's _plain_text).
ToText = Callable[[str, Mapping[str, Any]], str]


def snowflake_time(tweet_id: str) -> datetime:
    return datetime.fromtimestamp(((int(tweet_id) >> 22) + SNOWFLAKE_EPOCH_MS) / 1000, UTC)


def search_query(tags: Sequence[str], conversations: Sequence[str], limit: int = QUERY_MAX) -> str | None:
    """`(#a OR #b OR conversation_id:1 ...) -is:retweet`, our newest conversations first, as
    many as fit in X's query length; None when there is nothing to search for."""

    def build(terms: list[str]) -> str:
        inner = terms[0] if len(terms) == 1 else f"({' OR '.join(terms)})"
        return f"{inner} -is:retweet"

    terms = [f"#{t.lstrip('#')}" for t in tags]
    for conversation in conversations:
        candidate = [*terms, f"conversation_id:{conversation}"]
        if len(build(candidate)) > limit:
            break
        terms = candidate
    return build(terms) if terms else None


def window_params(sweep: Sweep, start: datetime, now: datetime, seven_days: bool) -> dict[str, Any]:
    """`since_id` from the mark, or a `start_time` on the first read (and, for search, when the
    mark has left the 7-day window)."""
    floor = now - RECENT + RECENT_MARGIN
    if sweep.mark is not None and not (seven_days and snowflake_time(sweep.mark) < floor):
        return {"since_id": sweep.mark}
    return {"start_time": max(start, floor) if seven_days else start}


def read_search(
    call: Call,
    client: Any,
    to_text: ToText,
    tags: Sequence[str],
    conversations: Sequence[str],
    cursor: str | None,
    start: datetime,
    now: datetime,
) -> Batch:
    query = search_query(tags, conversations)
    sweep = Sweep.load(cursor)
    if query is None:
        return Batch((), cursor)

    def search(window: Mapping[str, Any]) -> Any:
        return call(
            lambda: client.search_recent_tweets(
                query, user_auth=True, next_token=sweep.page, **FIELDS, **window
            )
        )

    try:
        response = search(window_params(sweep, start, now, seven_days=True))
    except Rejected as exc:
        if "since_id" not in str(exc):
            raise
        # The mark left the window between our check and X's: start again from the window's edge.
        sweep = Sweep()
        response = search({"start_time": max(start, now - RECENT + RECENT_MARGIN)})
    return _batch(response, sweep, to_text, mentions_us=False)


def read_mentions(
    call: Call, client: Any, to_text: ToText, user_id: str, cursor: str | None, start: datetime, now: datetime
) -> Batch:
    sweep = Sweep.load(cursor)
    response = call(
        lambda: client.get_users_mentions(
            user_id,
            user_auth=True,
            pagination_token=sweep.page,
            **FIELDS,
            **window_params(sweep, start, now, seven_days=False),
        )
    )
    return _batch(response, sweep, to_text, mentions_us=True)


def _batch(response: Any, sweep: Sweep, to_text: ToText, mentions_us: bool) -> Batch:
    includes = response.includes or {}
    users = {str(u.id): str(u.username) for u in includes.get("users", [])}
    referenced = {str(t.id): t for t in includes.get("tweets", [])}
    tweets = list(response.data or [])
    posts, skipped = read_each(tweets, lambda t: to_mention(t, users, referenced, to_text, mentions_us), "x")
    meta = response.meta or {}
    newest = max((str(t.id) for t in tweets), key=lambda i: (len(i), i), default=None)
    after, more = sweep.advance(newest, meta.get("next_token"), reached_end=False)
    return Batch(tuple(posts), after.dump(), more, skipped)


def to_mention(
    tweet: Any, users: Mapping[str, str], referenced: Mapping[str, Any], to_text: ToText, mentions_us: bool
) -> Mention:
    data: Mapping[str, Any] = tweet.data
    tweet_id = str(tweet.id)
    author_id = str(data.get("author_id", ""))
    username = users.get(author_id, "i")
    entities = data.get("entities") or {}
    answered, answered_author = None, None
    for ref in data.get("referenced_tweets") or []:
        if ref.get("type") in ("replied_to", "quoted"):
            answered = str(ref["id"])
            if ref["type"] == "replied_to" and data.get("in_reply_to_user_id"):
                answered_author = str(data["in_reply_to_user_id"])
            elif answered in referenced:
                answered_author = str(referenced[answered].data.get("author_id", "")) or None
            break
    return Mention(
        id=tweet_id,
        url=f"https://x.com/{username}/status/{tweet_id}",
        author=username,
        text=to_text(str(data.get("text", "")), entities),
        created_at=snowflake_time(tweet_id),
        hashtags=tuple(str(h["tag"]) for h in entities.get("hashtags", [])),
        in_reply_to=answered,
        mentions_us=mentions_us,
        author_id=author_id,
        mentioned=tuple(str(m["id"]) for m in entities.get("mentions", []) if m.get("id")),
        in_reply_to_author=answered_author,
        in_reply_to_url=f"https://x.com/i/web/status/{answered}" if answered else None,
    )
