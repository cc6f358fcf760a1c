"""A fake platform account for delivery tests: it keeps what was posted and fails on cue.

It follows the PlatformClient protocol the way the real adapters do: `find_published` matches
the nonce (Bluesky's rkey) or the exact text posted after `since` (X, Mastodon). A scripted
failure can be applied after the write, as a dropped answer or a 5xx after the write would be.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from bot.errors import PlatformError
from bot.platforms import Outgoing, Published
from tests.clock import Clock


@dataclass
class Copy:
    published: Published
    message: Outgoing
    created_at: datetime
    deleted: bool = False


@dataclass
class Step:
    """What the next publish call does: raise `error`, after applying the write when `applied`."""

    error: PlatformError
    applied: bool = False


@dataclass
class FakeClient:
    platform: str
    account: str
    clock: Callable[[], datetime]
    match_by_nonce: bool = False
    copies: list[Copy] = field(default_factory=list)
    script: list[Step] = field(default_factory=list)
    publish_calls: int = 0
    lookups: int = 0
    lookup_errors: list[PlatformError] = field(default_factory=list)  # raised by the next lookups
    before_publish: Callable[[Outgoing], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def verify(self) -> str:
        return self.account

    def publish(self, message: Outgoing) -> Published:
        if self.before_publish is not None:
            self.before_publish(message)
        with self.lock:
            self.publish_calls += 1
            step = self.script.pop(0) if self.script else None
            if step is not None and not step.applied:
                raise step.error
            n = len(self.copies) + 1
            published = Published(
                f"{self.platform}-{self.account}-{n}",
                f"https://{self.platform}.test/{self.account}/{n}",
                f"cid{n}",
            )
            self.copies.append(Copy(published, message, self.clock()))
            if step is not None:
                raise step.error
            return published

    def find_published(self, message: Outgoing, since: datetime) -> Published | None:
        with self.lock:
            self.lookups += 1
            if self.lookup_errors:
                raise self.lookup_errors.pop(0)
            for copy in self.copies:
                if copy.deleted:
                    continue
                if self.match_by_nonce and copy.message.nonce == message.nonce:
                    return copy.published
                if not self.match_by_nonce and copy.message.text == message.text and copy.created_at >= since:
                    return copy.published
            return None

    def delete(self, published: Published) -> None:
        with self.lock:
            for copy in self.copies:
                if copy.published.id == published.id:
                    copy.deleted = True

    def repost(self, post_id: str) -> Published:
        raise NotImplementedError

    def live_texts(self) -> list[str]:
        return [c.message.text for c in self.copies if not c.deleted]


@dataclass
class FakeGate:
    """Records every wait instead of waiting; `halt_after` waits, it reports a pause."""

    clock: Clock | None = None
    waits: list[float] = field(default_factory=list)
    paused: bool = False
    halt_after: int | None = None

    def halted(self) -> str | None:
        return "paused" if self.paused else None

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        if self.clock is not None:
            self.clock.advance(seconds)
        if self.halt_after is not None and len(self.waits) >= self.halt_after:
            self.paused = True
        return not self.paused
