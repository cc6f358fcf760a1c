"""What the Bluesky network holds and shows: actors, records, blobs, and the AppView's views.

The real split is a PDS (stores each account's repo) and an AppView (indexes every repo and
renders views). The emulator keeps both in one `Network`; this module renders its views in the
shapes of the reference AppView's snapshots (copies in tests/data/bluesky/*.snap): `$type` on
every union member (thread nodes, embed views, records), counts, `viewer`, `labels`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import regex

from bot.sandbox.bluesky_lexicon import (
    EMBED_EXTERNAL,
    EMBED_IMAGES,
    EMBED_RECORD,
    EMBED_RECORD_WITH_MEDIA,
    FACET_MENTION,
    FACET_TAG,
    LIKE,
    POST,
    REPOST,
    parse_datetime,
)
from bot.sandbox.bluesky_richtext import text_tags

THREAD_VIEW = "app.bsky.feed.defs#threadViewPost"
NOT_FOUND_POST = "app.bsky.feed.defs#notFoundPost"


def format_time(moment: datetime) -> str:
    """The AppView's timestamps: UTC with milliseconds and a Z."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass
class Actor:
    did: str
    handle: str
    display_name: str
    created_at: datetime
    name: str | None = None  # ours: the account name in config.yaml; None for the audience
    app_password: str | None = None
    password: str | None = None  # the account's main password (ours only)


@dataclass
class Blob:
    cid: str
    did: str
    mime_type: str
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass
class Record:
    uri: str
    cid: str
    did: str
    collection: str
    rkey: str
    value: dict[str, Any]
    indexed_at: datetime
    deleted: bool = False


@dataclass
class Notification:
    recipient: str  # did
    uri: str  # the record that caused it
    reason: str
    reason_subject: str | None
    indexed_at: datetime


@dataclass
class Network:
    """Every actor, record and blob, with the indexes the views need."""

    actors: dict[str, Actor] = field(default_factory=dict)  # by did
    records: dict[str, Record] = field(default_factory=dict)  # by uri: the current version
    history: list[Record] = field(default_factory=list)  # every record created, oldest first
    blobs: dict[str, Blob] = field(default_factory=dict)
    notifications: list[Notification] = field(default_factory=list)
    children: dict[str, list[str]] = field(default_factory=dict)  # parent uri -> reply uris
    subjects: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # (kind, uri) -> uris
    suspended: set[str] = field(default_factory=set)  # dids taken down: their posts gone from views

    def actor(self, identifier: str) -> Actor | None:
        """By DID or handle (case-insensitive, as handles are)."""
        if identifier.startswith("did:"):
            return self.actors.get(identifier)
        handle = identifier.lower().removeprefix("@")
        return next((a for a in self.actors.values() if a.handle == handle), None)

    def live(self, uri: str) -> Record | None:
        record = self.records.get(uri)
        return record if record is not None and not record.deleted else None

    def author_of(self, uri: str) -> str | None:
        record = self.records.get(uri)
        return record.did if record is not None else None

    def count(self, kind: str, uri: str) -> int:
        return sum(1 for u in self.subjects.get((kind, uri), []) if self.live(u))

    def index(self, record: Record) -> None:
        """Add a new record to the indexes and notify the accounts it concerns."""
        self.records[record.uri] = record
        self.history.append(record)
        value = record.value
        notified: set[tuple[str, str]] = set()

        def notify(recipient: str | None, reason: str, subject: str | None) -> None:
            if not recipient or recipient == record.did or (recipient, reason) in notified:
                return  # no self-notifications; one per reason and recipient
            notified.add((recipient, reason))
            self.notifications.append(Notification(recipient, record.uri, reason, subject, record.indexed_at))

        if record.collection in (REPOST, LIKE):
            subject = value["subject"]["uri"]
            self.subjects.setdefault((record.collection, subject), []).append(record.uri)
            notify(self.author_of(subject), "repost" if record.collection == REPOST else "like", subject)
            return
        if record.collection != POST:
            return
        reply = value.get("reply")
        if reply:
            parent, root = reply["parent"]["uri"], reply["root"]["uri"]
            self.children.setdefault(parent, []).append(record.uri)
            notify(self.author_of(parent), "reply", parent)
            notify(self.author_of(root), "reply", parent)
        quoted = _quoted_uri(value.get("embed"))
        if quoted:
            self.subjects.setdefault(("quote", quoted), []).append(record.uri)
            notify(self.author_of(quoted), "quote", quoted)
        for did in mentioned_dids(value):
            notify(did, "mention", None)


