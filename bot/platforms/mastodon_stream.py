"""A Mastodon hashtag stream held open in the background: Mastodon.py's server-sent events.

`open_hashtag_stream` asks the instance whether it offers streaming (v2 instance
`configuration.urls.streaming`), then starts `stream_hashtag(..., run_async=True,
reconnect_async=True)`: Mastodon.py's own thread reads the stream and reconnects after a drop.
Each streamed status, new (`update`) or edited (`status.update`), goes to `deliver` as a
`Mention`, exactly as a poll would read it.

Mastodon.py tells nothing about its connections, so the listener counts them itself: its
`handle_stream` runs once per (re)connection. A new connection means a gap (what was posted
while it was down), which the monitor fills with a poll from its cursor.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from mastodon import Mastodon, StreamListener

from bot.platforms import Mention
from bot.platforms.mastodon_reads import to_mention

log = logging.getLogger(__name__)

# Mastodon's streaming server writes a `:thump` heartbeat every few seconds (the emulator every
# 15 s): a minute of silence is a dead connection, read again by Mastodon.py's reconnect.
READ_TIMEOUT = 60.0
RECONNECT_WAIT = 5.0  # Mastodon.py's default pause between failed reconnects


class _Listener(StreamListener):
    def __init__(self, describe: str, deliver: Callable[[Mention], None], convert: Callable[[Any], Mention]):
        super().__init__()
        self.describe = describe
        self.deliver = deliver
        self.convert = convert
        self.stopped = threading.Event()
        self.connected = False
        self.connections = 0

    def handle_stream(self, response: Any) -> None:
        # Called by Mastodon.py's stream thread once per (re)connection, for as long as it lasts.
        self.connections += 1
        self.connected = True
        log.info("stream %s: connected", self.describe)
        try:
            super().handle_stream(response)  # type: ignore[no-untyped-call]  # unannotated upstream
        finally:
            self.connected = False
            if not self.stopped.is_set():
                log.info("stream %s: disconnected; reconnecting", self.describe)

    def on_status_update(self, status: Any) -> None:
        # An edit (`status.update`, Mastodon 3.5+): the server streams it to the hashtags the
        # status has now, so an edit that added the tag arrives here, its id older than the poll's
        # cursor. Reported as a new post would be; one already reported is not reported again.
        self.on_update(status)

    def on_update(self, status: Any) -> None:
        if self.stopped.is_set():
            return  # closed: a chunk read before the close is not ours to report any more
        try:
            self.deliver(self.convert(status))
        except Exception:  # an exception here would end Mastodon.py's stream thread for good
            log.exception("stream %s: could not report status %s", self.describe, status.get("id"))


class HashtagStream:
    """One open stream (the monitor's `bot.monitoring.livestreams.LiveFeed`)."""

    def __init__(self, api: Any, handle: Any, listener: _Listener) -> None:
        self._api = api
        self._handle = handle
        self._listener = listener

    def is_receiving(self) -> bool:
        """Connected now (not reconnecting, not closed)."""
        return bool(self._listener.connected and self._handle.is_receiving())

    def is_alive(self) -> bool:
        """Until closed, or until Mastodon.py's thread ended on an error it does not retry."""
        return not self._listener.stopped.is_set() and bool(self._handle.is_alive())

    def connections(self) -> int:
        """How many times it has connected: one more after each reconnect."""
        return self._listener.connections

    def close(self) -> None:
        """Stop at once, without waiting for the server's next chunk.

        Closing a `requests` streaming response from another thread waits for the reader
        thread's current read (the buffered reader's lock), which lasts until the server writes
        again: up to a heartbeat. Shutting the socket down first ends that read now.
        """
        self._listener.stopped.set()
        connection = getattr(self._handle, "connection", None)
        with contextlib.suppress(AttributeError, OSError):
            connection.raw.connection.sock.shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]
        # Should the socket be out of reach (another urllib3), the close still never holds us up.
        threading.Thread(target=self._finish, name="mastodon-stream-close", daemon=True).start()

    def _finish(self) -> None:
        self._handle.close()
        self._handle.join(timeout=READ_TIMEOUT)
        self._api.session.close()  # the instance requests' kept-alive connections


