"""The Facebook Pages emulator: the Graph API routes a Page's posting and monitoring use.

Shapes follow answers recorded from the real API (docs/platforms.md, Facebook):
    GET    /me, /{node}?fields=...          a Page, post, photo or comment
    GET    /debug_token?input_token=...     the token's validity, expiry and scopes
    POST   /{page}/feed                     message and/or link, published, attached_media[i]
    POST   /{page}/photos                   url or a multipart file, caption, published, alt_text_custom
    GET    /{page}/posts | feed | published_posts   newest first, since/until, cursor paging
    GET    /{node}/comments                 filter=toplevel|stream, order, summary, paging
    POST   /{node}/comments                 the Page answers
    DELETE /{node}                          {"success": true}

Settings (`POST /_sandbox/settings`), besides the Graph ones (bot.sandbox.graph.core):
    duplicates     "506" (default): the same message as the Page's latest post is refused with
                   506; "368": refused as a policy block; "allow": accepted
    expires_at     Unix time the Page tokens expire at, as debug_token reports it (0: never)
    scopes         the permissions the Page tokens hold (default: all a campaign Page needs)
    moderate       false: the tokens lack the MODERATE task, so comments come without `id`
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from bot.campaign.images import inspect_image
from bot.sandbox.graph.core import (
    GraphEmulator,
    GraphError,
    coded,
    graph_time,
    json_response,
    parse_time,
)
from bot.sandbox.graph.pages import Comment, FeedPost, Page, PageStore, Photo
from bot.sandbox.graph.shapes import (
    COMMENT_DEFAULT,
    POST_DEFAULT,
    PUBLIC_SITE,
    author_name,
    comment_json,
    post_json,
    project,
)
from bot.sandbox.server import FilePart, Request, Response, account_names

MAX_MESSAGE = 63_206
CDN_PATH = "/cdn/photos/"  # where an uploaded photo's bytes are served (its `images` source)
MAX_PHOTO_BYTES = 10 * 1024 * 1024
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")
_BOOL = {"true": True, "1": True, "false": False, "0": False}


class FacebookEmulator(GraphEmulator):
    name = "facebook"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.store = PageStore(account_names(self.account_count))

    def default_settings(self) -> dict[str, Any]:
        return {
            **super().default_settings(),
            "duplicates": "506",
            "expires_at": 0,
            "scopes": None,
            "moderate": True,
        }

    def apply_settings(self, settings: dict[str, Any]) -> None:
        if settings.get("duplicates", "506") not in ("506", "368", "allow"):
            raise ValueError("duplicates must be 506, 368 or allow")
        super().apply_settings(settings)

    def reset(self) -> None:
        super().reset()
        self.store = PageStore(account_names(self.account_count))  # ids and tokens are derived

    # -- the shared layer's hooks -----------------------------------------------------------

    def credentials(self) -> list[dict[str, str]]:
        return [
            {"name": p.name, "page_id": p.id, "access_token": p.token, "app_secret": self.app_secret}
            for p in self.store.pages
        ]

    def account_of(self, request: Request) -> str | None:
        token = self.token_of(request, {k: v[0] for k, v in request.query.items() if v})
        if token is None and request.headers.get("Content-Type", "").startswith("application/x-www"):
            token = next(iter(request.form().get("access_token", [])), None)
        page = self.store.page_by_token(token)
        return page.name if page is not None else None

    def usage_key(self, token: str | None) -> str | None:
        page = self.store.page_by_token(token)
        return page.id if page is not None else None

    def account_authors(self) -> dict[str, str]:
        return {p.name: p.title for p in self.store.pages}

    def add_audience(
        self, kind: str, author: str, text: str, to: str | None, options: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        # `plain` changes nothing here: a Page post carries no facets, only `message_tags`
        # for the Pages it names.
        unknown = sorted(set(options or {}) - {"plain"})
        if unknown:
            raise ValueError(f"the facebook emulator takes no audience options {unknown}")
        if kind not in ("reply", "mention", "hashtag"):
            raise ValueError(f"the facebook emulator plays reply, mention or hashtag, not {kind!r}")
        person, now = self.store.person(author), self.clock()
        if kind == "reply":
            node = self.store.node(str(to)) if to is not None else None
            if isinstance(node, FeedPost):
                return self._state_comment(self.store.add_comment(node, person, text, now, None))
            if isinstance(node, Comment):
                parent = node.parent or node  # Facebook threads one level deep
                return self._state_comment(self.store.add_comment(node.post, person, text, now, parent))
            raise ValueError(f"reply needs `to`: the id of a live post or comment, not {to!r}")
        if kind == "mention":
            page = self.store.page(str(to)) if to is not None else self.store.pages[0]
            if page is None:
                raise ValueError(f"mention `to` should name one of our Pages, not {to!r}")
            if page.title not in text:
                text = f"{page.title} {text}"
            return self._state_post(self.store.add_post(page, person, text, now, tags=[page]))
        # No public hashtag search on Facebook: a stranger's post on their own timeline, which
        # no endpoint of a Page lists.
        if "#notechforice" not in text.lower():
            text = f"{text} #NoTechForICE"
        return self._state_post(self.store.add_post(self.store.pages[0], person, text, now, on_feed=False))

    def state_posts(self) -> list[dict[str, Any]]:
        items: list[tuple[datetime, int, dict[str, Any]]] = []
        for post in self.store.posts.values():
            items.append((post.created_at, int(post.number), self._state_post(post)))
        for comment in self.store.comments.values():
            items.append((comment.created_at, int(comment.id.split("_")[1]), self._state_comment(comment)))
        return [state for _, _, state in sorted(items, key=lambda i: (i[0], i[1]))]

    def _state_post(self, post: FeedPost) -> dict[str, Any]:
        state = {
            "id": post.id,
            "url": self._post_url(post),
            "author": author_name(post.author),
            "text": post.message,
            "created_at": graph_time(post.created_at),
            "in_reply_to": None,
            "media": [{"id": p.id, "alt": p.alt} for p in post.photos],
            "raw": post_json(post),
        }
        return state | ({"deleted": True} if post.deleted else {})

    def _post_url(self, post: FeedPost) -> str:
        return f"{self.base_url}/{post.page.id}/posts/{post.number}"

    def _state_comment(self, comment: Comment) -> dict[str, Any]:
        state = {
            "id": comment.id,
            "url": f"{self._post_url(comment.post)}/comments/{comment.id}",
            "author": author_name(comment.author),
            "text": comment.message,
            "created_at": graph_time(comment.created_at),
            "in_reply_to": (comment.parent or comment.post).id,
            "media": [],
            "raw": self._comment_json(comment, comment.post.page),
        }
        return state | ({"deleted": True} if comment.deleted else {})

    def _comment_json(self, comment: Comment, viewer: Page) -> dict[str, Any]:
        replies = sum(1 for c in self.store.comments.values() if c.parent is comment and not c.deleted)
        return comment_json(comment, viewer, replies)

    # -- routes -----------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        if request.method == "GET" and request.path.startswith(CDN_PATH):  # no token, as on a CDN
            with self.lock:
                photo = self.store.photos.get(request.path.removeprefix(CDN_PATH))
            if photo is None or not photo.data:
                return Response(404, b"", {"Content-Type": "text/plain"})
            return Response(200, photo.data, {"Content-Type": inspect_image(photo.data).mime})
        return super().handle(request)

    def route(self, method: str, path: str, params: dict[str, Any], token: str | None) -> Response:
        segments = [s for s in path.split("/") if s]
        if len(segments) > 2:
            return json_response(404, {"error": {"message": "Unknown path components", "code": 2500}})
        if not segments:
            raise coded(100, "(#100) Unsupported get request. Please read the Graph API documentation")
        if token is None:
            raise GraphError(104, "An access token is required to request this resource.")
        viewer = self.store.page_by_token(token)
        if viewer is None:
            raise coded(190)
        if segments == ["debug_token"]:
            return self._debug_token(params)
        node_id = viewer.id if segments[0] == "me" else segments[0]
        edge = segments[1] if len(segments) > 1 else None
        node = self.store.node(node_id)
        if node is None:
            raise coded(
                100,
                f"Unsupported {method.lower()} request. Object with ID '{node_id}' does not exist, cannot be "
                "loaded due to missing permissions, or does not support this operation.",
                subcode=33,
            )
        if edge is None:
            if method == "DELETE":
                return self._delete(viewer, node)
            if method == "GET":
                return self._read(node, viewer, params)
        elif edge == "comments" and not isinstance(node, Page):
            if method == "GET":
                return self._comments(node, viewer, params, node_id)
            if method == "POST":
                return self._comment(node, viewer, params)
        elif isinstance(node, Page) and method == "GET" and edge in ("posts", "feed", "published_posts"):
            return self._feed(node, viewer, params, f"/{node_id}/{edge}", own_only=edge != "feed")
        elif isinstance(node, Page) and method == "POST" and edge in ("feed", "photos"):
            if node is not viewer:
                raise coded(
                    200,
                    "(#200) If posting to a page, requires both pages_read_engagement and "
                    "pages_manage_posts as an admin with sufficient administrative permission",
                )
            return self._publish(node, params) if edge == "feed" else self._photo(node, params)
        raise coded(100, f"(#100) Unsupported {method.lower()} request.")

    def _debug_token(self, params: dict[str, Any]) -> Response:
        page = self.store.page_by_token(str(params.get("input_token") or ""))
        if page is None:
            data: dict[str, Any] = {
                "is_valid": False,
                "error": {"code": 190, "message": "Invalid OAuth access token."},
                "scopes": [],
            }
            return json_response(200, {"data": data})
        issued = int(self.clock().timestamp()) - 86_400
        scopes = self.settings["scopes"] if self.settings["scopes"] is not None else list(page.scopes)
        data = {
            "app_id": self.app_id,
            "type": "PAGE",
            "application": "campaign-bot sandbox",
            "data_access_expires_at": issued + 90 * 86_400,
            "expires_at": int(self.settings["expires_at"]),
            "is_valid": True,
            "issued_at": issued,
            "profile_id": page.id,
            "scopes": scopes,
            "granular_scopes": [{"scope": s} for s in scopes],
            "user_id": "1000000000000999",
        }
        return json_response(200, {"data": data})

    def _publish(self, page: Page, params: dict[str, Any]) -> Response:
        message, link = str(params.get("message") or ""), params.get("link")
        photos = self._attached(page, params)
        if not message.strip() and not link and not photos:
            raise coded(100, "(#100) Missing message or attachment")
        if len(message) > MAX_MESSAGE:
            raise coded(100, f"(#100) The message is longer than {MAX_MESSAGE} characters")
        self._refuse_duplicate(page, message)
        post = self.store.add_post(
            page, page, message, self.clock(), link=link, published=_flag(params, "published"), photos=photos
        )
        for photo in photos:
            photo.post_id = post.id
        return self._written({"id": post.id}, post, page, params)

    def _photo(self, page: Page, params: dict[str, Any]) -> Response:
        upload = next((v for v in params.values() if isinstance(v, FilePart)), None)
        url = params.get("url")
        if upload is None and not url:
            raise GraphError(324, "(#324) Requires upload file")
        if upload is not None:
            if len(upload.data) > MAX_PHOTO_BYTES or not upload.data.startswith(_IMAGE_MAGIC):
                raise GraphError(324, "(#324) Missing or invalid image file")
        elif not str(url).startswith(("http://", "https://")):
            raise coded(100, "(#100) url should represent a valid URL")
        caption = str(params.get("caption") or params.get("message") or "")
        photo = Photo(
            self.store.next_id(),
            page,
            self.clock(),
            None if upload is not None else str(url),
            len(upload.data) if upload is not None else 0,
            params.get("alt_text_custom"),
            caption,
            _flag(params, "published"),
            data=upload.data if upload is not None else b"",
        )
        self.store.photos[photo.id] = photo
        if not photo.published:
            return json_response(200, {"id": photo.id})
        self._refuse_duplicate(page, caption)
        post = self.store.add_post(page, page, caption, photo.created_at, photos=[photo])
        photo.post_id = post.id
        return self._written({"id": photo.id, "post_id": post.id}, post, page, params)

    def _attached(self, page: Page, params: dict[str, Any]) -> list[Photo]:
        refs: list[Any] = []
        if "attached_media" in params:  # Graph Explorer's form: one JSON array
            refs = _json(params["attached_media"], "attached_media")
            refs = refs if isinstance(refs, list) else [refs]
        refs += [
            _json(v, k)
            for k, v in sorted(params.items(), key=lambda kv: _index(kv[0]))
            if k.startswith("attached_media[")
        ]
        photos = []
        for ref in refs:
            photo = self.store.photos.get(str(ref.get("media_fbid") if isinstance(ref, dict) else ""))
            if photo is None or photo.page is not page or photo.post_id is not None:
                raise coded(100, "(#100) param attached_media must be an unpublished photo of this Page")
            photos.append(photo)
        return photos

    def _refuse_duplicate(self, page: Page, message: str) -> None:
        mode = self.settings["duplicates"]
        latest = next(iter(self.store.feed(page, own_only=True)), None)
        if mode != "allow" and message.strip() and latest is not None and latest.message == message:
            raise coded(int(mode))

    def _written(
        self, answer: dict[str, Any], post: FeedPost, page: Page, params: dict[str, Any]
    ) -> Response:
        if params.get("fields"):  # read-after-write
            answer = {**project(post_json(post), params, ()), **answer}
        return json_response(200, answer)

    def _delete(self, viewer: Page, node: FeedPost | Photo | Comment | Page) -> Response:
        owner = node.post.page if isinstance(node, Comment) else getattr(node, "page", None)
        if owner is not viewer:
            raise coded(200, "(#200) Permissions error")
        if isinstance(node, FeedPost):
            node.deleted = True
            for photo in node.photos:
                self.store.photos.pop(photo.id, None)
        elif isinstance(node, Comment):
            node.deleted = True
        elif isinstance(node, Photo):
            self.store.photos.pop(node.id, None)
            post = self.store.posts.get(node.post_id or "")
            if post is not None:
                post.deleted = True
        return json_response(200, {"success": True})

    def _read(
        self, node: FeedPost | Photo | Comment | Page, viewer: Page, params: dict[str, Any]
    ) -> Response:
        if isinstance(node, Page):
            full: dict[str, Any] = {"id": node.id, "name": node.title, "link": f"{PUBLIC_SITE}/{node.id}"}
            return json_response(200, project(full, params, ("name", "id")))
        if isinstance(node, FeedPost):
            return json_response(200, project(post_json(node), params, POST_DEFAULT))
        if isinstance(node, Comment):
            return json_response(200, project(self._comment_json(node, viewer), params, COMMENT_DEFAULT))
        photo: dict[str, Any] = {
            "id": node.id,
            "created_time": graph_time(node.created_at),
            "name": node.caption,
            "alt_text_custom": node.alt,
        }
        info = inspect_image(node.data)
        if node.data and info.width and info.height:  # the CDN copy, public as Facebook's are
            source = f"{self.base_url}{CDN_PATH}{node.id}"
            photo["images"] = [{"height": info.height, "width": info.width, "source": source}]
        return json_response(200, project(photo, params, ("created_time", "name", "id")))

    def _feed(
        self, page: Page, viewer: Page, params: dict[str, Any], path: str, *, own_only: bool
    ) -> Response:
        posts = self.store.feed(page, own_only=own_only)
        since, until = _when(params, "since"), _when(params, "until")
        posts = [p for p in posts if (since is None or p.created_at >= since)]
        posts = [p for p in posts if (until is None or p.created_at <= until)]
        items = [project(post_json(p), params, POST_DEFAULT) for p in posts]
        return json_response(200, self.page_of(items, params, path))

    def _comments(
        self, node: FeedPost | Photo | Comment, viewer: Page, params: dict[str, Any], node_id: str
    ) -> Response:
        if isinstance(node, Photo):
            node_id = node.post_id or node_id
        stream = params.get("filter") == "stream"
        found = self.store.comments_on(node_id, stream=stream)
        order = str(params.get("order") or "chronological")
        if order not in ("chronological", "reverse_chronological", "ranked"):
            raise coded(100, "(#100) order must be one of chronological, reverse_chronological, ranked")
        if order == "reverse_chronological":
            found.reverse()
        default = (*COMMENT_DEFAULT, "parent") if stream else COMMENT_DEFAULT  # replies carry `parent`
        items = [project(self._comment_json(c, viewer), params, default) for c in found]
        if not self.settings["moderate"]:  # comment ids go only to tokens with the MODERATE task
            items = [{k: v for k, v in item.items() if k != "id"} for item in items]
        result = self.page_of(items, params, f"/{node_id}/comments")
        if _BOOL.get(str(params.get("summary", "")).lower()):
            result["summary"] = {"order": order, "total_count": len(found), "can_comment": True}
        return json_response(200, result)

    def _comment(self, node: FeedPost | Photo | Comment, viewer: Page, params: dict[str, Any]) -> Response:
        message = str(params.get("message") or "")
        if not message.strip():
            raise coded(100, "(#100) Missing message or attachment")
        post = (
            node if isinstance(node, FeedPost) else self.store.posts.get(getattr(node, "post_id", "") or "")
        )
        if isinstance(node, Comment):
            comment = self.store.add_comment(node.post, viewer, message, self.clock(), node.parent or node)
        elif post is not None:
            comment = self.store.add_comment(post, viewer, message, self.clock(), None)
        else:
            raise coded(100, "(#100) This photo has no post to comment on")
        return json_response(200, {"id": comment.id})

    # -- JSON -------------------------------------------------------------------------------


def _flag(params: dict[str, Any], name: str) -> bool:
    value = params.get(name, "true")
    if str(value).lower() not in _BOOL:
        raise coded(100, f"(#100) Param {name} must be a boolean")
    return _BOOL[str(value).lower()]


def _when(params: dict[str, Any], name: str) -> datetime | None:
    if not params.get(name):
        return None
    moment = parse_time(str(params[name]))
    if moment is None:
        raise coded(100, f"(#100) The parameter {name} is not a valid time")
    return moment


def _json(value: Any, name: str) -> Any:
    try:
        return json.loads(str(value))
    except ValueError as exc:
        raise coded(100, f"(#100) param {name} must be JSON") from exc


def _index(key: str) -> int:
    inside = key.partition("[")[2].rstrip("]")
    return int(inside) if inside.isdigit() else 0