def mentioned_dids(value: dict[str, Any]) -> list[str]:
    return [
        f["did"]
        for facet in value.get("facets") or []
        for f in facet.get("features", [])
        if f.get("$type") == FACET_MENTION
    ]


def post_tags(value: dict[str, Any]) -> set[str]:
    """Tags from facets and the `tags` field, lowercased (search matches them case-insensitively)."""
    tags = {
        f["tag"].lower()
        for facet in value.get("facets") or []
        for f in facet.get("features", [])
        if f.get("$type") == FACET_TAG
    }
    return tags | {t.lower() for t in value.get("tags") or []}


def _quoted_uri(embed: Any) -> str | None:
    if not isinstance(embed, dict):
        return None
    if embed.get("$type") == EMBED_RECORD:
        return str(embed["record"]["uri"])
    if embed.get("$type") == EMBED_RECORD_WITH_MEDIA:
        return str(embed["record"]["record"]["uri"])
    return None


class AppView:
    """Renders the network's views; `base_url` is where the emulator serves image bytes."""

    def __init__(self, network: Network, base_url: Callable[[], str]) -> None:
        self.net = network
        self._base_url = base_url

    # -- actors ---------------------------------------------------------------------------

    def profile_basic(self, actor: Actor) -> dict[str, Any]:
        return {
            "did": actor.did,
            "handle": actor.handle,
            "displayName": actor.display_name,
            "associated": {
                "chat": {"allowIncoming": "following"},  # the app's default
                "activitySubscription": {"allowSubscriptions": "followers"},
            },
            "labels": [],
            "viewer": {
                "muted": False,
                "blockedBy": False,
                "mutedOnlyQuoteposts": False,
                "mutedOnlyReposts": False,
            },
            "createdAt": format_time(actor.created_at),
        }

    def profile_detailed(self, actor: Actor) -> dict[str, Any]:
        posts = sum(
            1
            for r in self.net.records.values()
            if r.did == actor.did and r.collection == POST and not r.deleted
        )
        return {
            **self.profile_basic(actor),
            "description": "",
            "followersCount": 0,
            "followsCount": 0,
            "postsCount": posts,
            "indexedAt": format_time(actor.created_at),
        }

    # -- posts ----------------------------------------------------------------------------

    def post_view(self, record: Record) -> dict[str, Any]:
        view: dict[str, Any] = {
            "uri": record.uri,
            "cid": record.cid,
            "author": self.profile_basic(self.net.actors[record.did]),
            "record": record.value,
        }
        embed = self.embed_view(record.did, record.value.get("embed"))
        if embed is not None:
            view["embed"] = embed
        return {
            **view,
            "bookmarkCount": 0,
            "replyCount": sum(1 for u in self.net.children.get(record.uri, []) if self.net.live(u)),
            "repostCount": self.net.count(REPOST, record.uri),
            "likeCount": self.net.count(LIKE, record.uri),
            "quoteCount": self.net.count("quote", record.uri),
            "indexedAt": format_time(record.indexed_at),
            "viewer": {"bookmarked": False, "embeddingDisabled": False, "threadMuted": False},
            "labels": [],
        }

    def embed_view(self, did: str, embed: Any) -> dict[str, Any] | None:
        if not isinstance(embed, dict):
            return None
        etype = embed.get("$type")
        if etype == EMBED_IMAGES:
            images = []
            for image in embed["images"]:
                cid = image["image"]["ref"]["$link"]
                view = {
                    "thumb": self.image_url("feed_thumbnail", did, cid),
                    "fullsize": self.image_url("feed_fullsize", did, cid),
                    "alt": image["alt"],
                }
                if "aspectRatio" in image:
                    view["aspectRatio"] = image["aspectRatio"]
                images.append(view)
            return {"$type": f"{EMBED_IMAGES}#view", "images": images}
        if etype == EMBED_EXTERNAL:
            external = embed["external"]
            shown = {k: external[k] for k in ("uri", "title", "description")}
            if "thumb" in external:
                shown["thumb"] = self.image_url("feed_thumbnail", did, external["thumb"]["ref"]["$link"])
            return {"$type": f"{EMBED_EXTERNAL}#view", "external": shown}
        if etype == EMBED_RECORD:
            return {"$type": f"{EMBED_RECORD}#view", "record": self._embedded_record(embed["record"]["uri"])}
        if etype == EMBED_RECORD_WITH_MEDIA:
            return {
                "$type": f"{EMBED_RECORD_WITH_MEDIA}#view",
                "media": self.embed_view(did, embed["media"]),
                "record": {"record": self._embedded_record(embed["record"]["record"]["uri"])},
            }
        return None

    def _embedded_record(self, uri: str) -> dict[str, Any]:
        record = self.net.live(uri)
        if record is None:
            return {"$type": f"{EMBED_RECORD}#viewNotFound", "uri": uri, "notFound": True}
        view = self.post_view(record)
        return {
            "$type": f"{EMBED_RECORD}#viewRecord",
            "uri": record.uri,
            "cid": record.cid,
            "author": view["author"],
            "value": record.value,
            "labels": [],
            "likeCount": view["likeCount"],
            "replyCount": view["replyCount"],
            "repostCount": view["repostCount"],
            "quoteCount": view["quoteCount"],
            "indexedAt": view["indexedAt"],
            "embeds": [view["embed"]] if "embed" in view else [],
        }

    def image_url(self, kind: str, did: str, cid: str) -> str:
        blob = self.net.blobs.get(cid)
        ext = blob.mime_type.split("/")[-1] if blob else "jpeg"
        return f"{self._base_url()}/img/{kind}/plain/{did}/{cid}@{ext}"

    # -- threads --------------------------------------------------------------------------

    def thread(self, record: Record, depth: int, parent_height: int) -> dict[str, Any]:
        node = self._thread_down(record, depth)
        parent = self._thread_up(record, parent_height)
        return {**node, "parent": parent} if parent is not None else node

    def _thread_down(self, record: Record, depth: int) -> dict[str, Any]:
        node: dict[str, Any] = {"$type": THREAD_VIEW, "post": self.post_view(record)}
        if depth > 0:
            replies = [self.net.live(u) for u in self.net.children.get(record.uri, [])]
            node["replies"] = [self._thread_down(r, depth - 1) for r in replies if r is not None]
        node["threadContext"] = {}
        return node

    def _thread_up(self, record: Record, height: int) -> dict[str, Any] | None:
        reply = record.value.get("reply")
        if not reply or height <= 0:
            return None
        parent_uri = reply["parent"]["uri"]
        parent = self.net.live(parent_uri)
        if parent is None:
            return {"$type": NOT_FOUND_POST, "uri": parent_uri, "notFound": True}
        node: dict[str, Any] = {"$type": THREAD_VIEW, "post": self.post_view(parent), "threadContext": {}}
        grand = self._thread_up(parent, height - 1)
        return {**node, "parent": grand} if grand is not None else node

    # -- notifications and search ---------------------------------------------------------

    def notification_views(self, notes: Iterable[Notification]) -> list[dict[str, Any]]:
        views = []
        for note in notes:
            record = self.net.records[note.uri]
            view: dict[str, Any] = {
                "uri": note.uri,
                "cid": record.cid,
                "author": self.profile_basic(self.net.actors[record.did]),
                "reason": note.reason,
            }
            if note.reason_subject is not None:
                view["reasonSubject"] = note.reason_subject
            view |= {
                "record": record.value,
                "isRead": False,
                "indexedAt": format_time(note.indexed_at),
                "labels": [],
            }
            views.append(view)
        return views


