"""The Bluesky emulator: a PDS and an AppView behind XRPC, for `atproto.Client(base_url=...)`.

Faithful to shared/reference/bluesky/ (NOTES.md, lexicons, AppView snapshots): JWT sessions
with rotating refresh tokens, records validated against their lexicons, the PDS's error
bodies (including its 500 for an existing rkey), `ratelimit-*` headers with the documented
write points, createSession and global limits. Views live in `bluesky_appview`, lexicon rules
in `bluesky_lexicon`, sessions and rate limits in `bluesky_auth`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from bot.sandbox.bluesky_appview import (
    Actor,
    AppView,
    Blob,
    Network,
    Record,
    SearchQuery,
    format_time,
    parse_search_time,
)
from bot.sandbox.bluesky_auth import RATE_LIMITS, Authority, RateLimit, XrpcError, xrpc_error
from bot.sandbox.bluesky_lexicon import (
    POST,
    REPOST,
    RecordInvalid,
    check_facet_ranges,
    detect_facets,
    is_tid,
    make_cid,
    make_tid,
    record_cid,
    validate_record,
)
from bot.sandbox.server import Clock, Emulator, Request, Response, account_names, utc_now

CAMPAIGN_TAG = "NoTechForICE"

# The PDS's own upload cap (PDS_BLOB_UPLOAD_LIMIT, 5 MiB by default); the 1,000,000-byte image
# limit is the lexicon's and is checked when a record references the blob, as the PDS does.
UPLOAD_LIMIT = 5 * 1024 * 1024

_SNIFF: list[tuple[bytes, int, str]] = [
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"GIF87a", 0, "image/gif"),
    (b"GIF89a", 0, "image/gif"),
    (b"WEBP", 8, "image/webp"),
]
_IMAGE_PATH = re.compile(r"^/img/[a-z_]+/plain/(did:[^/]+)/([a-z0-9]+)@[a-z]+$")


def sniff_mime(data: bytes, declared: str | None) -> str:
    """The PDS trusts the bytes, then the header (the SDK always sends `*/*`)."""
    for magic, offset, mime in _SNIFF:
        if data[offset : offset + len(magic)] == magic and (offset == 0 or data[:4] == b"RIFF"):
            return mime
    if declared and declared != "*/*" and "/" in declared:
        return declared.split(";")[0].strip()
    return "application/octet-stream"


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


class BlueskyEmulator(Emulator):
    name = "bluesky"

    def __init__(self, *, accounts: int = 2, limits: str = "none", clock: Clock = utc_now) -> None:
        super().__init__(accounts=accounts, limits=limits, clock=clock)
        self.auth = Authority(clock, self.rates, enforce=limits != "none")
        self.net = Network()
        self.view = AppView(self.net, lambda: self.base_url)
        self._last_stamp: datetime | None = None
        self._ours: list[Actor] = []
        self._create_accounts()
        self._routes: dict[str, tuple[str, bool, Callable[[Request, Actor | None], Any]]] = {
            # nsid: (HTTP method, needs auth, handler)
            "com.atproto.server.getSession": ("GET", True, self._get_session),
            "com.atproto.identity.resolveHandle": ("GET", False, self._resolve_handle),
            "app.bsky.actor.getProfile": ("GET", False, self._get_profile),
            "com.atproto.repo.createRecord": ("POST", True, self._create_record),
            "com.atproto.repo.putRecord": ("POST", True, self._put_record),
            "com.atproto.repo.deleteRecord": ("POST", True, self._delete_record),
            "com.atproto.repo.getRecord": ("GET", False, self._get_record),
            "com.atproto.repo.listRecords": ("GET", False, self._list_records),
            "com.atproto.repo.uploadBlob": ("POST", True, self._upload_blob),
            "com.atproto.sync.getBlob": ("GET", False, self._get_blob),
            "app.bsky.feed.searchPosts": ("GET", False, self._search_posts),
            "app.bsky.feed.getPostThread": ("GET", False, self._get_post_thread),
            "app.bsky.feed.getPosts": ("GET", False, self._get_posts),
            "app.bsky.notification.listNotifications": ("GET", True, self._list_notifications),
        }

    def _create_accounts(self) -> None:
        joined = self.clock() - timedelta(days=365)
        for name in account_names(self.account_count):
            handle = sandbox_handle(name)
            actor = Actor(sandbox_did(handle), handle, name, joined, name, sandbox_app_password(name))
            self.net.actors[actor.did] = actor
            self._ours.append(actor)

    # -- the shared layer's hooks ---------------------------------------------------------

    def handle(self, request: Request) -> Response:
        if request.method == "GET" and (match := _IMAGE_PATH.match(request.path)):
            return self._image_bytes(match.group(2))
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

    def reset(self) -> None:
        """Empty every post, blob and notification; our accounts and their sessions stay valid."""
        super().reset()
        ours = {a.did: a for a in self._ours}
        self.net = Network(actors=ours)
        self.view = AppView(self.net, lambda: self.base_url)

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

    def add_audience(self, kind: str, author: str, text: str, to: str | None) -> dict[str, Any]:
        handle = author.lower().removeprefix("@")
        handle = handle if "." in handle else f"{handle}.test"
        actor = self.net.actor(handle)
        if actor is None:
            actor = Actor(sandbox_did(handle), handle, author, self.clock() - timedelta(days=30))
            self.net.actors[actor.did] = actor
        record: dict[str, Any] = {"$type": POST, "text": text}
        if kind == "reply":
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
        facets = detect_facets(text, lambda h: a.did if (a := self.net.actor(h)) else None)
        if facets:
            record["facets"] = facets
        stamp = self._stamp()
        record["createdAt"] = format_time(stamp)
        return self._state_post(self._store(actor, POST, None, record, stamp))

    # -- sessions and actors --------------------------------------------------------------

    def _get_session(self, request: Request, actor: Actor | None) -> dict[str, Any]:
        assert actor is not None
        return {"handle": actor.handle, "did": actor.did, "active": True, "emailConfirmed": True}

    def _resolve_handle(self, request: Request, actor: Actor | None) -> dict[str, Any]:
        handle = _param(request, "handle")
        found = None if handle.startswith("did:") else self.net.actor(handle)
        if found is None:
            raise XrpcError(400, "InvalidRequest", "Unable to resolve handle")
        return {"did": found.did}

    def _get_profile(self, request: Request, actor: Actor | None) -> dict[str, Any]:
        found = self.net.actor(_param(request, "actor"))
        if found is None:
            raise XrpcError(400, "InvalidRequest", "Profile not found")
        return self.view.profile_detailed(found)

    # -- repo writes ----------------------------------------------------------------------

    def _create_record(self, request: Request, actor: Actor | None) -> dict[str, Any]:
        body = _body(request)
        actor = self._own_repo(body, actor)
        collection, rkey = str(body.get("collection", "")), body.get("rkey")
        validate = body.get("validate") is not False
        if rkey is not None:
            if validate and not is_tid(str(rkey)):
                # The post lexicon's key type is "tid"; the SDK sends validate: true.
                raise XrpcError(400, "InvalidRequest", f"Invalid record key for {collection}")
            existing = self.net.live(f"at://{actor.did}/{collection}/{rkey}")
            if existing is not None:
                # The MST throws "There is already a value at key"; the PDS answers a bare 500
                # (bluesky-social/atproto#3718), not a 409. Clients must check getRecord.
                raise XrpcError(500, "InternalServerError", "Internal Server Error")
        record = self._checked(collection, body.get("record"), validate)
        stored = self._store(actor, collection, str(rkey) if rkey else None, record, self._stamp())
        return self._write_answer(stored)

    def _put_record(self, request: Request, actor: Actor | None) -> dict[str, Any]:
        body = _body(request)
        actor = self._own_repo(body, actor)
        collection, rkey = str(body.get("collection", "")), str(body.get("rkey", ""))
        validate = body.get("validate") is not False
        if validate and not is_tid(rkey):
            raise XrpcError(400, "InvalidRequest", f"Invalid record key for {collection}")
        record = self._checked(collection, body.get("record"), validate)
        existing = self.net.live(f"at://{actor.did}/{collection}/{rkey}")
        if existing is None:
            return self._write_answer(self._store(actor, collection, rkey, record, self._stamp()))
        existing.value, existing.cid = record, record_cid(record)
        return self._write_answer(existing)

    def _delete_record(self, request: Request, actor: Actor | None) -> dict[str, Any]:
        body = _body(request)
        actor = self._own_repo(body, actor)
        existing = self.net.live(f"at://{actor.did}/{body.get('collection')}/{body.get('rkey')}")
        if existing is None:
            return {}  # the PDS treats deleting a missing record as a no-op
        existing.deleted = True
        return {"commit": self._commit()}

    def _upload_blob(self, request: Request, actor: Actor | None) -> dict[str, Any]:
        assert actor is not None
        if len(request.body) > UPLOAD_LIMIT:
            raise XrpcError(413, "PayloadTooLarge", "request entity too large")
        mime = sniff_mime(request.body, request.headers.get("Content-Type"))
        blob = Blob(make_cid(request.body, raw=True), actor.did, mime, request.body)
        self.net.blobs[blob.cid] = blob
        return {
            "blob": {
                "$type": "blob",
                "ref": {"$link": blob.cid},
                "mimeType": blob.mime_type,
                "size": blob.size,
            }
        }

    def _checked(self, collection: str, record: Any, validate: bool) -> dict[str, Any]:
        """Validate a record as the PDS does: lexicon, then (emulator) facet ranges, reply refs, blobs."""
        if not isinstance(record, dict):
            raise XrpcError(400, "InvalidRequest", 'Input must have the property "record"')
        if not validate:
            return record
        try:
            refs = validate_record(collection, record)
            if collection == POST:
                check_facet_ranges(record)
        except RecordInvalid as exc:
            raise XrpcError(400, exc.error, exc.message) from None
        for ref in refs.replies:
            target = self.net.records.get(ref.uri)
            if target is None or target.cid != ref.cid:
                # Stricter than the PDS, which stores replies to anything: a reference that never
                # existed in the sandbox is a bug in the caller (docs/decisions.md).
                raise XrpcError(
                    400,
                    "InvalidRequest",
                    f"Invalid {collection} record: {ref.path} does not reference an existing record",
                )
        for blob_ref in refs.blobs:
            blob = self.net.blobs.get(blob_ref.cid)
            if blob is None:
                raise XrpcError(400, "BlobNotFound", f"Could not find blob: {blob_ref.cid}")
            if blob.size > blob_ref.max_size:
                raise XrpcError(
                    400,
                    "BlobTooLarge",
                    f"This file is too large. It is {_pretty_bytes(blob.size)} but the maximum size is "
                    f"{_pretty_bytes(blob_ref.max_size)}.",
                )
            if not blob.mime_type.startswith(blob_ref.accept.removesuffix("*")):
                raise XrpcError(
                    400,
                    "InvalidMimeType",
                    f"Wrong type of file. It is {blob.mime_type} but it must match {blob_ref.accept}.",
                )
        return record

    def _own_repo(self, body: dict[str, Any], actor: Actor | None) -> Actor:
        assert actor is not None
        repo = str(body.get("repo", ""))
        if repo not in (actor.did, actor.handle):
            if self.net.actor(repo) is None:
                raise XrpcError(400, "InvalidRequest", f"Could not find repo: {repo}")
            raise XrpcError(401, "AuthenticationRequired", "Authentication Required")
        return actor

    def _stamp(self) -> datetime:
        """The clock, made strictly increasing by the millisecond so that order and cursors are exact."""
        now = self.clock()
        if self._last_stamp is not None and now <= self._last_stamp:
            now = self._last_stamp + timedelta(milliseconds=1)
        self._last_stamp = now
        return now

    def _store(
        self, actor: Actor, collection: str, rkey: str | None, value: dict[str, Any], at: datetime
    ) -> Record:
        rkey = rkey or make_tid(int(at.timestamp() * 1_000_000), clock_id=7)
        uri = f"at://{actor.did}/{collection}/{rkey}"
        record = Record(uri, record_cid(value), actor.did, collection, rkey, value, at)
        self.net.index(record)
        return record

    def _commit(self) -> dict[str, str]:
        rev = make_tid(int(self._stamp().timestamp() * 1_000_000), clock_id=3)
        return {"cid": make_cid(rev.encode()), "rev": rev}

    def _write_answer(self, record: Record) -> dict[str, Any]:
        return {"uri": record.uri, "cid": record.cid, "commit": self._commit(), "validationStatus": "valid"}

    # -- repo reads -----------------------------------------------------------------------

    def _get_record(self, request: Request, actor: Actor | None) -> dict[str, Any]:
        repo = self._repo_param(request)
        uri = f"at://{repo.did}/{_param(request, 'collection')}/{_param(request, 'rkey')}"
        record = self.net.live(uri)
        if record is None:
            raise XrpcError(400, "RecordNotFound", f"Could not locate record: {uri}")
        return {"uri": record.uri, "cid": record.cid, "value": record.value}

    def _list_records(self, request: Request, actor: Actor | None) -> dict[str, Any]:
        repo = self._repo_param(request)
        collection = _param(request, "collection")
        limit = _limit(request, default=50)
        reverse = request.arg("reverse") == "true"
        cursor = request.arg("cursor")
        records = sorted(
            (
                r
                for r in self.net.records.values()
                if r.did == repo.did and r.collection == collection and not r.deleted
            ),
            key=lambda r: r.rkey,
            reverse=not reverse,  # newest (highest TID) first unless reverse=true
        )
        if cursor:
            records = [r for r in records if (r.rkey > cursor if reverse else r.rkey < cursor)]
        page = records[:limit]
        answer: dict[str, Any] = {"records": [{"uri": r.uri, "cid": r.cid, "value": r.value} for r in page]}
        if len(records) > limit:
            answer["cursor"] = page[-1].rkey
        return answer

    def _repo_param(self, request: Request) -> Actor:
        repo = _param(request, "repo")
        actor = self.net.actor(repo)
        if actor is None:
            raise XrpcError(400, "InvalidRequest", f"Could not find repo: {repo}")
        return actor

    def _get_blob(self, request: Request, actor: Actor | None) -> Response:
        blob = self.net.blobs.get(_param(request, "cid"))
        if blob is None:
            raise XrpcError(400, "BlobNotFound", "Blob not found")
        return Response(200, blob.data, {"Content-Type": blob.mime_type})

    def _image_bytes(self, cid: str) -> Response:
        with self.lock:
            blob = self.net.blobs.get(cid)
        if blob is None:
            return Response(404, b"not found", {"Content-Type": "text/plain"})
        return Response(200, blob.data, {"Content-Type": blob.mime_type})

    # -- AppView reads --------------------------------------------------------------------

    def _search_posts(self, request: Request, actor: Actor | None) -> dict[str, Any]:
        q = _param(request, "q")
        limit = _limit(request, default=25)
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
        offset = _offset_cursor(request)
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
        uri = _param(request, "uri")
        record = self._post_at(uri)
        if record is None:
            raise XrpcError(400, "NotFound", f"Post not found: {uri}")
        depth = _int_param(request, "depth", 6, 0, 1000)
        height = _int_param(request, "parentHeight", 80, 0, 1000)
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
        limit = _limit(request, default=50)
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
            "url": f"https://bsky.app/profile/{self.net.actors[record.did].handle}/post/{record.rkey}",
            "author": self.net.actors[record.did].handle,
            "text": value.get("text", ""),
            "created_at": value.get("createdAt", format_time(record.indexed_at)),
            "in_reply_to": (value.get("reply") or {}).get("parent", {}).get("uri"),
            "media": [{"id": i["image"]["ref"]["$link"], "alt": i["alt"]} for i in media.get("images", [])],
            "raw": value,
        }
        return post | {"deleted": True} if record.deleted else post


def _body(request: Request) -> dict[str, Any]:
    try:
        body = request.json()
    except ValueError:
        raise XrpcError(400, "InvalidRequest", "Request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise XrpcError(400, "InvalidRequest", "Input must be an object")
    return body


def _param(request: Request, name: str) -> str:
    value = request.arg(name)
    if value is None:
        raise XrpcError(400, "InvalidRequest", f'Params must have the property "{name}"')
    return value


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.arg(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise XrpcError(400, "InvalidRequest", f"Params/{name} must be an integer") from None
    if value < low:
        raise XrpcError(400, "InvalidRequest", f"Params/{name} can not be less than {low}")
    if value > high:
        raise XrpcError(400, "InvalidRequest", f"Params/{name} can not be greater than {high}")
    return value


def _limit(request: Request, default: int) -> int:
    return _int_param(request, "limit", default, 1, 100)


def _offset_cursor(request: Request) -> int:
    raw = request.arg("cursor")
    return int(raw) if raw and raw.isdigit() else 0


def _pretty_bytes(size: int) -> str:
    """As the PDS prints sizes: binary units, two decimals at most ("976.56KB", "1.01MB")."""
    for unit, scale in (("MB", 1024**2), ("KB", 1024)):
        if size >= scale:
            return f"{round(size / scale, 2):g}{unit}"
    return f"{size}B"


__all__ = ["BlueskyEmulator", "RateLimit"]
