"""The objects of the Instagram emulator: professional accounts, containers, media and comments.

Ids look like the real ones (all numbers): an account 17841..., a container, a media, a comment
or a hashtag 17/18 digits. Times are datetimes, written the Graph way by the emulator.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.sandbox.graph.core import graph_time, page_token

PUBLIC_SITE = "https://www.instagram.com"
CONTAINER_TTL = timedelta(hours=24)
HASHTAG_WINDOW = timedelta(hours=24)  # recent_media: media published within 24 h
_TAG = re.compile(r"[#＃](\w+)")


@dataclass
class IgAccount:
    id: str
    name: str  # the sandbox account name (main, account2, ...)
    username: str
    page_id: str  # the Facebook Page it is connected to
    token: str


@dataclass(frozen=True)
class Stranger:
    id: str
    username: str


@dataclass
class Container:
    id: str
    account: IgAccount
    created_at: datetime
    ready_at: datetime
    image_url: str | None
    caption: str
    alt: str | None
    carousel_item: bool = False
    children: list[Container] = field(default_factory=list)
    fetched: bool = False  # the image was fetched and decoded
    error: tuple[int, str] | None = None  # (subcode, text) once processing failed
    media_id: str | None = None  # once published

    def status_code(self, now: datetime) -> str:
        if self.media_id is not None:
            return "PUBLISHED"
        if self.error is not None:
            return "ERROR"
        if now >= self.created_at + CONTAINER_TTL:
            return "EXPIRED"
        done = self.fetched and all(c.status_code(now) == "FINISHED" for c in self.children)
        return "FINISHED" if done and now >= self.ready_at else "IN_PROGRESS"

    def status(self, now: datetime) -> str:
        code = self.status_code(now)
        if code == "ERROR" and self.error is not None:
            return f"Error: {self.error[1]} ({self.error[0]})"
        return {
            "FINISHED": "Finished: Media has been uploaded and it is ready to be published.",
            "PUBLISHED": "Published: Media has been published.",
            "EXPIRED": "Expired: Media was not published within 24 hours.",
        }.get(code, "In Progress: Media is still being processed.")


@dataclass
class IgMedia:
    id: str
    owner: IgAccount | Stranger
    caption: str
    created_at: datetime
    shortcode: str
    alt: str | None = None
    children: list[str] = field(default_factory=list)  # child media ids (a carousel)
    tagged: list[IgAccount] = field(default_factory=list)
    deleted: bool = False

    @property
    def hashtags(self) -> set[str]:
        return {t.lower() for t in _TAG.findall(self.caption)}


@dataclass
class IgComment:
    id: str
    media: IgMedia
    author: IgAccount | Stranger
    text: str
    created_at: datetime
    parent: IgComment | None = None


class IgStore:
    """Everything the Instagram emulator holds; callers hold the emulator's lock."""

    def __init__(self, names: list[str]) -> None:
        self._ids = itertools.count(17_900_000_000_000_001)
        self.accounts = [
            IgAccount(
                str(17_841_400_000_000_001 + i), n, _username(n), str(1_000_000_000_001 + i), page_token(n)
            )
            for i, n in enumerate(names)
        ]
        self.people: dict[str, Stranger] = {}
        self.containers: dict[str, Container] = {}
        self.media: dict[str, IgMedia] = {}
        self.comments: dict[str, IgComment] = {}
        self.hashtags: dict[str, str] = {}  # name (lower case) -> id
        self.searched: dict[str, list[tuple[str, datetime]]] = {}  # account id -> (tag, first query)
        self.search_calls: list[tuple[str, str]] = []  # (account name, tag) of every search

    def next_id(self) -> str:
        return str(next(self._ids))

    def by_token(self, token: str | None) -> IgAccount | None:
        return next((a for a in self.accounts if token and a.token == token), None)

    def account(self, ref: str) -> IgAccount | None:
        return next((a for a in self.accounts if ref in (a.id, a.name, a.username)), None)

    def person(self, username: str) -> Stranger:
        if username not in self.people:
            self.people[username] = Stranger(self.next_id(), username)
        return self.people[username]

    def add_media(self, owner: IgAccount | Stranger, caption: str, now: datetime, **kw: Any) -> IgMedia:
        media_id = self.next_id()
        media = IgMedia(media_id, owner, caption, now, _shortcode(int(media_id)), **kw)
        self.media[media.id] = media
        return media

    def add_comment(
        self, media: IgMedia, author: IgAccount | Stranger, text: str, now: datetime, parent: IgComment | None
    ) -> IgComment:
        comment = IgComment(self.next_id(), media, author, text, now, parent)
        self.comments[comment.id] = comment
        return comment

    def hashtag_id(self, name: str) -> str:
        key = name.lower()
        if key not in self.hashtags:
            self.hashtags[key] = str(17_843_000_000_000_000 + len(self.hashtags) + 1)
        return self.hashtags[key]

    def hashtag_name(self, hashtag_id: str) -> str | None:
        return next((n for n, i in self.hashtags.items() if i == hashtag_id), None)

    def is_child(self, media: IgMedia) -> bool:
        """A carousel's item: part of its album, never listed on its own."""
        return any(media.id in m.children for m in self.media.values())

    def comment_count(self, media: IgMedia) -> int:
        return sum(1 for c in self.comments.values() if c.media is media)

    def own_media(self, account: IgAccount) -> list[IgMedia]:
        found = [
            m for m in self.media.values() if m.owner is account and not m.deleted and not self.is_child(m)
        ]
        return sorted(found, key=lambda m: (m.created_at, int(m.id)), reverse=True)


