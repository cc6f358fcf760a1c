"""The read endpoints the bot monitors with: notifications, a hashtag's timeline, an account's statuses."""

from __future__ import annotations

from bot.sandbox.mastodon_entities import Actor, Status
from bot.sandbox.mastodon_http import flag, page_of
from bot.sandbox.mastodon_store import MastodonStore
from bot.sandbox.server import Request, Response


def in_hashtag_feed(status: Status, tag: str, *, local: bool) -> bool:
    """Public, original statuses with the tag: unlisted, private and direct ones never show."""
    return (
        status.visibility == "public"
        and status.reblog is None
        and tag.lower() in status.tags
        and (not local or status.author.domain is None)
    )


def notifications(store: MastodonStore, request: Request, viewer: Actor, base_url: str) -> Response:
    """GET /api/v1/notifications: `types[]`, `exclude_types[]`, `account_id`, paging (40, at most 80)."""
    types = request.query.get("types[]") or request.query.get("types")
    excluded = request.query.get("exclude_types[]") or request.query.get("exclude_types") or []
    account_id = request.arg("account_id")
    items = [
        n
        for n in sorted(store.notifications, key=lambda n: -n.id)
        if n.recipient is viewer
        and (n.status is None or not n.status.deleted)  # they go with their status
        and (not types or n.kind in types)
        and n.kind not in excluded
        and (account_id is None or n.sender.id == account_id)
    ]
    carried = ("account_id", "exclude_types[]", "limit", "types[]")
    page, headers = page_of(request, base_url, items, lambda n: n.id, default=40, maximum=80, carried=carried)
    return Response.json(200, [store.notification_json(n, base_url) for n in page], headers)


def tag_timeline(
    store: MastodonStore, request: Request, viewer: Actor | None, tag: str, base_url: str
) -> Response:
    """GET /api/v1/timelines/tag/:tag: `local`, `remote`, `only_media`, paging (20, at most 40)."""
    local, remote, only_media = (flag(request.arg(name)) for name in ("local", "remote", "only_media"))
    items = [
        s
        for s in store.live_statuses()
        if in_hashtag_feed(s, tag, local=local)
        and not (remote and s.author.domain is None)
        and (not only_media or s.media)
    ]
    carried = ("limit", "local", "only_media", "remote")
    page, headers = page_of(request, base_url, items, lambda s: s.id, default=20, maximum=40, carried=carried)
    return Response.json(200, [store.status_json(s, viewer, base_url) for s in page], headers)


def account_statuses(
    store: MastodonStore, request: Request, viewer: Actor | None, actor: Actor, base_url: str
) -> Response:
    """GET /api/v1/accounts/:id/statuses, with what `viewer` may see."""
    exclude_replies = flag(request.arg("exclude_replies"))
    exclude_reblogs = flag(request.arg("exclude_reblogs"))
    exclude_direct = flag(request.arg("exclude_direct"))
    only_media = flag(request.arg("only_media"))
    pinned = flag(request.arg("pinned"))
    tagged = (request.arg("tagged") or "").lower()
    items = [
        s
        for s in store.live_statuses()
        if s.author is actor
        and store.visible(s, viewer)
        and not pinned  # the sandbox pins nothing
        # exclude_replies keeps an author's replies to itself (threads), as Mastodon does.
        and not (exclude_replies and s.in_reply_to is not None and s.in_reply_to.author is not actor)
        and not (exclude_reblogs and s.reblog is not None)
        and not (exclude_direct and s.visibility == "direct")
        and (not only_media or s.media)
        and (not tagged or tagged in s.tags)
    ]
    carried = (
        "exclude_direct", "exclude_reblogs", "exclude_replies", "limit", "only_media", "pinned", "tagged"
    )  # fmt: skip
    page, headers = page_of(request, base_url, items, lambda s: s.id, default=20, maximum=40, carried=carried)
    return Response.json(200, [store.status_json(s, viewer, base_url) for s in page], headers)
