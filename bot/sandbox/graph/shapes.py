"""The Graph JSON of a Page's posts and comments, and `fields=` projection, as the API answers them."""

from __future__ import annotations

import re
from typing import Any

from bot.sandbox.graph.core import graph_time
from bot.sandbox.graph.pages import Comment, FeedPost, Page, Person

PUBLIC_SITE = "https://www.facebook.com"
POST_DEFAULT = ("created_time", "message", "id")  # what a list gives without `fields`
COMMENT_DEFAULT = ("created_time", "from", "message", "id")
_FIELD = re.compile(r"([a-z_]+)(\{[^{}]*(?:\{[^{}]*\}[^{}]*)*\})?")


def post_json(post: FeedPost) -> dict[str, Any]:
    """Every field of a post we know; `project` picks."""
    full: dict[str, Any] = {
        "id": post.id,
        "created_time": graph_time(post.created_at),
        "updated_time": graph_time(post.created_at),
        "message": post.message,
        "permalink_url": f"{PUBLIC_SITE}/{post.page.id}/posts/{post.number}",
        "is_published": post.published,
        "status_type": "added_photos" if post.photos else "mobile_status_update",
        "from": {"name": author_name(post.author), "id": post.author.id},
    }
    if post.link:
        full["link"] = post.link
    if post.tags:
        offset = post.message.find(post.tags[0].title)
        full["message_tags"] = [
            {
                "id": t.id,
                "name": t.title,
                "type": "page",
                "offset": max(0, offset),
                "length": len(t.title),
            }
            for t in post.tags
        ]
    if post.photos:
        full["attachments"] = {
            "data": [
                {"media_type": "photo", "target": {"id": p.id}, "description": p.alt or ""}
                for p in post.photos
            ]
        }
    return full


def comment_json(comment: Comment, viewer: Page, replies: int) -> dict[str, Any]:
    """Every field of a comment as `viewer` (a Page token) may see it."""
    full: dict[str, Any] = {
        "id": comment.id,
        "created_time": graph_time(comment.created_at),
        "message": comment.message,
        "permalink_url": f"{PUBLIC_SITE}/{comment.post.page.id}/posts/{comment.post.number}/"
        f"?comment_id={comment.id.split('_')[1]}",
        "comment_count": replies,
        "like_count": 0,
    }
    # The commenter is shown only to the Page's own token (since February 2018).
    if viewer is comment.post.page:
        full["from"] = {"name": author_name(comment.author), "id": comment.author.id}
    if comment.parent is not None:
        full["parent"] = {"id": comment.parent.id}
    return full


def project(full: dict[str, Any], params: dict[str, Any], default: tuple[str, ...]) -> dict[str, Any]:
    """The fields `fields=` asks for (nested braces ignored), else `default`; `id` always."""
    wanted = [m.group(1) for m in _FIELD.finditer(str(params.get("fields") or ""))] or list(default)
    return {k: full[k] for k in [*wanted, "id"] if k in full}


def author_name(author: Page | Person) -> str:
    return author.title if isinstance(author, Page) else author.name