def streaming_url(api: Any) -> str | None:
    """The instance's streaming address, when it offers streaming (v2 `configuration.urls.streaming`)."""
    document = api.instance_v2()
    urls = (document.get("configuration") or {}).get("urls") or {}
    url = urls.get("streaming")
    return str(url) if url else None


def trusted_streaming_base(api_base_url: str, named: str) -> str | None:
    """Where Mastodon.py may stream from, as an http(s) base, or None when the instance names a
    host our token must not go to: only the configured host itself, or a subdomain of it over
    TLS (`wss://streaming.mastodon.social` for `https://mastodon.social`); never plain `ws://`
    when the configured address is https."""
    base, target = urlsplit(api_base_url), urlsplit(named)
    scheme = {"wss": "https", "ws": "http"}.get(target.scheme, target.scheme)
    host, own = (target.hostname or "").lower(), (base.hostname or "").lower()
    if scheme not in ("http", "https") or not host or not own:
        return None
    if base.scheme == "https" and scheme != "https":
        return None
    if host == own or (scheme == "https" and host.endswith("." + own)):
        return f"{scheme}://{target.netloc}"
    return None


def _public_stream(api: Any, base: str, tag: str, timeout: float) -> bool:
    """Whether the server streams the tag without a token (then none is sent at all)."""
    try:
        probe = api.session.get(
            f"{base}/api/v1/streaming/hashtag", params={"tag": tag}, stream=True, timeout=timeout
        )
    except OSError:
        return False
    with contextlib.closing(probe):
        return bool(probe.status_code == 200)


def open_hashtag_stream(
    *,
    access_token: str,
    api_base_url: str,
    tag: str,
    host: str,
    to_text: Callable[[str], str],
    deliver: Callable[[Mention], None],
    call: Callable[[Callable[[], Any]], Any],
    timeout: float,
) -> HashtagStream | None:
    """Open the tag's stream on the instance, or None when the instance offers none.

    A Mastodon object of its own (its own HTTP session): the long-held connection and its
    reconnects never share a connection pool or the rate-limit headers with the polls.
    `call` translates Mastodon.py's errors (`bot.errors.PlatformError`).
    """
    api = Mastodon(
        access_token=None,  # given below only when the stream needs it, to a host checked first
        api_base_url=api_base_url,
        ratelimit_method="throw",
        request_timeout=timeout,
        mastodon_version="4.3.0",
        version_check_mode="created",
        user_agent="campaign-bot",
    )
    named = call(lambda: streaming_url(api))
    base = trusted_streaming_base(api_base_url, named) if named is not None else None
    if base is None:
        if named is not None:
            log.warning(
                "stream %s #%s: the instance names %s for streaming; not trusted with the token",
                host,
                tag.lstrip("#"),
                urlsplit(named).hostname,
            )
        api.session.close()
        return None
    # Mastodon.py would read the v1 document's `streaming_api` on its own and send the token
    # wherever it points; give it the checked base instead (its private cache of that lookup).
    api._Mastodon__streaming_base = base  # type: ignore[attr-defined]
    name = tag.lstrip("#")
    if not _public_stream(api, base, name, timeout):
        api.access_token = access_token
    listener = _Listener(
        f"{host} #{name}", deliver, lambda status: to_mention(status, host, to_text, mentions_us=False)
    )
    handle = call(
        lambda: api.stream_hashtag(
            name,
            listener,
            run_async=True,
            reconnect_async=True,
            reconnect_async_wait_sec=RECONNECT_WAIT,
            timeout=READ_TIMEOUT,
        )
    )
    return HashtagStream(api, handle, listener)
