"""A total deadline and a size cap on every HTTP answer, for requests (tweepy, Mastodon.py) and
httpx (atproto).

The SDKs' timeouts bound each socket operation, not the call: a server sending one byte every
5 s held a publish for 300 s with a 20 s timeout, past the delivery lease (another worker may
then send again) and past SIGTERM's bound. Here each HTTP request, body included, ends within
`seconds` or fails as that library's own timeout error (which the adapters already treat as
`Transient`: the write may have landed, so the next attempt looks first). An answer larger
than `max_bytes` fails the same way, before it is held in memory.

- requests: `DeadlineAdapter` (mounted on the session) reads the body itself, in chunks, and one
  watchdog thread for the process shuts the connection's socket down at the deadline, ending a read blocked
  in the middle of a drip at once.
- httpx: `DeadlineTransport` (given to the client) runs the request with each socket read and
  write given at most the time left (a network backend that clips httpcore's timeouts).
"""

from __future__ import annotations

import contextlib
import heapq
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore
import httpx
import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

# More than any answer the bot reads (a page of 100 posts is a few hundred KB); a server that
# sends more is broken or hostile.
MAX_ANSWER_BYTES = 8 * 1024 * 1024
CHUNK = 64 * 1024


class AnswerTooLarge(requests.RequestException):
    """The answer passed the size cap (requests); httpx raises `httpx.ReadError` instead."""


class Deadline:
    """When the current request must be over; the watchdog shuts the sockets it watches down then."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.expired = False
        self.finished = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def watch(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shut(sock)

    def expire(self) -> None:
        with self._lock:
            if self.finished:
                return
            self.expired = True
            for sock in self._sockets:
                _shut(sock)

    @contextlib.contextmanager
    def running(self) -> Iterator[Deadline]:
        outer = getattr(_current, "deadline", None)
        _current.deadline = self
        _WATCHDOG.watch(self)
        try:
            yield self
        finally:
            with self._lock:
                self.finished = True
                self._sockets.clear()
            _current.deadline = outer


class _Watchdog:
    """One thread for every deadline of the process (a timer thread per request cost a third of
    a local request's time): it sleeps until the earliest one and expires those that passed."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, Deadline]] = []
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def watch(self, deadline: Deadline) -> None:
        with self._wake:
            heapq.heappush(self._due, (deadline.at, id(deadline), deadline))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="http-deadlines", daemon=True)
                self._thread.start()
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._due and self._due[0][2].finished:
                    heapq.heappop(self._due)
                if not self._due:
                    self._wake.wait()
                    continue
                left = self._due[0][0] - time.monotonic()
                if left > 0:
                    self._wake.wait(left)
                    continue
                _, _, deadline = heapq.heappop(self._due)
            deadline.expire()


_WATCHDOG = _Watchdog()


_current = threading.local()


def current_deadline() -> Deadline | None:
    deadline: Deadline | None = getattr(_current, "deadline", None)
    return deadline


def _shut(sock: socket.socket) -> None:
    # The plain socket's shutdown, also under TLS: SSLSocket.shutdown would drop its SSL object
    # under the reading thread's feet (an AttributeError there instead of a clean read error).
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


# -- requests ---------------------------------------------------------------------------------


class _Watched:
    """urllib3 connections that put their socket under the current deadline's watch."""

    sock: socket.socket | None

    def connect(self) -> None:
        deadline = current_deadline()
        if deadline is not None and deadline.remaining() <= 0:
            raise TimeoutError("deadline passed before connecting")
        super().connect()  # type: ignore[misc]
        if deadline is not None:
            deadline.watch(self.sock)

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        deadline = current_deadline()
        if deadline is not None:
            deadline.watch(self.sock)  # a kept-alive connection, connected before this request
        return super().getresponse(*args, **kwargs)  # type: ignore[misc]


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class DeadlineAdapter(HTTPAdapter):
    """Each request, body included, within `seconds` and `max_bytes` (streamed requests: as is)."""

    def __init__(self, seconds: float, max_bytes: int = MAX_ANSWER_BYTES, **kwargs: Any) -> None:
        self.seconds = seconds
        self.max_bytes = max_bytes
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        if kwargs.get("stream"):
            return super().send(request, *args, **kwargs)  # a long-lived stream has its own bounds
        kwargs["stream"] = True
        with Deadline(self.seconds).running() as deadline:
            try:
                response = super().send(request, *args, **kwargs)
                body = _read_capped(response.iter_content(CHUNK), self.max_bytes, deadline)
            except (requests.RequestException, OSError) as exc:
                if deadline.expired or deadline.remaining() <= 0:
                    raise requests.Timeout(f"no whole answer within {self.seconds:.0f} s") from exc
                raise
        # requests' own field for a body already read (what `Response.content` fills).
        response._content = body
        return response


def _read_capped(chunks: Iterable[bytes], max_bytes: int, deadline: Deadline) -> bytes:
    body = bytearray()
    for chunk in chunks:
        body += chunk
        if len(body) > max_bytes:
            raise AnswerTooLarge(f"answer larger than {max_bytes:,} bytes")
        if deadline.remaining() <= 0:
            raise requests.Timeout("deadline passed while reading the answer")
    return bytes(body)


def mount_deadline(session: requests.Session, seconds: float, max_bytes: int = MAX_ANSWER_BYTES) -> None:
    """Give every request of `session` a total deadline and a size cap."""
    adapter = DeadlineAdapter(seconds, max_bytes)
    session.mount("http://", adapter)
    session.mount("https://", adapter)


# -- httpx ------------------------------------------------------------------------------------


def _clip(timeout: float | None) -> float:
    deadline = current_deadline()
    if deadline is None:
        return timeout if timeout is not None else 60.0
    left = deadline.remaining()
    if left <= 0:
        raise httpcore.ReadTimeout("deadline passed")
    return left if timeout is None else min(timeout, left)


class _ClippedStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _clip(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _clip(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        return _ClippedStream(self._inner.start_tls(*args, **kwargs))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _ClippedBackend(httpcore.SyncBackend):
    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = super().connect_tcp(host, port, _clip(timeout), local_address, socket_options)
        return _ClippedStream(stream)


class DeadlineTransport(httpx.BaseTransport):
    """httpx's own transport, each request (body included) within `seconds` and `max_bytes`."""

    def __init__(self, seconds: float, max_bytes: int = MAX_ANSWER_BYTES) -> None:
        self.seconds = seconds
        self.max_bytes = max_bytes
        self._inner = httpx.HTTPTransport()
        # httpx takes no network backend; its pool does (httpcore's documented parameter).
        self._inner._pool = httpcore.ConnectionPool(network_backend=_ClippedBackend())

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with Deadline(self.seconds).running():
            response = self._inner.handle_request(request)
            try:
                body = bytearray()
                for chunk in response.stream:  # type: ignore[union-attr]
                    body += chunk
                    if len(body) > self.max_bytes:
                        raise httpx.ReadError(f"answer larger than {self.max_bytes:,} bytes", request=request)
            finally:
                response.close()
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            content=bytes(body),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._inner.close()
