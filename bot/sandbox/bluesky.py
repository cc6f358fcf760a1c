"""The Bluesky emulator: a PDS and an AppView behind XRPC, for `atproto.Client(base_url=...)`.

Faithful to atproto's lexicons and AppView snapshots (tests/data/bluesky/): JWT sessions
with rotating refresh tokens, records validated against their lexicons, the PDS's error
bodies (including its 500 for an existing rkey), `ratelimit-*` headers with the documented
write points, createSession and global limits. Views live in `bluesky_appview`, lexicon rules
in `bluesky_lexicon`, sessions and rate limits in `bluesky_auth`, the repo (records, blobs)
in `bluesky_repo`, XRPC errors and parameters in `bluesky_xrpc`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from html import escape
from typing import Any

from bot.sandbox.bluesky_appview import (
    Actor,
    AppView,
    Network,
    Record,
    SearchQuery,
    format_time,
    parse_search_time,
)
from bot.sandbox.bluesky_auth import RATE_LIMITS, Authority
from bot.sandbox.bluesky_lexicon import EMBED_RECORD, POST, REPOST, RecordInvalid, validate_record
from bot.sandbox.bluesky_repo import Repo
from bot.sandbox.bluesky_richtext import detect_facets
from bot.sandbox.bluesky_xrpc import XrpcError, int_param, limit_param, offset_cursor, param, xrpc_error
from bot.sandbox.server import Clock, Emulator, Request, Response, account_names, utc_now
from bot.sandbox.webpages import page

CAMPAIGN_TAG = "NoTechForICE"
_IMAGE_PATH = re.compile(r"^/img/[a-z_]+/plain/(did:[^/]+)/([a-z0-9]+)@[a-z]+$")


def sandbox_handle(name: str) -> str:
    return f"{name}.sandbox.test"


def sandbox_did(handle: str) -> str:
    digest = hashlib.sha256(f"sandbox:{handle}".encode()).digest()
    return "did:plc:" + "".join("abcdefghijklmnopqrstuvwxyz234567"[b % 32] for b in digest[:24])


def sandbox_app_password(name: str) -> str:
    """Deterministic, in the shape of a real app password (xxxx-xxxx-xxxx-xxxx)."""
    digest = hashlib.sha256(f"bluesky-app-password:{name}".encode()).digest()
    letters = "".join("abcdefghijklmnopqrstuvwxyz234567"[b % 32] for b in digest[:16])
    return "-".join(letters[i : i + 4] for i in range(0, 16, 4))


def sandbox_password(name: str) -> str:
    """An account's main password, which the bot should never be given (docs/sandbox.md)."""
    return f"correct-horse-{name}"


