"""The Instagram emulator: professional accounts behind Facebook Pages, on the Graph layer.

Facebook Login's flavour of the Instagram API (docs/platforms.md, Instagram), the same Page
tokens as the Facebook emulator (an account's token is its Page's):
    GET    /me, /{node}?fields=...           an account, container (status_code), media or comment
    POST   /{ig-user-id}/media               image_url, caption, alt_text, is_carousel_item;
                                             media_type=CAROUSEL with children -> a container
    POST   /{ig-user-id}/media_publish       creation_id -> the media id (the container: PUBLISHED)
    GET    /{ig-user-id}/media | tags        our media | media we are tagged in, newest first
    GET    /{ig-user-id}/content_publishing_limit    quota_usage, config (PUBLISH_QUOTA per 24 h)
    GET    /{media}/comments, POST /{media}/comments, GET /{comment}/replies, POST .../replies
    GET    /ig_hashtag_search?user_id=&q=    a hashtag id (30 unique hashtags per account per 7 days)
    GET    /{hashtag}/recent_media?user_id=  public media with the tag from the last 24 h
    DELETE /{media}                          {"success": true, "deleted_id": ...}
Anything else (a Page, its photos) is answered by the Facebook emulator given as `pages`, as
graph.facebook.com answers both.

The emulator fetches `image_url` over HTTP as Instagram does, on a thread: the container stays
IN_PROGRESS until the image is fetched and `processing_seconds` (emulator clock) have passed,
then FINISHED, or ERROR when it cannot be fetched (2207052), is not a JPEG (2207005), is over
8 MiB (2207004) or outside 4:5-1.91:1 (2207009).

Settings (`POST /_sandbox/settings`), besides the Graph ones: `processing_seconds` (default 1),
`publish_quota` (default 50).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from bot.sandbox.graph.core import GraphEmulator, GraphError, coded, json_response
from bot.sandbox.graph.igmedia import (
    HASHTAG_WINDOW,
    Container,
    IgAccount,
    IgComment,
    IgMedia,
    IgStore,
    comment_json,
    comment_state,
    media_json,
    media_state,
)
from bot.sandbox.graph.igrules import MAX_ALT, check_caption, fetch_problem, ig_error
from bot.sandbox.graph.shapes import project
from bot.sandbox.server import Request, Response, account_names

QUOTA_PERIOD = timedelta(hours=24)
HASHTAG_PERIOD = timedelta(days=7)
HASHTAG_BUDGET = 30
MEDIA_DEFAULT = ("id",)
COMMENT_DEFAULT = ("timestamp", "text", "id")


class InstagramEmulator(GraphEmulator):
    name = "instagram"
    LIMIT_CODE = 80002
    BUC_TYPE = "instagram"

    def __init__(self, *, pages: GraphEmulator | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.store = IgStore(account_names(self.account_count))
        # One Graph host: what is not Instagram's (a Page, its photos) the Facebook emulator answers.
        self.pages = pages

    def default_settings(self) -> dict[str, Any]:
        return {**super().default_settings(), "processing_seconds": 1.0, "publish_quota": 50}

    def apply_settings(self, settings: dict[str, Any]) -> None:
        super().apply_settings(settings)
        if "processing_seconds" in settings:  # containers still processing take the new pace
            delay = timedelta(seconds=float(self.settings["processing_seconds"]))
            for container in self.store.containers.values():
                container.ready_at = container.created_at + delay

    def reset(self) -> None:
        super().reset()
        self.store = IgStore(account_names(self.account_count))

    # -- the shared layer's hooks -----------------------------------------------------------

    def credentials(self) -> list[dict[str, str]]:
        return [
            {"name": a.name, "ig_user_id": a.id, "access_token": a.token, "username": a.username}
            for a in self.store.accounts
        ]

    def account_of(self, request: Request) -> str | None:
        account = self.store.by_token(
            self.token_of(request, {k: v[0] for k, v in request.query.items() if v})
        )
        return account.name if account is not None else None

    def usage_key(self, token: str | None) -> str | None:
        account = self.store.by_token(token)
        return account.id if account is not None else None

    def account_authors(self) -> dict[str, str]:
        return {a.name: a.username for a in self.store.accounts}

    def add_audience(
        self, kind: str, author: str, text: str, to: str | None, options: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        # `plain` changes nothing here: a caption carries no facets; its tags are only its text.
        unknown = sorted(set(options or {}) - {"plain"})
        if unknown:
            raise ValueError(f"the instagram emulator takes no audience options {unknown}")
        person, now = self.store.person(author), self.clock()
        if kind == "reply":
            media = self.store.media.get(str(to))
            comment = self.store.comments.get(str(to))
            if media is not None:
                return self._state_comment(self.store.add_comment(media, person, text, now, None))
            if comment is not None:
                parent = comment.parent or comment  # Instagram threads one level deep
                return self._state_comment(self.store.add_comment(comment.media, person, text, now, parent))
            raise ValueError(f"reply needs `to`: the id of a live media or comment, not {to!r}")
        if kind == "mention":
            account = self.store.account(str(to)) if to is not None else self.store.accounts[0]
            if account is None:
                raise ValueError(f"mention `to` should name one of our accounts, not {to!r}")
            if f"@{account.username}" not in text:
                text = f"@{account.username} {text}"
            return self._state_media(self.store.add_media(person, text, now, tagged=[account]))
        if "#notechforice" not in text.lower():
            text = f"{text} #NoTechForICE"
        return self._state_media(self.store.add_media(person, text, now))

    def state_posts(self) -> list[dict[str, Any]]:
        media = [m for m in self.store.media.values() if not self.store.is_child(m)]
        items = [(m.created_at, int(m.id), self._state_media(m)) for m in media]
        items += [(c.created_at, int(c.id), self._state_comment(c)) for c in self.store.comments.values()]
        return [state for _, _, state in sorted(items, key=lambda i: (i[0], i[1]))]

    def state_extra(self) -> dict[str, Any]:
        now = self.clock()
        containers = [
            {"id": c.id, "account": c.account.name, "status_code": c.status_code(now), "media_id": c.media_id}
            for c in self.store.containers.values()
        ]
        searches = {
            a.name: [t for n, t in self.store.search_calls if n == a.name] for a in self.store.accounts
        }
        return {**super().state_extra(), "containers": containers, "hashtag_searches": searches}

    def _state_media(self, media: IgMedia) -> dict[str, Any]:
        return media_state(self.store, media, self.base_url)

    def _state_comment(self, comment: IgComment) -> dict[str, Any]:
        return comment_state(comment, self.base_url)

    def _comment_count(self, media: IgMedia) -> int:
        return self.store.comment_count(media)

    # -- routes -----------------------------------------------------------------------------

    def route(self, method: str, path: str, params: dict[str, Any], token: str | None) -> Response:
        segments = [s for s in path.split("/") if s]
        if not segments or len(segments) > 2:
            raise coded(100, "(#100) Unsupported get request. Please read the Graph API documentation")
        if token is None:
            raise GraphError(104, "An access token is required to request this resource.")
        viewer = self.store.by_token(token)
        if viewer is None:
            raise coded(190)
        if segments == ["ig_hashtag_search"] and method == "GET":
            return self._hashtag_search(viewer, params)
        node_id = viewer.id if segments[0] == "me" else segments[0]
        edge = segments[1] if len(segments) > 1 else None
        account = self.store.account(node_id) if node_id.isdigit() else None
        if account is not None:
            return self._account_route(method, account, viewer, edge, params)
        container = self.store.containers.get(node_id)
        if container is not None and edge is None and method == "GET":
            return self._container(container, params)
        media = self.store.media.get(node_id)
        if media is not None and not media.deleted:
            return self._media_route(method, media, viewer, edge, params)
        comment = self.store.comments.get(node_id)
        if comment is not None and edge == "replies":
            return self._comments(method, comment.media, viewer, params, parent=comment)
        if comment is not None and edge is None and method == "GET":
            return json_response(200, project(comment_json(comment), params, COMMENT_DEFAULT))
        hashtag = self.store.hashtag_name(node_id)
        if hashtag is not None and edge == "recent_media" and method == "GET":
            return self._recent_media(hashtag, viewer, params, node_id)
        if hashtag is not None and edge is None:
            return json_response(200, project({"id": node_id, "name": hashtag}, params, ("id", "name")))
        if self.pages is not None:
            with self.pages.lock:
                return self.pages.route(method, path, params, token)
        raise coded(
            100,
            f"Unsupported {method.lower()} request. Object with ID '{node_id}' does not exist, cannot be "
            "loaded due to missing permissions, or does not support this operation.",
            subcode=33,
        )

    def _account_route(
        self, method: str, account: IgAccount, viewer: IgAccount, edge: str | None, params: dict[str, Any]
    ) -> Response:
        if account is not viewer:
            raise coded(200, "(#200) Permissions error")
        if edge is None and method == "GET":
            full = {
                "id": account.id,
                "username": account.username,
                "name": account.username,
                "media_count": len(self.store.own_media(account)),
                "followers_count": 0,
            }
            return json_response(200, project(full, params, ("id",)))
        if edge == "media" and method == "POST":
            return self._create(account, params)
        if edge == "media_publish" and method == "POST":
            return self._publish(account, params)
        if edge in ("media", "tags") and method == "GET":
            found = (
                self.store.own_media(account)
                if edge == "media"
                else sorted(
                    (m for m in self.store.media.values() if account in m.tagged and not m.deleted),
                    key=lambda m: (m.created_at, int(m.id)),
                    reverse=True,
                )
            )
            items = [
                project(media_json(m, viewer, self._comment_count(m)), params, MEDIA_DEFAULT) for m in found
            ]
            return json_response(200, self.page_of(items, params, f"/{account.id}/{edge}"))
        if edge == "content_publishing_limit" and method == "GET":
            remaining, _ = self.rates.peek(("quota", account.id), self._quota(), QUOTA_PERIOD)
            entry: dict[str, Any] = {"quota_usage": self._quota() - remaining}
            if "config" in str(params.get("fields") or ""):
                entry["config"] = {
                    "quota_total": self._quota(),
                    "quota_duration": int(QUOTA_PERIOD.total_seconds()),
                }
            return json_response(200, {"data": [entry]})
        raise coded(100, f"(#100) Unsupported {method.lower()} request.")

    def _quota(self) -> int:
        return int(self.settings["publish_quota"])

    def _create(self, account: IgAccount, params: dict[str, Any]) -> Response:
        now = self.clock()
        caption = str(params.get("caption") or "")
        media_type = str(params.get("media_type") or "IMAGE").upper()
        carousel_item = str(params.get("is_carousel_item") or "").lower() in ("true", "1")
        check_caption(caption)
        ready = now + timedelta(seconds=float(self.settings["processing_seconds"]))
        if media_type == "CAROUSEL":
            children = self._children(account, params)
            container = Container(
                self.store.next_id(), account, now, ready, None, caption, None, children=children
            )
            container.fetched = True
        elif media_type in ("IMAGE", ""):
            url = str(params.get("image_url") or "")
            if not url.startswith(("http://", "https://")):
                raise coded(100, "(#100) The parameter image_url is required.")
            if carousel_item and caption:
                raise coded(100, "(#100) A carousel item cannot have a caption.")
            alt = params.get("alt_text")
            if alt is not None and len(str(alt)) > MAX_ALT:
                raise coded(100, f"(#100) alt_text cannot be longer than {MAX_ALT} characters")
            container = Container(
                self.store.next_id(), account, now, ready, url, caption, alt and str(alt), carousel_item
            )
            threading.Thread(target=self._fetch, args=(container,), daemon=True).start()
        else:
            raise ig_error(100, 2207023, "The media type is unknown or not supported here.")
        self.store.containers[container.id] = container
        return json_response(200, {"id": container.id})

    def _children(self, account: IgAccount, params: dict[str, Any]) -> list[Container]:
        raw = str(params.get("children") or "").strip().strip("[]")
        ids = [i.strip().strip('"') for i in raw.split(",") if i.strip()]
        if not 2 <= len(ids) <= 10:
            raise ig_error(100, 2207028, "A carousel needs between 2 and 10 items.")
        children = []
        for child_id in ids:
            child = self.store.containers.get(child_id)
            if child is None or child.account is not account or not child.carousel_item:
                raise coded(100, f"(#100) Param children: {child_id} is not a carousel item container")
            children.append(child)
        return children

    def _fetch(self, container: Container) -> None:
        """Fetch and decode the image as Instagram does; the outcome lands on the container."""
        error = fetch_problem(str(container.image_url))
        with self.lock:
            container.error = error
            container.fetched = error is None

    def _container(self, container: Container, params: dict[str, Any]) -> Response:
        now = self.clock()
        full = {
            "id": container.id,
            "status_code": container.status_code(now),
            "status": container.status(now),
        }
        return json_response(200, project(full, params, ("id",)))

    def _publish(self, account: IgAccount, params: dict[str, Any]) -> Response:
        container = self.store.containers.get(str(params.get("creation_id") or ""))
        if container is None or container.account is not account or container.carousel_item:
            raise ig_error(24, 2207008, "The media builder with creation id was not found or has expired.")
        status = container.status_code(self.clock())
        if status == "IN_PROGRESS":
            raise ig_error(9007, 2207027, "The media is not ready for publishing, please wait for a moment")
        if status == "EXPIRED":
            raise ig_error(-2, 2207020, "The media you are trying to access has expired. Please try again.")
        if status == "ERROR":
            raise ig_error(-1, 2207032, "Failed to create media, please try again.")
        if status == "PUBLISHED":  # not documented: we refuse it as Instagram refuses a spent builder
            raise ig_error(24, 2207008, "The media builder with creation id was not found or has expired.")
        allowed, _, _ = self.rates.hit(("quota", account.id), self._quota(), QUOTA_PERIOD)
        if not allowed:
            raise ig_error(
                9, 2207042, "You have reached the maximum number of posts that is allowed for today."
            )
        children = []
        for child in container.children:
            child_media = self.store.add_media(account, "", self.clock(), alt=child.alt)
            child.media_id = child_media.id
            children.append(child_media.id)
        media = self.store.add_media(
            account, container.caption, self.clock(), alt=container.alt, children=children
        )
        container.media_id = media.id
        return json_response(200, {"id": media.id})

    def _media_route(
        self, method: str, media: IgMedia, viewer: IgAccount, edge: str | None, params: dict[str, Any]
    ) -> Response:
        if edge is None and method == "GET":
            return json_response(
                200, project(media_json(media, viewer, self._comment_count(media)), params, MEDIA_DEFAULT)
            )
        if edge is None and method == "DELETE":
            if media.owner is not viewer:
                raise coded(200, "(#200) Permissions error")
            media.deleted = True
            return json_response(200, {"success": True, "deleted_id": media.id})
        if edge == "comments":
            return self._comments(method, media, viewer, params, parent=None)
        raise coded(100, f"(#100) Unsupported {method.lower()} request.")

    def _comments(
        self, method: str, media: IgMedia, viewer: IgAccount, params: dict[str, Any], parent: IgComment | None
    ) -> Response:
        if method == "POST":
            message = str(params.get("message") or "")
            if not message.strip():
                raise coded(100, "(#100) The parameter message is required.")
            comment = self.store.add_comment(media, viewer, message, self.clock(), parent)
            return json_response(200, {"id": comment.id})
        if method != "GET":
            raise coded(100, f"(#100) Unsupported {method.lower()} request.")
        found = [
            c
            for c in self.store.comments.values()
            if c.media is media and (c.parent is parent if parent is not None else c.parent is None)
        ]
        found.sort(key=lambda c: (c.created_at, int(c.id)), reverse=True)  # newest first (v3.2+)
        items = []
        for comment in found:
            item = project(comment_json(comment), params, COMMENT_DEFAULT)
            if "replies" in str(params.get("fields") or "") and parent is None:
                replies = [r for r in self.store.comments.values() if r.parent is comment]
                replies.sort(key=lambda c: (c.created_at, int(c.id)), reverse=True)
                item["replies"] = {
                    "data": [
                        project(comment_json(r), {}, ("timestamp", "text", "id", "username")) for r in replies
                    ]
                }
            items.append(item)
        path = f"/{parent.id}/replies" if parent is not None else f"/{media.id}/comments"
        limit = str(params.get("limit") or "50")
        capped = {**params, "limit": str(min(50, int(limit)))} if limit.isdigit() else params  # 50 at most
        return json_response(200, self.page_of(items, capped, path, default_limit=50))

    def _hashtag_search(self, viewer: IgAccount, params: dict[str, Any]) -> Response:
        user_id, name = str(params.get("user_id") or ""), str(params.get("q") or "").lstrip("#").strip()
        if user_id != viewer.id:
            raise coded(100, "(#100) The parameter user_id is required and must be the token's account.")
        if not name or not name.replace("_", "").isalnum():
            raise coded(100, "(#100) The parameter q must be a hashtag name.")
        now, key = self.clock(), name.lower()
        searched = [(t, at) for t, at in self.store.searched.get(viewer.id, []) if now < at + HASHTAG_PERIOD]
        if key not in (t for t, _ in searched):
            if len(searched) >= HASHTAG_BUDGET:  # code not documented in our sources (docs/platforms.md)
                raise GraphError(
                    18, "(#18) This account has queried 30 unique hashtags in 7 days.", 400, 2207034
                )
            searched.append((key, now))
        self.store.searched[viewer.id] = searched
        self.store.search_calls.append((viewer.name, key))
        return json_response(200, {"data": [{"id": self.store.hashtag_id(name)}]})

    def _recent_media(
        self, hashtag: str, viewer: IgAccount, params: dict[str, Any], node_id: str
    ) -> Response:
        if str(params.get("user_id") or "") != viewer.id:
            raise coded(100, "(#100) The parameter user_id is required and must be the token's account.")
        if "username" in str(params.get("fields") or ""):
            raise coded(
                100, "(#100) Tried accessing nonexisting field (username) on node type (ShadowIGMedia)"
            )
        since = self.clock() - HASHTAG_WINDOW
        found = [
            m
            for m in self.store.media.values()
            if hashtag in m.hashtags and not m.deleted and m.created_at >= since
        ]
        found.sort(key=lambda m: (m.created_at, int(m.id)), reverse=True)
        items = [project(media_json(m, viewer, self._comment_count(m)), params, MEDIA_DEFAULT) for m in found]
        for item in items:
            item.pop("username", None)
            item.pop("owner", None)
        return json_response(200, self.page_of(items, params, f"/{node_id}/recent_media", default_limit=25))
