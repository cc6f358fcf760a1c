"""Bluesky's monitoring reads through atproto: searchPosts for a tag, listNotifications per account.

Search asks `q="#tag"` alone, with `sort=latest` and `since` the mark: the `tag` parameter
filters on facets and the record's `tags` only, and would drop the many posts whose text carries
the tag without a facet (docs/platforms.md, Bluesky search). Which tags a post uses is decided
later, from its facets, `tags` and text (bot.monitoring.classification).
listNotifications has no `since`: a sweep reads down to the mark and stops there. Records read
from the AppView may come back as the SDK's models or, without `$type`, as its DotDicts; both
answer attribute access in snake_case.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from atproto_client import models
from atproto_core.uri import AtUri

from bot.platforms import Batch, Mention, read_each, utc_time
from bot.platforms.paging import Sweep, key

PAGE_SIZE = 100
REASONS = ["reply", "quote", "mention"]
TAG = "app.bsky.richtext.facet#tag"
MENTION = "app.bsky.richtext.facet#mention"
EMBED_RECORD = "app.bsky.embed.record"
EMBED_RECORD_WITH_MEDIA = "app.bsky.embed.recordWithMedia"

Call = Callable[[Callable[[], Any]], Any]


def timestamp(moment: datetime) -> str:
    """The AppView's form: UTC, milliseconds, Z (so marks compare as text)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _type_of(obj: Any) -> str | None:
    found = getattr(obj, "py_type", None)
    if found is None and hasattr(obj, "get"):
        found = obj.get("$type")
    return str(found) if found else None


def _normalized_time(raw: Any) -> str:
    moment = utc_time(str(raw)) if raw else None
    return timestamp(moment) if moment else str(raw or "")


def read_search(call: Call, client: Any, tag: str, cursor: str | None, start: datetime) -> Batch:
    sweep = Sweep.load(cursor)
    bare = tag.lstrip("#")
    params = models.AppBskyFeedSearchPosts.Params(
        q=f"#{bare}",
        sort="latest",
        since=sweep.mark or timestamp(start),
        limit=PAGE_SIZE,
        cursor=sweep.page,
    )
    answer = call(lambda: client.app.bsky.feed.search_posts(params))
    views = list(answer.posts or [])
    posts, skipped = read_each(
        views, lambda v: to_mention(v.uri, v.author, v.record, v.indexed_at), "bluesky search"
    )
    newest = max((_normalized_time(v.indexed_at) for v in views), key=key, default=None)
    after, more = sweep.advance(newest, answer.cursor if views else None, reached_end=False)
    return Batch(tuple(posts), after.dump(), more, skipped)


def read_notifications(call: Call, client: Any, cursor: str | None, start: datetime) -> Batch:
    sweep = Sweep.load(cursor)
    params = models.AppBskyNotificationListNotifications.Params(
        reasons=REASONS, limit=PAGE_SIZE, cursor=sweep.page
    )
    answer = call(lambda: client.app.bsky.notification.list_notifications(params))
    floor = sweep.mark or timestamp(start)
    notes, newest, reached = [], None, False
    for note in answer.notifications or []:
        indexed = _normalized_time(note.indexed_at)
        if key(indexed) < key(floor):
            reached = True  # older than the mark: read by an earlier sweep
            break
        if note.reason not in REASONS:
            continue
        if newest is None or key(indexed) > key(newest):
            newest = indexed
        notes.append(note)
    posts, skipped = read_each(
        notes,
        lambda n: to_mention(n.uri, n.author, n.record, n.indexed_at, mentions_us=n.reason == "mention"),
        "bluesky notifications",
    )
    after, more = sweep.advance(newest, answer.cursor, reached_end=reached or not answer.notifications)
    return Batch(tuple(posts), after.dump(), more, skipped)


def web_url(uri: str, who: str | None = None) -> str:
    at = AtUri.from_str(uri)
    return f"https://bsky.app/profile/{who or at.hostname}/post/{at.rkey}"


def _features(record: Any) -> Iterable[Any]:
    for facet in getattr(record, "facets", None) or []:
        yield from getattr(facet, "features", None) or []


def _answered(record: Any) -> str | None:
    """The post a record replies to, else the post it quotes."""
    reply = getattr(record, "reply", None)
    if reply is not None:
        return str(reply.parent.uri)
    embed = getattr(record, "embed", None)
    if embed is None:
        return None
    kind = _type_of(embed)
    if kind == EMBED_RECORD:
        return str(embed.record.uri)
    if kind == EMBED_RECORD_WITH_MEDIA:
        return str(embed.record.record.uri)
    return None


def to_mention(uri: str, author: Any, record: Any, indexed_at: Any, mentions_us: bool = False) -> Mention:
    features = list(_features(record))
    tags = [str(f.tag) for f in features if _type_of(f) == TAG]
    tags += [str(t) for t in getattr(record, "tags", None) or [] if str(t) not in tags]
    answered = _answered(record)
    # createdAt is whatever the author's client wrote; indexedAt is the AppView's own clock.
    created = utc_time(getattr(record, "created_at", None)) or utc_time(str(indexed_at))
    return Mention(
        id=uri,
        url=web_url(uri, str(author.handle)),
        author=str(author.handle),
        text=str(getattr(record, "text", "") or ""),
        created_at=created,
        hashtags=tuple(tags),
        in_reply_to=answered,
        mentions_us=mentions_us,
        author_id=str(author.did),
        mentioned=tuple(str(f.did) for f in features if _type_of(f) == MENTION),
        in_reply_to_author=AtUri.from_str(answered).hostname if answered else None,
        in_reply_to_url=web_url(answered) if answered else None,
    )