class BlueskyEmulator(Emulator):
    name = "bluesky"
    thread_limit = 300  # graphemes

    def __init__(self, *, accounts: int = 2, limits: str = "none", clock: Clock = utc_now) -> None:
        super().__init__(accounts=accounts, limits=limits, clock=clock)
        self.auth = Authority(clock, self.rates, enforce=limits != "none")
        self._ours = self._create_accounts()
        self._wire(Network(actors={a.did: a for a in self._ours}))
        self._routes: dict[str, tuple[str, bool, Callable[[Request, Actor | None], Any]]] = {
            # nsid: (HTTP method, needs auth, handler)
            "com.atproto.server.getSession": ("GET", True, self._get_session),
            "com.atproto.identity.resolveHandle": ("GET", False, self._resolve_handle),
            "app.bsky.actor.getProfile": ("GET", False, self._get_profile),
            "com.atproto.repo.createRecord": ("POST", True, lambda r, a: self.repo.create_record(r, a)),
            "com.atproto.repo.putRecord": ("POST", True, lambda r, a: self.repo.put_record(r, a)),
            "com.atproto.repo.deleteRecord": ("POST", True, lambda r, a: self.repo.delete_record(r, a)),
            "com.atproto.repo.getRecord": ("GET", False, lambda r, a: self.repo.get_record(r, a)),
            "com.atproto.repo.listRecords": ("GET", False, lambda r, a: self.repo.list_records(r, a)),
            "com.atproto.repo.uploadBlob": ("POST", True, lambda r, a: self.repo.upload_blob(r, a)),
            "com.atproto.sync.getBlob": ("GET", False, lambda r, a: self.repo.get_blob(r, a)),
            "app.bsky.feed.searchPosts": ("GET", False, self._search_posts),
            "app.bsky.feed.getPostThread": ("GET", False, self._get_post_thread),
            "app.bsky.feed.getPosts": ("GET", False, self._get_posts),
            "app.bsky.notification.listNotifications": ("GET", True, self._list_notifications),
        }

    def _create_accounts(self) -> list[Actor]:
        joined = self.clock() - timedelta(days=365)
        return [
            Actor(
                sandbox_did(sandbox_handle(name)),
                sandbox_handle(name),
                name,
                joined,
                name,
                sandbox_app_password(name),
                sandbox_password(name),
            )
            for name in account_names(self.account_count)
        ]

    def _wire(self, net: Network) -> None:
        self.net = net
        self.repo = Repo(net, self.clock)
        self.view = AppView(net, lambda: self.base_url)

    # -- the shared layer's hooks ---------------------------------------------------------

    def handle(self, request: Request) -> Response:
        if request.method == "GET" and (match := _IMAGE_PATH.match(request.path)):
            with self.lock:
                return self.repo.image_bytes(match.group(2))
        if request.method == "GET" and request.path == "/settings/app-passwords":
            return self._app_passwords_page()
        nsid = request.path.removeprefix("/xrpc/")
        with self.lock:
            try:
                if nsid == "com.atproto.server.createSession":
                    return self._json(*self.auth.create_session(request, self.net))
                if nsid == "com.atproto.server.refreshSession":
                    return self._json(*self.auth.refresh_session(request, self.net))
                route = self._routes.get(nsid) if request.path.startswith("/xrpc/") else None
                if route is None:
                    raise XrpcError(501, "MethodNotImplemented", "Method Not Implemented")
                method, needs_auth, handler = route
                if request.method != method:
                    raise XrpcError(
                        400, "InvalidRequest", f"Incorrect HTTP method ({request.method}) expected {method}"
                    )
                actor = self.auth.verify_access(request, self.net, required=needs_auth)
                headers = self.auth.charge(nsid, request, actor)
                try:
                    result = handler(request, actor)
                except XrpcError as exc:
                    exc.headers = {**headers, **exc.headers}
                    raise
                if isinstance(result, Response):
                    result.headers.update(headers)
                    return result
                return Response.json(200, result, headers)
            except XrpcError as exc:
                return xrpc_error(exc.status, exc.error, exc.message, exc.headers)

    @staticmethod
    def _json(body: Any, headers: dict[str, str]) -> Response:
        return Response.json(200, body, headers)

    def error_response(self, status: int) -> Response:
        return xrpc_error(status)

    def rate_limited_response(self, reset_at: datetime) -> Response:
        global_limit = RATE_LIMITS["global"][0]
        return self.auth.too_many(global_limit, reset_at)

    def account_of(self, request: Request) -> str | None:
        with self.lock:
            return self.auth.account_name(request, self.net)

    def apply_settings(self, settings: dict[str, Any]) -> None:
        unknown = sorted(set(settings) - {"email_auth_factor"})
        if unknown:
            raise ValueError(f"unknown settings: {unknown}")
        if "email_auth_factor" in settings:
            self.auth.email_auth_factor = bool(settings["email_auth_factor"])

    def reset(self) -> None:
        """Empty every post, blob and notification; our accounts and their sessions stay valid."""
        super().reset()
        self.auth.email_auth_factor = False
        self._wire(Network(actors={a.did: a for a in self._ours}))

    def credentials(self) -> list[dict[str, str]]:
        return [
            {"name": a.name or "", "handle": a.handle, "app_password": a.app_password or ""}
            for a in self._ours
        ]

    def state_posts(self) -> list[dict[str, Any]]:
        return [self._state_post(r) for r in self.net.history if r.collection == POST]

    def state_extra(self) -> dict[str, Any]:
        reposts = [
            {"id": r.uri, "author": self.net.actors[r.did].handle, "subject": r.value["subject"]["uri"]}
            | ({"deleted": True} if r.deleted else {})
            for r in self.net.history
            if r.collection == REPOST
        ]
        return {"reposts": reposts}

    def account_authors(self) -> dict[str, str]:
        return {a.name or "": a.handle for a in self._ours}

    def add_audience(
        self, kind: str, author: str, text: str, to: str | None, options: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        options = options or {}
        handle = author.lower().removeprefix("@")
        handle = handle if "." in handle else f"{handle}.test"
        actor = self.net.actor(handle)
        if actor is None:
            actor = Actor(sandbox_did(handle), handle, author, self.clock() - timedelta(days=30))
            self.net.actors[actor.did] = actor
        if actor.did in self.net.suspended:
            raise ValueError(f"{actor.handle} is suspended")
        if kind in ("delete", "suspend", "edit"):
            return self._audience_change(kind, actor, to)
        record: dict[str, Any] = {"$type": POST, "text": text}
        if kind == "quote":
            quoted = self.net.live(str(to or ""))
            if quoted is None:
                raise ValueError(f"quote needs `to`: the at:// uri of a post, not {to!r}")
            record["embed"] = {"$type": EMBED_RECORD, "record": {"uri": quoted.uri, "cid": quoted.cid}}
        elif kind == "reply":
            parent = self.net.live(str(to or ""))
            if parent is None:
                raise ValueError(f"reply needs `to`: the at:// uri of a post, not {to!r}")
            root = parent.value.get("reply", {}).get("root") or {"uri": parent.uri, "cid": parent.cid}
            record["reply"] = {"root": root, "parent": {"uri": parent.uri, "cid": parent.cid}}
        elif kind == "mention" and not any(f"@{a.handle}" in text for a in self._ours):
            named = self.net.actor(sandbox_handle(to)) if to and "." not in to else self.net.actor(to or "")
            target = named if named in self._ours else self._ours[0]
            record["text"] = text = f"@{target.handle} {text}"
        elif kind == "hashtag" and f"#{CAMPAIGN_TAG.lower()}" not in text.lower():
            record["text"] = text = f"{text} #{CAMPAIGN_TAG}".strip()
        # `plain`: no facets, as the SDK's send_post(text), cross-posters and scripts write.
        facets = detect_facets(text, lambda h: a.did if (a := self.net.actor(h)) else None)
        if facets and not options.get("plain"):
            record["facets"] = facets
        if options.get("tags"):
            record["tags"] = [str(t) for t in options["tags"]]
        stamp = self.repo.stamp()
        # createdAt is the client's claim: any valid datetime, however far in the past or future.
        record["createdAt"] = str(options.get("created_at") or format_time(stamp))
        try:
            validate_record(POST, record)  # what the PDS refuses, the control call refuses too
        except RecordInvalid as exc:
            raise ValueError(exc.message) from None
        return self._state_post(self.repo.store(actor, POST, None, record, stamp))

    def amend(self, post_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        record = self.net.records[post_id]
        record.value.update(fields)  # into the record, as a hostile client could write it
        return self._state_post(record)

    def _audience_change(self, kind: str, actor: Actor, to: str | None) -> dict[str, Any]:
        """Someone deletes a post of theirs, or is taken down: their posts vanish from the
        AppView's views, search and notifications. Bluesky apps never edit a post."""
        if kind == "edit":
            raise ValueError("edit: only the Mastodon emulator edits posts")
        if kind == "suspend":
            self.net.suspended.add(actor.did)
            gone = [r for r in self.net.records.values() if r.did == actor.did and not r.deleted]
        else:
            record = self.net.live(str(to or ""))
            if record is None or record.did != actor.did:
                raise ValueError(f"delete needs `to`: the uri of a live post by {actor.handle}, not {to!r}")
            gone = [record]
        for record in gone:
            record.deleted = True
        return {"author": actor.handle, "deleted": [r.uri for r in gone]}

    def _app_passwords_page(self) -> Response:
        """The sandbox's stand-in for Settings > Privacy and security > App passwords."""
        rows = "".join(
            f"<tr><td>{escape(a.handle)}</td><td><code>{escape(a.app_password or '')}</code></td></tr>\n"
            for a in self._ours
        )
        body = (
            "<p>On Bluesky each account makes its own with Add App Password; "
            "each sandbox account has one.</p>\n"
            f"<table>\n<tr><th>Handle</th><th>App password</th></tr>\n{rows}</table>"
        )
        return page(200, "App passwords", body)

    # -- sessions and actors --------------------------------------------------------------

    def _get_session(self, request: Request, actor: Actor | None) -> dict[str, Any]:
        assert actor is not None
        return {"handle": actor.handle, "did": actor.did, "active": True, "emailConfirmed": True}

    def _resolve_handle(self, request: Request, actor: Actor | None) -> dict[str, Any]:
        handle = param(request, "handle")
        found = None if handle.startswith("did:") else self.net.actor(handle)
        if found is None:
            raise XrpcError(400, "InvalidRequest", "Unable to resolve handle")
        return {"did": found.did}

    def _get_profile(self, request: Request, actor: Actor | None) -> dict[str, Any]:
        found = self.net.actor(param(request, "actor"))
        if found is None:
            raise XrpcError(400, "InvalidRequest", "Profile not found")
        if found.did in self.net.suspended:  # the AppView's answer for a taken-down account
            raise XrpcError(400, "AccountTakedown", "Account has been suspended")
        return self.view.profile_detailed(found)

    # -- AppView reads --------------------------------------------------------------------

    def _search_posts(self, request: Request, actor: Actor | None) -> dict[str, Any]:
        q = param(request, "q")
        limit = limit_param(request, default=25)
        if request.arg("sort", "latest") not in ("latest", "top"):
            raise XrpcError(400, "InvalidRequest", "Params/sort must be one of (top|latest)")
        times = {}
        for key in ("since", "until"):
            raw = request.arg(key)
            times[key] = parse_search_time(raw) if raw else None
            if raw and times[key] is None:
                raise XrpcError(400, "BadQueryString", f"invalid {key} datetime: {raw}")
        query = SearchQuery(
            q,
            tags=tuple(request.query.get("tag", [])),
            since=times["since"],
            until=times["until"],
            author=self._did_param(request, "author"),
            mentions=self._did_param(request, "mentions"),
        )
        resolve = self._resolve_did
        hits = [r for r in reversed(self.net.history) if query.matches(r, resolve)]  # newest first
        offset = offset_cursor(request)
        page = hits[offset : offset + limit]
        answer: dict[str, Any] = {"hitsTotal": len(hits), "posts": [self.view.post_view(r) for r in page]}
        if offset + limit < len(hits):
            answer["cursor"] = str(offset + limit)
        return answer

    def _did_param(self, request: Request, name: str) -> str | None:
        raw = request.arg(name)
        if not raw:
            return None
        return self._resolve_did(raw) or "did:unknown"

    def _resolve_did(self, identifier: str) -> str | None:
        found = self.net.actor(identifier)
        return found.did if found else None

    def _get_post_thread(self, request: Request, actor: Actor | None) -> dict[str, Any]:
        uri = param(request, "uri")
        record = self._post_at(uri)
        if record is None:
            raise XrpcError(400, "NotFound", f"Post not found: {uri}")
        depth = int_param(request, "depth", 6, 0, 1000)
        height = int_param(request, "parentHeight", 80, 0, 1000)
        return {"thread": self.view.thread(record, depth, height)}

    def _get_posts(self, request: Request, actor: Actor | None) -> dict[str, Any]:
        uris = request.query.get("uris", [])
        if len(uris) > 25:
            raise XrpcError(400, "InvalidRequest", "Params/uris must not have more than 25 elements")
        records = [self._post_at(u) for u in uris]
        return {"posts": [self.view.post_view(r) for r in records if r is not None]}

    def _post_at(self, uri: str) -> Record | None:
        """A live post by at:// uri; the authority may be a handle, as the AppView allows."""
        match = re.match(r"^at://([^/]+)/(.+)$", uri)
        if not match:
            return None
        did = self._resolve_did(match.group(1))
        record = self.net.live(f"at://{did}/{match.group(2)}") if did else None
        return record if record is not None and record.collection == POST else None

    def _list_notifications(self, request: Request, actor: Actor | None) -> dict[str, Any]:
        assert actor is not None
        limit = limit_param(request, default=50)
        reasons = set(request.query.get("reasons", []))
        cursor = request.arg("cursor")
        notes = [
            n
            for n in reversed(self.net.notifications)
            if n.recipient == actor.did
            and (not reasons or n.reason in reasons)
            and self.net.live(n.uri) is not None
            and (not cursor or format_time(n.indexed_at) < cursor)
        ]
        page = notes[:limit]
        answer: dict[str, Any] = {"notifications": self.view.notification_views(page), "priority": False}
        if len(notes) > limit:
            answer["cursor"] = format_time(page[-1].indexed_at)
        answer["seenAt"] = format_time(self.clock())
        return answer

    # -- state ----------------------------------------------------------------------------

    def _state_post(self, record: Record) -> dict[str, Any]:
        value = record.value
        embed = value.get("embed") or {}
        media = embed.get("media", embed)  # recordWithMedia holds its images under `media`
        post = {
            "id": record.uri,
            # bsky.app's path, on the emulator: the post exists here, not on bsky.app.
            "url": f"{self.base_url}/profile/{self.net.actors[record.did].handle}/post/{record.rkey}",
            "author": self.net.actors[record.did].handle,
            "text": value.get("text", ""),
            "created_at": value.get("createdAt", format_time(record.indexed_at)),
            "in_reply_to": (value.get("reply") or {}).get("parent", {}).get("uri"),
            "media": [{"id": i["image"]["ref"]["$link"], "alt": i["alt"]} for i in media.get("images", [])],
            "raw": value,
        }
        return post | {"deleted": True} if record.deleted else post
