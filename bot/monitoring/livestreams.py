"""Mastodon hashtag streams held open beside the polls (docs/design.md, monitoring).

Where an instance offers streaming, the worker that holds a `mastodon:hashtags:<host>:<tag>`
stream's lease also holds that tag's live stream open, so a post reaches the log within a
second instead of a poll interval. The poll goes on, slower (`SLOWDOWN`), as the fallback and
to fill gaps: it reads from its cursor, so whatever the live stream missed (posted while it was
reconnecting, or before it first connected) is read by the next poll, which comes at once after
every (re)connection. When the live stream is down or not offered, the poll keeps its normal
pace. A post both streamed and polled is reported once: the ledger decides what is new.

The streams themselves are the adapter's (`MastodonClient.open_hashtag_stream`, Mastodon.py's
own reconnecting thread); this module decides when to open and close them and what they mean
for the poll's pace. Thread-safe.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from bot.errors import PlatformError
from bot.monitoring.streams import Stream, StreamState
from bot.platforms import Mention, PlatformClient

log = logging.getLogger("bot.monitor")

# While the live stream is receiving, the tag's poll comes this many times less often: it is a
# safety net then (a stream can lose events silently), not the way posts arrive.
SLOWDOWN = 5
RETRY_FAILED = timedelta(minutes=5)  # after the instance answered the opening with an error
RETRY_UNOFFERED = timedelta(hours=1)  # after the instance said it offers no streaming


class LiveFeed(Protocol):
    """One open live stream (`bot.platforms.mastodon_stream.HashtagStream`)."""

    def is_receiving(self) -> bool: ...

    def is_alive(self) -> bool:
        """False once it has ended for good (closed, or its reading thread died)."""
        ...

    def connections(self) -> int:
        """How many times it has connected: one more after each reconnect."""
        ...

    def close(self) -> None:
        """Stop now (never waits on the network); nothing is delivered after it returns."""
        ...


Deliver = Callable[[Stream, Mention], None]


def streams_live(stream: Stream) -> bool:
    """Only Mastodon's tag timelines have a live stream (X and Bluesky offer none to us)."""
    return stream.platform == "mastodon" and stream.kind == "hashtags"


def poll_due_at(
    state: StreamState, interval: timedelta, live: LiveFeed | None, covered: int
) -> datetime | None:
    """When the stream's next poll is due (None: now), given its live stream. Pure.

    `covered`: the live stream's connection count when the last poll began; a higher count
    means it has (re)connected since, and what came while it was down is not read yet.
    """
    if live is None or not live.is_receiving():
        return state.next_at  # no live stream, or it dropped: the normal pace
    if state.failures:
        return state.next_at  # the poll is backing off: the live stream changes nothing
    if live.connections() > covered or state.next_at is None:
        return None  # (re)connected since the last poll: fill the gap now
    return state.next_at + interval * (SLOWDOWN - 1)


@dataclass
class _Held:
    stream: Stream
    feed: LiveFeed
    covered: int = 0


class LiveStreams:
    """The live streams this worker holds, by stream key."""

    def __init__(self, deliver: Deliver) -> None:
        self._deliver = deliver
        self._lock = threading.Lock()
        self._held: dict[str, _Held] = {}
        self._retry_at: dict[str, datetime] = {}
        self._closed = False

    def keep_open(self, stream: Stream, client: PlatformClient, now: datetime) -> None:
        """Open the stream's live stream unless it is open, or waiting to try again."""
        with self._lock:
            held = self._held.get(stream.key)
            if held is not None and not held.feed.is_alive():
                # Mastodon.py's thread ends for good on an error it does not expect: open anew.
                log.warning("monitor %s: the live stream ended; polling, and opening it again", stream.key)
                del self._held[stream.key]
                self._retry_at[stream.key] = now + RETRY_FAILED
                held.feed.close()  # never waits: safe under the lock
                held = None
            if self._closed or held is not None:
                return
            if stream.key in self._retry_at and now < self._retry_at[stream.key]:
                return
        opener = getattr(client, "open_hashtag_stream", None)  # not in the Protocol: Mastodon only
        if opener is None:
            return
        (tag,) = stream.tags
        try:
            feed: LiveFeed | None = opener(tag, lambda post: self._deliver(stream, post))
        except PlatformError as exc:
            log.warning("monitor %s: no live stream (%s); polling", stream.key, exc)
            with self._lock:
                self._retry_at[stream.key] = now + RETRY_FAILED
            return
        if feed is None:
            log.info("monitor %s: the instance offers no streaming; polling", stream.key)
            with self._lock:
                self._retry_at[stream.key] = now + RETRY_UNOFFERED
            return
        with self._lock:
            if self._closed or stream.key in self._held:  # closed (or opened) meanwhile
                feed.close()
                return
            self._held[stream.key] = _Held(stream, feed)
            self._retry_at.pop(stream.key, None)
        log.info(
            "monitor %s: live stream opened; polling every %s as the fallback",
            stream.key,
            stream.interval * SLOWDOWN,
        )

    def receiving(self) -> list[str]:
        """The keys of the streams whose live stream is connected now."""
        with self._lock:
            held = list(self._held.items())
        return sorted(key for key, h in held if h.feed.is_receiving())

    def poll_due_at(self, stream: Stream, state: StreamState) -> datetime | None:
        """When `stream` should poll next (None: now), given its live stream if any."""
        with self._lock:
            held = self._held.get(stream.key)
        if held is None:
            return state.next_at
        return poll_due_at(state, stream.interval, held.feed, held.covered)

    def polling(self, stream: Stream) -> None:
        """A poll of `stream` begins: it covers every connection the live stream made so far."""
        with self._lock:
            held = self._held.get(stream.key)
            if held is not None:
                held.covered = held.feed.connections()

    def drop(self, key: str) -> None:
        """Close one live stream (its lease went to another worker, or it is no longer wanted)."""
        with self._lock:
            held = self._held.pop(key, None)
        if held is not None:
            held.feed.close()
            log.info("monitor %s: live stream closed", key)

    def drop_all(self) -> None:
        """Close every live stream; the next passes open them again (a reloaded config)."""
        with self._lock:
            keys = list(self._held)
            self._retry_at.clear()
        for key in keys:
            self.drop(key)

    def close(self) -> None:
        """Close every live stream for good (the worker stops). Never waits on the network."""
        with self._lock:
            self._closed = True
        self.drop_all()
