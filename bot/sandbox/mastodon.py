"""The Mastodon API emulator: what Mastodon.py 2.3.3 talks to in tests and rehearsals.

Faithful to a real Mastodon 4.6.4 as it answered (recorded responses in tests/data/mastodon/;
docs/platforms.md, Mastodon): bearer tokens, the instance documents, statuses (with idempotency keys, content
warnings, replies, media), notifications, the hashtag timeline and its stream, `Link` paging
and `X-RateLimit-*` headers on every answer. `POST /_sandbox/settings {"idempotency": false}`
turns it into a GoToSocial-like server, which ignores Idempotency-Key.

Settings (`POST /_sandbox/settings`):
    idempotency          false: ignore Idempotency-Key, answer 400 over the limit (GoToSocial)
    media_processing     true: every upload takes the asynchronous path (202, then 206, then 200);
                         video and audio always do, as on the real server
    max_characters       the instance's status limit (default 500)
    default_visibility   the accounts' posting default (`source.privacy`, default public)
    audience_visibility  the visibility of the audience's next posts (default public)
    stream_heartbeat     seconds between `:thump` heartbeats on a stream (default 15)
    streaming            "up" (default); "down": the streaming server is gone (open streams end,
                         new ones get nginx's 502) while the API answers; "none": the instance
                         offers no streaming (no streaming URL in its documents, 404)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from bot.sandbox.mastodon_audience import Audience
from bot.sandbox.mastodon_entities import (
    MAX_CHARACTERS,
    VISIBILITIES,
    Actor,
    Status,
    credential_account_json,
    gotosocial_length,
    iso_ms,
    iso_us,
    media_json,
    status_length,
)
from bot.sandbox.mastodon_http import (
    RATE_LIMITS,
    AlignedWindows,
    ApiError,
    bucket_of,
    first,
    flag,
    params_of,
)
from bot.sandbox.mastodon_instance import (
    ERRORS,
    V1_DEPRECATION,
    instance_v1,
    instance_v2,
    nginx_page,
)
from bot.sandbox.mastodon_media import attachable_media, poll_media, upload_media
from bot.sandbox.mastodon_oauth import OAuthServer
from bot.sandbox.mastodon_reads import account_statuses, notifications, tag_timeline
from bot.sandbox.mastodon_search import search
from bot.sandbox.mastodon_store import MastodonStore, id_order
from bot.sandbox.mastodon_stream import HashtagStreams
from bot.sandbox.server import Clock, Emulator, Request, Response, account_names, utc_now

IDEMPOTENCY_TTL = timedelta(hours=1)  # PostStatusService: setex 3600

DEFAULT_SETTINGS: dict[str, Any] = {
    "idempotency": True,
    "media_processing": False,
    "max_characters": MAX_CHARACTERS,
    "default_visibility": "public",
    "audience_visibility": "public",
    "stream_heartbeat": 15.0,
    "streaming": "up",
    "ids": "snowflake",
}
STREAMING = ("up", "down", "none")
IDS = ("snowflake", "ulid")

STATUS_ROUTE = re.compile(r"^/api/v1/statuses/([^/]+)(?:/(context|source|reblog|unreblog))?$")
ACCOUNT_ROUTE = re.compile(r"^/api/v1/accounts/([^/]+)(/statuses)?$")
MEDIA_ROUTE = re.compile(r"^/api/v1/media/([^/]+)$")
NOTIFICATION_ROUTE = re.compile(r"^/api/v1/notifications/([^/]+)$")
TAG_ROUTE = re.compile(r"^/api/v1/timelines/tag/([^/]+)$")


class MastodonEmulator(Emulator):
    name = "mastodon"

    def __init__(self, *, accounts: int = 2, limits: str = "none", clock: Clock = utc_now) -> None:
        super().__init__(accounts=accounts, limits=limits, clock=clock)
        self.store = MastodonStore(account_names(accounts), clock)
        self.windows = AlignedWindows(clock)
        self.settings = dict(DEFAULT_SETTINGS)
        self.idempotency: dict[tuple[str, str], tuple[str, datetime]] = {}
        self.streams = HashtagStreams()
        # Apps and the tokens they were granted outlive a reset, as the fixed tokens do.
        self.oauth = OAuthServer(clock, account_names(accounts))

    # -- the shared layer's hooks -----------------------------------------------------------

    @property
    def enforcing(self) -> bool:
        """Any preset but `none` applies Mastodon's own documented limits."""
        return self.limits != "none"

    def credentials(self) -> list[dict[str, str]]:
        return [{"name": a.username, "access_token": a.token or ""} for a in self.store.ours]

    def account_of(self, request: Request) -> str | None:
        actor = self._bearer(request)
        return actor.username if actor is not None else None

    def error_response(self, status: int) -> Response:
        if status in (502, 504):
            return Response(status, nginx_page(status), {"Content-Type": "text/html"})
        return self._with_rate_headers(
            Response.json(status, {"error": ERRORS.get(status, ERRORS[500])}), None, "api"
        )

    def rate_limited_response(self, reset_at: datetime) -> Response:
        limit, _ = RATE_LIMITS["api"]
        headers = {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": iso_us(reset_at),
        }
        return Response.json(429, {"error": ERRORS[429]}, headers)

    def apply_settings(self, settings: dict[str, Any]) -> None:
        unknown = sorted(set(settings) - set(DEFAULT_SETTINGS))
        if unknown:
            raise ValueError(f"unknown settings: {unknown}")
        for key in ("default_visibility", "audience_visibility"):
            if key in settings and settings[key] not in VISIBILITIES:
                raise ValueError(f"{key} must be one of {', '.join(VISIBILITIES)}")
        if settings.get("streaming", "up") not in STREAMING:
            raise ValueError(f"streaming must be one of {', '.join(STREAMING)}")
        if settings.get("ids", "snowflake") not in IDS:
            raise ValueError(f"ids must be one of {', '.join(IDS)}")
        self.settings.update(settings)
        self.store.ulid_ids = self.settings["ids"] == "ulid"
        if self.settings["streaming"] != "up":
            self.streams.end_open()
        for actor in self.store.ours:
            actor.default_visibility = str(self.settings["default_visibility"])

    def reset(self) -> None:
        super().reset()
        self.windows.clear()
        self.store = MastodonStore(account_names(self.account_count), self.clock)
        self.settings = dict(DEFAULT_SETTINGS)
        self.idempotency.clear()
        self.streams.forget()

    def close(self) -> None:
        """Ends open streams: they check this flag every 0.2 s."""
        self.streams.close()

    def add_audience(
        self, kind: str, author: str, text: str, to: str | None, options: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        audience = Audience(
            self.store,
            self._publish,
            self._state_post,
            self._host(),
            str(self.settings["audience_visibility"]),
        )
        return audience.act(kind, author, text, to, options or {})

    def amend(self, post_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        status = self.store.statuses[post_id]
        status.overrides.update(fields)
        return self._state_post(status)

    def state_posts(self) -> list[dict[str, Any]]:
        return [self._state_post(s) for s in self._statuses() if s.reblog is None]

    def state_extra(self) -> dict[str, Any]:
        # Boosts are not posts: listed apart, in the shape the Bluesky emulator gives reposts.
        reposts = [
            {"id": s.id, "author": s.author.acct, "subject": s.reblog.id}
            | ({"deleted": True} if s.deleted else {})
            for s in self._statuses()
            if s.reblog is not None
        ]
        return {"reposts": reposts, "settings": dict(self.settings)}

    def account_authors(self) -> dict[str, str]:
        return {a.username: a.acct for a in self.store.ours}

    def _statuses(self) -> list[Status]:
        return sorted(self.store.statuses.values(), key=lambda s: id_order(s.id))

    def _state_post(self, status: Status) -> dict[str, Any]:
        deleted, status.deleted = status.deleted, False  # `raw` as the API answered it
        raw = self.store.status_json(status, status.author, self.base_url)
        status.deleted = deleted
        post: dict[str, Any] = {
            "id": status.id,
            "url": status.url(self.base_url),
            "author": status.author.acct,
            "text": status.text,
            "created_at": iso_ms(status.created_at),
            "in_reply_to": status.in_reply_to.id if status.in_reply_to else None,
            "media": [{"id": m.id, "alt": m.description} for m in status.media],
            "raw": raw,
        }
        return post | {"deleted": True} if status.deleted else post

    # -- requests ---------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        if request.path.startswith("/api/v1/streaming"):
            return self._streaming(request)
        bucket = bucket_of(request.method, request.path)
        with self.lock:
            viewer = self._bearer(request)
            key = viewer.username if viewer is not None else "address:127.0.0.1"
            try:
                self._throttle(key, bucket)
                token = self._token(request)
                if self.oauth.handles(request):
                    fixed = token is not None and self.store.by_token(token) is not None
                    response = self.oauth.handle(request, self.base_url, fixed, token)
                else:
                    self.oauth.check_scope(request, token)
                    response = self._route(request, viewer)
            except ApiError as exc:
                response = Response.json(exc.status, {"error": exc.message})
            return self._with_rate_headers(response, key, bucket)

    def _throttle(self, key: str, bucket: str) -> None:
        """Rack::Attack counts every request; the statuses limiter only checks here (spent on creation)."""
        for name in ("api", bucket) if bucket != "api" else ("api",):
            _, remaining, _ = self.windows.peek(key, name)
            if self.enforcing and remaining <= 0:
                raise ApiError(429, ERRORS[429])
            if name != "statuses":
                self.windows.spend(key, name)

    def _with_rate_headers(self, response: Response, key: str | None, bucket: str) -> Response:
        limit, remaining, reset_at = self.windows.peek(key or "address:127.0.0.1", bucket)
        response.headers.update(
            {
                "X-RateLimit-Limit": str(limit),
                "X-RateLimit-Remaining": str(remaining),
                "X-RateLimit-Reset": iso_us(reset_at),
            }
        )
        return response

    @staticmethod
    def _token(request: Request) -> str | None:
        header = request.headers.get("Authorization", "")
        return header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else None

    def _bearer(self, request: Request) -> Actor | None:
        """The account a fixed sandbox token or a token granted through OAuth belongs to."""
        token = self._token(request)
        if token is None:
            return None
        granted = self.oauth.account_of(token)
        if granted is not None:
            return next((a for a in self.store.ours if a.username == granted), None)
        return self.store.by_token(token)

    def _require(self, request: Request, viewer: Actor | None) -> Actor:
        """The caller's account, or Mastodon's 401 (the same body for a missing and a bad token)."""
        if viewer is None:
            raise ApiError(401, ERRORS[401])
        return viewer

    def _optional(self, request: Request, viewer: Actor | None) -> Actor | None:
        """Public reads: no token is fine, a token we do not know is a 401."""
        if viewer is None and "Authorization" in request.headers:
            raise ApiError(401, ERRORS[401])
        return viewer

    def _host(self) -> str:
        return urlsplit(self.base_url).netloc

    def _route(self, request: Request, viewer: Actor | None) -> Response:
        method, path = request.method, request.path
        base = self.base_url
        if method == "GET" and path.rstrip("/") == "/api/v1/instance":
            users, count = len(self.store.ours), len(self.store.live_statuses())
            document = instance_v1(
                base, int(self.settings["max_characters"]), users, count, self._offers_streaming
            )
            return Response.json(200, document, {"Deprecation": V1_DEPRECATION})
        if method == "GET" and path.rstrip("/") == "/api/v2/instance":
            return Response.json(
                200, instance_v2(base, int(self.settings["max_characters"]), self._offers_streaming)
            )
        if method == "GET" and path == "/api/v1/accounts/verify_credentials":
            actor = self._require(request, viewer)
            return Response.json(200, credential_account_json(self.store.account_json(actor, base), actor))
        if path == "/api/v1/statuses" and method == "POST":
            return self._post_status(request, self._require(request, viewer))
        if path in ("/api/v2/media", "/api/v1/media") and method == "POST":
            owner = self._require(request, viewer)
            process_images = bool(self.settings["media_processing"])
            code, media = upload_media(
                self.store, request, owner, v2=path.startswith("/api/v2"), process_images=process_images
            )
            return Response.json(code, media_json(media, base))
        if path == "/api/v1/notifications" and method == "GET":
            return notifications(self.store, request, self._require(request, viewer), base)
        if path == "/api/v2/search" and method == "GET":
            return search(self.store, request, self._require(request, viewer), base)
        if match := STATUS_ROUTE.match(path):
            return self._status_route(request, viewer, match.group(1), match.group(2))
        if (match := ACCOUNT_ROUTE.match(path)) and method == "GET":
            return self._account_route(request, viewer, match.group(1), bool(match.group(2)))
        if (match := MEDIA_ROUTE.match(path)) and method == "GET":
            code, answer = poll_media(self.store, self._require(request, viewer), match.group(1), base)
            return Response.json(code, answer)
        if (match := NOTIFICATION_ROUTE.match(path)) and method == "GET":
            actor = self._require(request, viewer)
            for item in self.store.notifications:
                if str(item.id) == match.group(1) and item.recipient is actor:
                    return Response.json(200, self.store.notification_json(item, base))
            raise ApiError(404, ERRORS[404])
        if (match := TAG_ROUTE.match(path)) and method == "GET":
            viewer = self._optional(request, viewer)
            return tag_timeline(self.store, request, viewer, match.group(1), base)
        raise ApiError(404, ERRORS[404])

    # -- statuses ---------------------------------------------------------------------------

    def _post_status(self, request: Request, author: Actor) -> Response:
        params = params_of(request)
        key = request.headers.get("Idempotency-Key")
        idempotent = bool(self.settings["idempotency"]) and bool(key)
        if idempotent and key is not None:
            # PostStatusService returns the first status for a key seen within the hour,
            # before looking at the body; a deleted one is gone (404).
            seen = self.idempotency.get((author.username, key))
            if seen is not None and self.clock() - seen[1] < IDEMPOTENCY_TTL:
                status = self.store.statuses[seen[0]]
                if status.deleted:
                    raise ApiError(404, ERRORS[404])
                return Response.json(200, self.store.status_json(status, author, self.base_url))
        gotosocial = not self.settings["idempotency"]
        text = first(params, "status") or ""
        spoiler = first(params, "spoiler_text") or ""
        parent = self._reply_target(first(params, "in_reply_to_id"), author)
        quoted_id = first(params, "quoted_status_id")
        quote = self._visible_status(quoted_id, author) if quoted_id else None
        media = attachable_media(self.store, params.get("media_ids", []), author)
        visibility = first(params, "visibility") or author.default_visibility
        if visibility not in VISIBILITIES:
            raise ApiError(422, f"'{visibility}' is not a valid visibility")
        limit = int(self.settings["max_characters"])
        if not text.strip() and not media:
            if gotosocial:
                raise ApiError(400, "Bad Request: no status, media, or poll provided")
            raise ApiError(422, "Validation failed: Text can't be blank")
        if gotosocial and (length := gotosocial_length(text, spoiler)) > limit:
            raise ApiError(
                400,
                f"Bad Request: status too long, {length} characters provided (including spoiler/content "
                f"warning) but limit is {limit}",
            )
        if not gotosocial and status_length(text, spoiler) > limit:
            raise ApiError(422, f"Validation failed: Text character limit of {limit} exceeded")
        status = self.store.create_status(
            author,
            text,
            host=self._host(),
            spoiler_text=spoiler,
            visibility=visibility,
            sensitive=flag(first(params, "sensitive")),
            language=first(params, "language") or "en",
            in_reply_to=parent,
            media=media,
            quote=quote,
        )
        self.windows.spend(author.username, "statuses")
        if idempotent and key is not None:
            self.idempotency[(author.username, key)] = (status.id, self.clock())
        self._publish("update", status)
        return Response.json(200, self.store.status_json(status, author, self.base_url))

    def _reply_target(self, parent_id: str | None, author: Actor) -> Status | None:
        if not parent_id:
            return None
        parent = self.store.statuses.get(parent_id)
        if parent is None or not self.store.visible(parent, author):
            raise ApiError(404, "The post you are trying to reply to does not appear to exist.")
        return parent

    def _status_route(
        self, request: Request, viewer: Actor | None, status_id: str, action: str | None
    ) -> Response:
        if request.method == "GET":
            return self._read_status(self._optional(request, viewer), status_id, action)
        return self._write_status(request, self._require(request, viewer), status_id, action)

    def _visible_status(self, status_id: str, viewer: Actor | None) -> Status:
        status = self.store.statuses.get(status_id)
        if status is None or not self.store.visible(status, viewer):
            raise ApiError(404, ERRORS[404])
        return status

    def _read_status(self, viewer: Actor | None, status_id: str, action: str | None) -> Response:
        status, base = self._visible_status(status_id, viewer), self.base_url
        if action is None:
            return Response.json(200, self.store.status_json(status, viewer, base))
        if action == "source":
            # What the author typed: the bot's lookup after a lost answer compares it.
            return Response.json(
                200, {"id": status.id, "text": status.text, "spoiler_text": status.spoiler_text}
            )
        if action == "context":
            ancestors, descendants = self.store.context(status, viewer)
            return Response.json(
                200,
                {
                    "ancestors": [self.store.status_json(s, viewer, base) for s in ancestors],
                    "descendants": [self.store.status_json(s, viewer, base) for s in descendants],
                },
            )
        raise ApiError(404, ERRORS[404])

    def _write_status(self, request: Request, viewer: Actor, status_id: str, action: str | None) -> Response:
        status, base = self._visible_status(status_id, viewer), self.base_url
        if request.method == "DELETE" and action is None:
            if status.author is not viewer:
                raise ApiError(404, ERRORS[404])
            answer = self.store.status_json(status, viewer, base, source=True)
            self.store.delete(status)
            self._publish("delete", status)
            return Response.json(200, answer)
        if request.method == "POST" and action == "reblog":
            if status.visibility not in ("public", "unlisted") or status.reblog is not None:
                raise ApiError(403, ERRORS[403])
            visibility = first(params_of(request), "visibility") or "public"
            reblog = self.store.reblog(viewer, status, visibility if visibility in VISIBILITIES else "public")
            self._publish("update", reblog)
            return Response.json(200, self.store.status_json(reblog, viewer, base))
        if request.method == "POST" and action == "unreblog":
            undone = self.store.reblog_by(viewer, status)
            if undone is not None:
                self.store.delete(undone)
                self._publish("delete", undone)
            return Response.json(200, self.store.status_json(status, viewer, base))
        raise ApiError(404, ERRORS[404])

    # -- reads ------------------------------------------------------------------------------

    def _account_route(
        self, request: Request, viewer: Actor | None, account_id: str, statuses: bool
    ) -> Response:
        viewer = self._optional(request, viewer)
        actor = self.store.actor(account_id)
        if actor is None:
            raise ApiError(404, ERRORS[404])
        if statuses:
            return account_statuses(self.store, request, viewer, actor, self.base_url)
        return Response.json(200, self.store.account_json(actor, self.base_url))

    # -- streaming --------------------------------------------------------------------------

    def _publish(self, kind: str, status: Status) -> None:
        """Hand a new or deleted status to the streams; only public, original ones can reach them."""
        if status.visibility != "public" or status.reblog is not None:
            return
        if kind in ("update", "status.update"):
            self.streams.publish(kind, status, self.store.stream_json(status, self.base_url))
        else:
            self.streams.publish(kind, status, status.id)

    @property
    def thread_limit(self) -> int:  # type: ignore[override]
        """The instance's limit, less room for the mentions a reply carries (counted by username)."""
        return int(self.settings["max_characters"]) - 30

    @property
    def _offers_streaming(self) -> bool:
        return bool(self.settings["streaming"] != "none")

    def _streaming(self, request: Request) -> Response:
        """The streaming server (node.js on another port in production): no rate-limit headers."""
        if self.settings["streaming"] == "none":
            return Response.json(404, {"error": ERRORS[404]})
        if self.settings["streaming"] == "down":
            return Response(502, nginx_page(502), {"Content-Type": "text/html"})
        plain = {"Access-Control-Allow-Origin": "*", "Cache-Control": "private, no-store"}
        if request.path == "/api/v1/streaming/health":
            return Response(200, b"OK", {**plain, "Content-Type": "text/plain"})
        with self.lock:
            viewer = self._bearer(request)
        if viewer is None:
            return Response.json(401, {"error": "Invalid access token"}, plain)
        if request.path not in ("/api/v1/streaming/hashtag", "/api/v1/streaming/hashtag/local"):
            return Response.json(404, {"error": "Unknown stream type"}, plain)
        tag = request.arg("tag") or ""
        if not tag:
            return Response.json(400, {"error": "Missing tag name parameter"}, plain)
        stream = self.streams.events(
            tag,
            local=request.path.endswith("/local"),
            heartbeat=lambda: float(self.settings["stream_heartbeat"]),
        )
        return Response(200, headers={**plain, "Content-Type": "text/event-stream"}, stream=stream)