def _username(name: str) -> str:
    return "fightforthefuture" if name == "main" else f"campaign_{name}"


def _shortcode(number: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    code = ""
    while number:
        number, digit = divmod(number, 64)
        code = alphabet[digit] + code
    return code


def media_json(media: IgMedia, viewer: IgAccount, comments: int) -> dict[str, Any]:
    """Every field of a media we know; `shapes.project` picks."""
    full: dict[str, Any] = {
        "id": media.id,
        "caption": media.caption,
        "media_type": "CAROUSEL_ALBUM" if media.children else "IMAGE",
        "media_product_type": "FEED",
        "permalink": f"{PUBLIC_SITE}/p/{media.shortcode}/",
        "shortcode": media.shortcode,
        "timestamp": graph_time(media.created_at),
        "username": media.owner.username,
        "comments_count": comments,
        "like_count": 0,
        "is_comment_enabled": True,
    }
    if media.owner is viewer:
        full["owner"] = {"id": media.owner.id}
    if media.alt:
        full["alt_text"] = media.alt
    if media.children:
        full["children"] = {"data": [{"id": c} for c in media.children]}
    return full


def comment_json(comment: IgComment) -> dict[str, Any]:
    full: dict[str, Any] = {
        "id": comment.id,
        "text": comment.text,
        "timestamp": graph_time(comment.created_at),
        "username": comment.author.username,
        "from": {"id": comment.author.id, "username": comment.author.username},
        "like_count": 0,
        "hidden": False,
        "media": {"id": comment.media.id},
    }
    if comment.parent is not None:
        full["parent_id"] = comment.parent.id
    return full


def media_state(store: IgStore, media: IgMedia, base_url: str) -> dict[str, Any]:
    """A media as `/_sandbox/state` shows it (docs/sandbox.md): a carousel's alts in `media`."""
    viewer = store.accounts[0] if isinstance(media.owner, Stranger) else media.owner
    alts = [store.media[c].alt for c in media.children if c in store.media] or [media.alt]
    state = {
        "id": media.id,
        "url": f"{base_url}/p/{media.shortcode}/",
        "author": media.owner.username,
        "text": media.caption,
        "created_at": graph_time(media.created_at),
        "in_reply_to": None,
        "media": [{"id": media.id, "alt": alt} for alt in alts] if isinstance(media.owner, IgAccount) else [],
        "raw": media_json(media, viewer, store.comment_count(media)),
    }
    return state | ({"deleted": True} if media.deleted else {})


def comment_state(comment: IgComment, base_url: str) -> dict[str, Any]:
    return {
        "id": comment.id,
        "url": f"{base_url}/p/{comment.media.shortcode}/c/{comment.id}/",
        "author": comment.author.username,
        "text": comment.text,
        "created_at": graph_time(comment.created_at),
        "in_reply_to": (comment.parent or comment.media).id,
        "media": [],
        "raw": comment_json(comment),
    }
