"""The shared emulator layer: a real HTTP server on 127.0.0.1 in front of one platform emulator.

The server parses each request into a `Request`, applies any injected fault, lets the
emulator answer with a `Response`, and serves the `/_sandbox/` control routes that every
emulator shares (docs/sandbox.md, the control API):

    GET  /_sandbox/state      every post ever made, ours and the audience's, oldest first
    POST /_sandbox/faults     inject a fault for the next `times` matching requests
    POST /_sandbox/audience   other accounts post (reply, mention, hashtag)
    POST /_sandbox/settings   emulator switches
    POST /_sandbox/reset      empty everything

It is built on the standard library's `http.server` so that a fault can close the socket before
or after the write is applied, and so that exactly one `Date` header goes out: Mastodon.py's
rate-limit code fails on a response that carries two.
"""

from __future__ import annotations

import email.parser
import email.policy
import fnmatch
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Clock = Callable[[], datetime]


# What `/_sandbox/audience` can make someone else do (docs/sandbox.md).
AUDIENCE_KINDS = ("reply", "mention", "hashtag", "quote", "edit", "delete", "suspend", "thread")
# A stranger's long answer, as people write one: a reply, then replies to themselves, in several
# scripts with emoji; every fourth part is filled to the network's limit (`thread_limit`).
THREAD_LINES = (
    "A thread on why this matters to me 🧵",
    "技術者として、私たちは何を作るかを選べる。✊🏽",
    "Ни одного контракта с ICE. Мы пишем код не для этого.",
    "مرحبا، نحن مع الحملة 🌍 لا للتكنولوجيا من أجل الترحيل",
    "Kein Code für Abschiebungen 💻🚫",
    "우리는 침묵하지 않겠습니다 🙌🏾",
    "🧵✊🏽🌍💻🔥🙌🏾",
    "Nous ne construirons pas ces outils. Point.",
)
FILLER = "Engineers can refuse to build it, and many already have. "


