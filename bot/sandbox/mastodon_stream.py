"""The hashtag streams: server-sent events as Mastodon's streaming server writes them.

Real framing (tests/data/mastodon/test_stream_user_local.yaml): `:)` first, then
`event: update` / `data: {status}` frames separated by a blank line, and `:thump` comment
lines as heartbeats. A stream waits on a condition for new events and checks every 0.2 s
whether the server is stopping (or the streaming server was switched off), so an open stream
never holds a shutdown up.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from bot.sandbox.mastodon_entities import Status
from bot.sandbox.mastodon_reads import in_hashtag_feed


class HashtagStreams:
    def __init__(self) -> None:
        self._condition = threading.Condition()
        # Events in order; `_dropped` counts those a reset forgot, so open streams keep their place.
        self._log: list[tuple[str, Status, dict[str, Any] | str]] = []
        self._dropped = 0
        self._closed = threading.Event()
        self._generation = 0  # one more each time the open streams are ended

    def publish(self, kind: str, status: Status, payload: dict[str, Any] | str) -> None:
        """`update` with the status as streamed, or `delete` with its id."""
        with self._condition:
            self._log.append((kind, status, payload))
            self._condition.notify_all()

    def forget(self) -> None:
        with self._condition:
            self._dropped += len(self._log)
            self._log.clear()

    def end_open(self) -> None:
        """End the streams open now (the streaming server went away); later ones run as usual."""
        with self._condition:
            self._generation += 1
            self._condition.notify_all()

    def close(self) -> None:
        self._closed.set()
        with self._condition:
            self._condition.notify_all()

    def events(self, tag: str, *, local: bool, heartbeat: Callable[[], float]) -> Iterator[bytes]:
        """The byte chunks of one hashtag stream, from now until the server stops."""
        yield b":)\n"
        with self._condition:
            position = self._dropped + len(self._log)
            generation = self._generation
        last_beat = time.monotonic()
        while not self._closed.is_set() and generation == self._generation:
            with self._condition:
                if self._dropped + len(self._log) <= position:
                    self._condition.wait(0.2)
                fresh = self._log[max(0, position - self._dropped) :]
                position = self._dropped + len(self._log)
            for kind, status, payload in fresh:
                if in_hashtag_feed(status, tag, local=local):
                    data = (
                        payload
                        if isinstance(payload, str)
                        else json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
                    )
                    yield f"event: {kind}\ndata: {data}\n\n".encode()
            if time.monotonic() - last_beat >= heartbeat():
                last_beat = time.monotonic()
                yield b":thump\n"