_WORD = regex.compile(r"\w+")


@dataclass(frozen=True)
class SearchQuery:
    """searchPosts parameters. `q` terms: words (all must appear), `#tag`, `from:handle`."""

    q: str
    tags: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    author: str | None = None  # did
    mentions: str | None = None  # did

    def matches(self, record: Record, resolve: Callable[[str], str | None]) -> bool:
        if record.collection != POST or record.deleted:
            return False
        value = record.value
        text = str(value.get("text", ""))
        words = {w.lower() for w in _WORD.findall(text)}
        tags = post_tags(value)
        # `#tag` in `q` is full-text: it finds the tag in the text too, faceted or not; the
        # `tag` parameter filters on the indexed tags only, facets and `tags` (docs/platforms.md).
        written = tags | text_tags(text)
        for term in self.q.split():
            if term.startswith(("#", "＃")) and len(term) > 1:
                if term[1:].lower() not in written:
                    return False
            elif term.startswith("from:"):
                if resolve(term[5:]) != record.did:
                    return False
            elif not {w.lower() for w in _WORD.findall(term)} <= words:
                return False
        if any(t.lower() not in tags for t in self.tags):
            return False
        if self.author and record.did != self.author:
            return False
        if self.mentions and self.mentions not in mentioned_dids(value):
            return False
        if self.since and record.indexed_at < self.since:
            return False
        return not (self.until and record.indexed_at >= self.until)


def parse_search_time(text: str) -> datetime | None:
    """`since`/`until`: a datetime, or an ISO date (midnight UTC)."""
    if len(text) == 10:
        text += "T00:00:00Z"
    return parse_datetime(text)