def thread_texts(parts: int, limit: int) -> list[str]:
    """The texts of a `thread` of `parts` parts; every fourth (from the fourth) is ASCII of
    exactly `limit` characters, the others mix scripts and emoji."""
    texts = []
    for index in range(parts):
        if index % 4 == 3:
            head = f"({index + 1}/{parts}) "
            texts.append((head + FILLER * (limit // len(FILLER) + 1))[:limit].rstrip(" ").ljust(limit, "."))
        else:
            texts.append(f"({index + 1}/{parts}) {THREAD_LINES[index % len(THREAD_LINES)]}")
    return texts


def utc_now() -> datetime:
    return datetime.now(UTC)


def account_names(count: int) -> list[str]:
    """The sandbox accounts of every platform: `main` (as in the shipped config.yaml), then account2, ..."""
    return ["main", *(f"account{i}" for i in range(2, count + 1))]


@dataclass(frozen=True)
class FilePart:
    """One part of a multipart/form-data body."""

    name: str
    filename: str | None
    content_type: str
    data: bytes


@dataclass
class Request:
    method: str
    path: str  # without the query string
    query: dict[str, list[str]]
    headers: Message
    body: bytes

    def arg(self, name: str, default: str | None = None) -> str | None:
        """The first value of a query parameter."""
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, list[str]]:
        """An application/x-www-form-urlencoded body (or a JSON object, as lists of strings)."""
        ctype = self.headers.get("Content-Type", "")
        if ctype.startswith("application/json"):
            data = self.json() or {}
            return {k: [str(x) for x in v] if isinstance(v, list) else [str(v)] for k, v in data.items()}
        return parse_qs(self.body.decode("utf-8"), keep_blank_values=True)

    def multipart(self) -> dict[str, list[FilePart]]:
        """A multipart/form-data body, by field name."""
        head = f"Content-Type: {self.headers.get('Content-Type', '')}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + self.body)
        parts: dict[str, list[FilePart]] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if not isinstance(name, str):
                continue
            data = part.get_payload(decode=True)
            parts.setdefault(name, []).append(
                FilePart(
                    name=name,
                    filename=part.get_filename(),
                    content_type=part.get_content_type(),
                    data=data if isinstance(data, bytes) else b"",
                )
            )
        return parts


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    stream: Iterator[bytes] | None = None  # server-sent events: written chunk by chunk

    @classmethod
    def json(cls, status: int, obj: Any, headers: dict[str, str] | None = None) -> Response:
        body = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()
        return cls(status, body, {"Content-Type": "application/json; charset=utf-8", **(headers or {})})


@dataclass
class Fault:
    method: str
    path: str  # exact, or an fnmatch pattern such as /api/v1/statuses/*
    times: int
    status: int | None = None
    drop: str | None = None  # "before" | "after"
    latency_ms: int = 0
    reset_in: float | None = None  # with status 429
    account: str | None = None
    apply: bool = False  # with status: apply the write first, then answer with the error
    # Hostile and broken answers (docs/sandbox.md): this exact body (after applying the write),
    # extra headers, a body of `body_bytes` bytes, the body sent a byte every `drip_ms`.
    body: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body_bytes: int = 0
    drip_ms: int = 0
    code: int | None = None  # the platform's own error code (Graph: 368, 506, ...), instead of status

    def matches(self, method: str, paths: tuple[str, ...], account: str | None) -> bool:
        if self.method.upper() != method or not any(fnmatch.fnmatchcase(p, self.path) for p in paths):
            return False
        return self.account is None or self.account == account

    @property
    def errs(self) -> bool:
        return self.status is not None or self.code is not None


class RateWindow:
    """Fixed-window counters per key, on the emulator's clock."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._windows: dict[tuple[str, ...], tuple[datetime, int]] = {}

    def hit(
        self, key: tuple[str, ...], limit: int, period: timedelta, cost: int = 1
    ) -> tuple[bool, int, datetime]:
        """Spend `cost` from the window; return (allowed, remaining, reset_at). Refused hits cost nothing."""
        now = self._clock()
        start, used = self._windows.get(key, (now, 0))
        if now >= start + period:
            start, used = now, 0
        reset_at = start + period
        if used + cost > limit:
            self._windows[key] = (start, used)
            return False, max(0, limit - used), reset_at
        self._windows[key] = (start, used + cost)
        return True, limit - used - cost, reset_at

    def peek(self, key: tuple[str, ...], limit: int, period: timedelta) -> tuple[int, datetime]:
        """(remaining, reset_at) without spending."""
        now = self._clock()
        start, used = self._windows.get(key, (now, 0))
        if now >= start + period:
            start, used = now, 0
        return max(0, limit - used), start + period

    def clear(self) -> None:
        self._windows.clear()


class Emulator:
    """Base class of the three platform emulators.

    Subclasses answer platform routes in `handle`, keep their state under `self.lock`, and
    describe every post (ours and the audience's) through `state_posts`, in the shape of
    docs/sandbox.md and with exactly its keys: {"id", "url", "author", "text", "created_at",
    "in_reply_to", "media": [{"id", "alt"}], "raw"}, plus `"deleted": true` once deleted. Which
    posts are ours is told beside them (`accounts`: config name -> author), not by an extra key,
    so a checker that compares key sets holds on every emulator.
    """

    name = "platform"

    def __init__(self, *, accounts: int = 2, limits: str = "none", clock: Clock = utc_now) -> None:
        self.account_count = accounts
        self.limits = limits
        self.clock = clock
        self.lock = threading.RLock()
        self.base_url = ""  # set by the server once it is bound
        self.control_token: str | None = None  # set by the server: `X-Sandbox-Token` for /_sandbox/
        self.rates = RateWindow(clock)

    # -- for subclasses -------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        raise NotImplementedError

    def error_response(self, status: int) -> Response:
        """The platform's own error body for an injected status fault."""
        return Response.json(status, {"error": f"HTTP {status}"})

    def rate_limited_response(self, reset_at: datetime) -> Response:
        """The platform's own 429, with its reset headers."""
        return Response.json(429, {"error": "Too Many Requests"})

    def account_of(self, request: Request) -> str | None:
        """The name of the account whose credentials the request carries, if any."""
        return None

    def fault_paths(self, path: str) -> tuple[str, ...]:
        """The paths a fault's `path` is matched against (Graph: with and without `/vNN.N`)."""
        return (path,)

    # The longest text a stranger's thread part takes here (`thread` fills some parts to it).
    thread_limit = 280

    def coded_error(self, code: int) -> Response:
        """The answer for a fault given as the platform's own error `code`; ValueError if none."""
        raise ValueError(f"the {self.name} emulator takes no error code; give a status")

    def add_audience(
        self, kind: str, author: str, text: str, to: str | None, options: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Post one message by someone else; return it as a state post. `options`: the rest of
        the control request (`plain`, ... in docs/sandbox.md)."""
        raise NotImplementedError

    def amend(self, post_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Overwrite fields of an audience post as the network serves it (`audience` `fields`):
        a hostile or malformed post, e.g. an impossible `createdAt`. Returns its state post."""
        raise ValueError(f"{self.name} takes no audience `fields`")

    def apply_settings(self, settings: dict[str, Any]) -> None:
        if settings:
            raise ValueError(f"unknown settings: {sorted(settings)}")

    def reset(self) -> None:
        self.rates.clear()

    def credentials(self) -> list[dict[str, str]]:
        """The sandbox accounts as the JSON line shows them (names as in config.yaml)."""
        raise NotImplementedError

    def state_posts(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def state_extra(self) -> dict[str, Any]:
        """Anything else worth showing in GET /_sandbox/state."""
        return {}

    def account_authors(self) -> dict[str, str]:
        """Our sandbox accounts: config name -> `author` as the state posts spell it."""
        return {}

    def close(self) -> None:
        """The server is stopping: end what outlives a request (open event streams)."""

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {"base_url": self.base_url, "accounts": self.credentials()}
        if self.control_token:
            described["control_token"] = self.control_token
        return described


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, a keep-alive client waits for
    # the delayed ACK (~40 ms) on every request.
    disable_nagle_algorithm = True
    server: SandboxServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the emulators are quiet; tests read /_sandbox/state instead

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    def _serve(self) -> None:
        split = urlsplit(self.path)
        length = _content_length(self.headers.get("Content-Length"))
        if length is None:
            # A negative or unreadable length would have the read wait for ever: refuse it.
            self.close_connection = True
            self._send(Response.json(400, {"error": "bad Content-Length"}))
            return
        body = self.rfile.read(length) if length else b""
        request = Request(
            self.command, split.path, parse_qs(split.query, keep_blank_values=True), self.headers, body
        )
        emulator = self.server.emulator
        if split.path.startswith("/_sandbox/"):
            refused = self.server.refuse_control(request)
            self._send(refused or self.server.control(request))
            return
        fault = self.server.take_fault(request)
        if fault is not None:
            if fault.latency_ms:
                time.sleep(fault.latency_ms / 1000)
            if fault.drop == "before":
                self.close_connection = True
                return
            rewritten = fault.body is not None or fault.body_bytes  # answered after applying
            if fault.status == 429 and not rewritten:
                reset_at = emulator.clock() + timedelta(seconds=fault.reset_in or 60)
                self._send(_hostile(fault, emulator.rate_limited_response(reset_at)), fault.drip_ms)
                return
            if fault.errs and not fault.apply and not rewritten:
                self._send(_hostile(fault, self._fault_error(fault)), fault.drip_ms)
                return
        try:
            response = emulator.handle(request)
            if response.status in (404, 501) and request.method == "GET":  # XRPC: 501 for unknown
                response = self.server.web_post(request.path) or response
        except Exception as exc:  # an emulator bug must show, not hang the client
            response = Response.json(500, {"error": "EmulatorError", "message": repr(exc)})
        if fault is not None and fault.drop == "after":
            self.close_connection = True  # the write was applied; the answer is lost
            return
        if fault is not None and fault.errs and fault.apply:
            response = self._fault_error(fault)  # applied, then answered with an error
        if fault is not None:
            response = _hostile(fault, response)
        self._send(response, fault.drip_ms if fault is not None else 0)

    def _fault_error(self, fault: Fault) -> Response:
        emulator = self.server.emulator
        if fault.code is not None:
            return emulator.coded_error(fault.code)
        return emulator.error_response(fault.status or 500)

    def _send(self, response: Response, drip_ms: int = 0) -> None:
        self.send_response(response.status)  # writes the one Date header
        for name, value in response.headers.items():
            self.send_header(name, value)
        if drip_ms:
            self._drip(response, drip_ms / 1000)
            return
        if response.stream is not None:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                for chunk in response.stream:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.close_connection = True
            return
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def _drip(self, response: Response, pause: float) -> None:
        """A slow server: the body one byte at a time, `pause` seconds apart (a stopped server or
        a client that hung up ends it)."""
        body = b"".join(response.stream) if response.stream is not None else response.body
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.close_connection = True
        try:
            for index in range(len(body)):
                self.wfile.write(body[index : index + 1])
                self.wfile.flush()
                if self.server.stopping.wait(pause):
                    return
        except (BrokenPipeError, ConnectionResetError):
            pass


MAX_REQUEST_BYTES = 64 * 1024 * 1024  # far above any upload the emulators take (Mastodon: 16 MB)


def _content_length(value: str | None) -> int | None:
    """The request body's length, or None when it is not a number in [0, MAX_REQUEST_BYTES]."""
    if value is None or value.strip() == "":
        return 0
    try:
        length = int(value)
    except ValueError:
        return None
    return length if 0 <= length <= MAX_REQUEST_BYTES else None


def _hostile(fault: Fault, response: Response) -> Response:
    """The answer as the fault rewrites it: its own body, a huge body, extra headers."""
    if fault.body is not None:
        status = fault.status or 200
        response = Response(status, fault.body.encode(), {"Content-Type": "application/json; charset=utf-8"})
    if fault.body_bytes:
        size = fault.body_bytes

        def huge() -> Iterator[bytes]:  # valid JSON, never held whole: `[` spaces `]`
            yield b"["
            left = size - 2
            while left > 0:
                step = min(left, 1 << 20)
                yield b" " * step
                left -= step
            yield b"]"

        response = Response(fault.status or 200, b"", {"Content-Type": "application/json"}, stream=huge())
    response.headers = {**response.headers, **fault.headers}
    return response


class SandboxServer(ThreadingHTTPServer):
    """One emulator behind a threaded HTTP server on 127.0.0.1."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, emulator: Emulator, port: int = 0, control_token: str | None = None) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.emulator = emulator
        # With a token, the control routes answer only requests that carry it: a web page open
        # in the staff's browser could otherwise drive the sandbox (a `text/plain` POST needs
        # no CORS preflight). `python -m bot sandbox` and `run --sandbox` always set one.
        self.control_token = control_token
        emulator.control_token = control_token
        self.faults: list[Fault] = []
        self._faults_lock = threading.Lock()
        self.stopping = threading.Event()  # ends slow (drip) answers
        emulator.base_url = self.base_url
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> SandboxServer:
        self._thread = threading.Thread(
            target=self.serve_forever, args=(0.05,), name=f"sandbox-{self.emulator.name}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.emulator.close()
        self.shutdown()
        self.server_close()

    def web_post(self, path: str) -> Response | None:
        """A post at its web address (its state `url`, or X's `/i/web/status/<id>`), as its state JSON.

        The links the bot prints in sandbox mode lead here, so a rehearsal's links open.
        """
        with self.emulator.lock:
            posts = self.emulator.state_posts()
        for post in posts:
            if urlsplit(post["url"]).path == path or path == f"/i/web/status/{post['id']}":
                return Response.json(200, post)
        return None

    def take_fault(self, request: Request) -> Fault | None:
        with self._faults_lock:
            if not self.faults:
                return None
            account = self.emulator.account_of(request)
            paths = self.emulator.fault_paths(request.path)
            for fault in self.faults:
                if fault.matches(request.method, paths, account):
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def refuse_control(self, request: Request) -> Response | None:
        """A 403 unless the control request names this server as its Host (no DNS rebinding)
        and, when the server has a token, carries it in `X-Sandbox-Token`."""
        port = self.server_address[1]
        host = (request.headers.get("Host") or "").lower()
        if host not in (f"127.0.0.1:{port}", f"localhost:{port}"):
            return Response.json(403, {"error": "bad sandbox request: Host must be this server"})
        given = request.headers.get("X-Sandbox-Token") or ""
        if self.control_token and not hmac.compare_digest(given.encode(), self.control_token.encode()):
            return Response.json(403, {"error": "bad sandbox request: missing or wrong X-Sandbox-Token"})
        return None

    @staticmethod
    def _stranger_thread(emulator: Emulator, payload: dict[str, Any]) -> list[dict[str, Any]]:
        """`thread`: a reply to `to`, then `parts - 1` replies by the same author to their own
        previous part, each a post of its own as the network serves them."""
        parts = int(payload.get("parts", 12))
        if not 2 <= parts <= 50:
            raise ValueError("parts must be 2 to 50")
        author, to = str(payload.get("author", "alice")), payload.get("to")
        posts: list[dict[str, Any]] = []
        with emulator.lock:
            for text in thread_texts(parts, emulator.thread_limit):
                posts.append(emulator.add_audience("reply", author, text, to))
                to = posts[-1]["id"]
        return posts

    def control(self, request: Request) -> Response:
        emulator = self.emulator
        route = (request.method, request.path.removeprefix("/_sandbox/"))
        try:
            if route == ("GET", "state"):
                with emulator.lock:
                    return Response.json(
                        200,
                        {
                            "posts": emulator.state_posts(),
                            "accounts": emulator.account_authors(),
                            **emulator.state_extra(),
                        },
                    )
            payload = request.json() or {}
            if route == ("POST", "faults"):
                fault = Fault(
                    method=str(payload["method"]),
                    path=str(payload["path"]),
                    times=int(payload.get("times", 1)),
                    status=payload.get("status"),
                    drop=payload.get("drop"),
                    latency_ms=int(payload.get("latency_ms", 0)),
                    reset_in=payload.get("reset_in"),
                    account=payload.get("account"),
                    apply=bool(payload.get("apply", False)),
                    body=None if payload.get("body") is None else str(payload["body"]),
                    headers={str(k): str(v) for k, v in dict(payload.get("headers") or {}).items()},
                    body_bytes=int(payload.get("body_bytes", 0)),
                    drip_ms=int(payload.get("drip_ms", 0)),
                    code=None if payload.get("code") is None else int(payload["code"]),
                )
                if fault.drop not in (None, "before", "after"):
                    raise ValueError("drop must be 'before' or 'after'")
                if fault.code is not None:
                    emulator.coded_error(fault.code)  # refuses a code the emulator does not know
                with self._faults_lock:
                    self.faults.append(fault)
                return Response.json(200, {"ok": True})
            if route == ("POST", "audience"):
                kind = str(payload["kind"])
                if kind not in AUDIENCE_KINDS:
                    raise ValueError(f"kind must be one of {', '.join(AUDIENCE_KINDS)}")
                fields = payload.get("fields") or {}
                if not isinstance(fields, dict):
                    raise ValueError("fields must be an object")
                args = (
                    kind,
                    str(payload.get("author", "alice")),
                    str(payload.get("text", "")),
                    payload.get("to"),
                )
                # Options only when given: an emulator without any keeps the four-argument form.
                options = {
                    k: v
                    for k, v in payload.items()
                    if k not in ("kind", "author", "text", "to", "count", "fields")
                }
                if kind == "thread":
                    return Response.json(200, {"posts": self._stranger_thread(emulator, payload)})
                with emulator.lock:
                    posts = [
                        emulator.add_audience(*args, options) if options else emulator.add_audience(*args)
                        for _ in range(int(payload.get("count", 1)))
                    ]
                    if fields:
                        posts = [emulator.amend(str(post["id"]), fields) for post in posts]
                return Response.json(200, {"posts": posts})
            if route == ("POST", "settings"):
                with emulator.lock:
                    emulator.apply_settings(dict(payload))
                return Response.json(200, {"ok": True})
            if route == ("POST", "reset"):
                with emulator.lock:
                    emulator.reset()
                with self._faults_lock:
                    self.faults.clear()
                return Response.json(200, {"ok": True})
        except (KeyError, ValueError, TypeError) as exc:
            return Response.json(400, {"error": f"bad sandbox request: {exc}"})
        return Response.json(404, {"error": f"no sandbox route {request.method} {request.path}"})
