"""Bluesky posts others made, as `Mention`s: from notifications and from searchPosts.

Both answers come newest first with an `indexedAt`; a read walks back page by page until it
reaches the cursor (the newest `indexedAt` seen before) or, on a first pass, the backfill time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from atproto_client.models.utils import get_model_as_dict
from atproto_core.uri import AtUri

from bot.platforms import Mention
from bot.platforms.feeds import MAX_PAGES, Page

# One fetched page: (indexedAt, author DID, the mention) per item, and the next page's cursor.
Fetched = tuple[list[tuple[datetime, str, Mention]], str | None]


def read_back(
    fetch: Callable[[str | None], Fetched], after: str | None, since: datetime, own_did: str
) -> Page:
    """Walk pages newest first down to `after` (an indexedAt) or `since`; oldest first out."""
    floor = parse_time(after) or since
    found: list[tuple[datetime, Mention]] = []
    newest = parse_time(after)
    cursor: str | None = None
    complete = False
    for _ in range(MAX_PAGES):
        items, cursor = fetch(cursor)
        reached = False
        for indexed_at, author_did, mention in items:
            newest = indexed_at if newest is None or indexed_at > newest else newest
            if indexed_at < floor:
                reached = True
                break
            if author_did != own_did:
                found.append((indexed_at, mention))
        if reached or not cursor or not items:
            complete = True
            break
    found.sort(key=lambda pair: pair[0])
    return Page(tuple(m for _, m in found), _format_time(newest) if newest else after, complete)


def mention_of(
    uri: str, author: Mapping[str, Any], record: Any, own_did: str, reason: str | None = None
) -> Mention:
    """A post record (SDK model or dict) by `author` ({did, handle}) as a Mention."""
    value = record if isinstance(record, Mapping) else get_model_as_dict(record)
    handle = str(author.get("handle") or author.get("did"))
    tags: list[str] = [str(t) for t in value.get("tags") or []]
    mentioned: set[str] = set()
    for facet in value.get("facets") or []:
        for feature in facet.get("features") or []:
            kind = str(feature.get("$type", "")).rsplit("#", 1)[-1]
            if kind == "tag":
                tags.append(str(feature.get("tag")))
            elif kind == "mention":
                mentioned.add(str(feature.get("did")))
    return Mention(
        id=uri,
        url=f"https://bsky.app/profile/{handle}/post/{AtUri.from_str(uri).rkey}",
        author=handle,
        text=str(value.get("text", "")),
        created_at=parse_time(value.get("createdAt")) or datetime.now(UTC),
        hashtags=tuple(dict.fromkeys(tags)),
        in_reply_to=_answered(value),
        mentions_us=reason == "mention" or own_did in mentioned,
    )


def _answered(value: Mapping[str, Any]) -> str | None:
    """The post this one replies to, or else the one it quotes."""
    parent = (value.get("reply") or {}).get("parent") or {}
    if parent.get("uri"):
        return str(parent["uri"])
    embed = value.get("embed") or {}
    quoted = embed.get("record") or {}
    quoted = quoted.get("record", quoted) if "uri" not in quoted else quoted  # recordWithMedia nests it
    return str(quoted["uri"]) if quoted.get("uri") else None


def parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
