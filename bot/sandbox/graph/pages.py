"""The objects of the Facebook Page emulator: pages, posts, photos and comments, in memory.

Ids look like the real ones: a page is a number, a post `{page-id}_{n}`, a photo a number, a
comment `{n}_{m}`. Times are kept as datetimes and written the Graph way by the emulator.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.sandbox.graph.core import page_token


@dataclass
class Page:
    id: str
    name: str  # the sandbox account name (main, account2, ...)
    title: str  # the Page's display name
    token: str
    scopes: tuple[str, ...] = (
        "pages_show_list",
        "pages_read_engagement",
        "pages_read_user_content",
        "pages_manage_posts",
        "pages_manage_engagement",
    )


@dataclass(frozen=True)
class Person:
    id: str
    name: str


@dataclass
class Photo:
    id: str
    page: Page
    created_at: datetime
    url: str | None
    size: int
    alt: str | None
    caption: str = ""
    published: bool = True
    post_id: str | None = None
    data: bytes = field(default=b"", repr=False)  # an upload's bytes, served at its `images` source


@dataclass
class FeedPost:
    id: str
    page: Page  # the Page whose feed holds it
    author: Page | Person
    message: str
    created_at: datetime
    link: str | None = None
    published: bool = True
    photos: list[Photo] = field(default_factory=list)
    tags: list[Page] = field(default_factory=list)  # Pages the message mentions
    on_feed: bool = True  # False: a stranger's post on their own timeline (no API lists it)
    deleted: bool = False

    @property
    def number(self) -> str:
        return self.id.split("_")[-1]


@dataclass
class Comment:
    id: str
    post: FeedPost
    author: Page | Person
    message: str
    created_at: datetime
    parent: Comment | None = None
    deleted: bool = False


class PageStore:
    """Everything the Facebook emulator holds; callers hold the emulator's lock."""

    def __init__(self, names: list[str]) -> None:
        self._ids = itertools.count(1_000_000_000_001)
        titles = ["Fight for the Future", *(f"Campaign Page {i}" for i in range(2, len(names) + 1))]
        self.pages = [
            Page(str(next(self._ids)), n, t, page_token(n)) for n, t in zip(names, titles, strict=True)
        ]
        self.people: dict[str, Person] = {}
        self.posts: dict[str, FeedPost] = {}
        self.photos: dict[str, Photo] = {}
        self.comments: dict[str, Comment] = {}

    def next_id(self) -> str:
        return str(next(self._ids))

    def page_by_token(self, token: str | None) -> Page | None:
        return next((p for p in self.pages if token and p.token == token), None)

    def page(self, ref: str) -> Page | None:
        return next((p for p in self.pages if ref in (p.id, p.name)), None)

    def person(self, name: str) -> Person:
        if name not in self.people:
            self.people[name] = Person(self.next_id(), name)
        return self.people[name]

    def add_post(self, page: Page, author: Page | Person, message: str, now: datetime, **kw: Any) -> FeedPost:
        post = FeedPost(f"{page.id}_{self.next_id()}", page, author, message, now, **kw)
        self.posts[post.id] = post
        return post

    def add_comment(
        self, post: FeedPost, author: Page | Person, message: str, now: datetime, parent: Comment | None
    ) -> Comment:
        comment = Comment(f"{post.number}_{self.next_id()}", post, author, message, now, parent)
        self.comments[comment.id] = comment
        return comment

    def node(self, node_id: str) -> FeedPost | Photo | Comment | Page | None:
        found = self.posts.get(node_id) or self.photos.get(node_id) or self.comments.get(node_id)
        if found is not None and not getattr(found, "deleted", False):
            return found
        return self.page(node_id) if node_id.isdigit() else None

    def feed(self, page: Page, *, own_only: bool) -> list[FeedPost]:
        """The Page's feed, newest first: its own posts, or also visitors' posts and tags of it."""
        posts = [
            p
            for p in self.posts.values()
            if not p.deleted
            and p.on_feed
            and ((p.page is page and (not own_only or p.author is page)) or (not own_only and page in p.tags))
        ]
        return sorted(posts, key=lambda p: (p.created_at, int(p.number)), reverse=True)

    def comments_on(self, node_id: str, *, stream: bool) -> list[Comment]:
        """Comments on a post (top level, or all with `stream`) or replies to a comment, oldest first."""
        found = [
            c
            for c in self.comments.values()
            if not c.deleted
            and (
                (c.parent is not None and c.parent.id == node_id)
                or (c.post.id == node_id and (stream or c.parent is None))
            )
        ]
        return sorted(found, key=lambda c: (c.created_at, int(c.id.split("_")[-1])))
