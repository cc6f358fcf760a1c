"""One emulator running on a test's clock, and the adapter clients a test opens on it.

Shared by the adapter tests (the real SDKs against the sandbox) and the monitoring tests. What
the emulator holds is read and steered over real HTTP (`/_sandbox/state`, `faults`, `audience`,
`settings`), as docs/design.md (sandbox control API) draws it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import requests

from bot.campaign.model import Account, Platform
from bot.platforms import Batch, Mention, PlatformClient, open_client
from bot.sandbox.bluesky import BlueskyEmulator
from bot.sandbox.graph.facebook import FacebookEmulator
from bot.sandbox.mastodon import MastodonEmulator
from bot.sandbox.server import Emulator, SandboxServer
from bot.sandbox.x import XEmulator
from tests.clock import Clock

EMULATORS: dict[Platform, Callable[..., Emulator]] = {
    "x": XEmulator,
    "bluesky": BlueskyEmulator,
    "mastodon": MastodonEmulator,
    "facebook": FacebookEmulator,
}
MAX_PAGES = 100  # far more than any test posts: a sweep that never ends fails instead of hanging

E = TypeVar("E", bound="Emulated")


def start_emulator(platform: Platform, clock: Clock, limits: str = "none") -> SandboxServer:
    """The platform's emulator with two accounts, serving on a free local port."""
    return SandboxServer(EMULATORS[platform](accounts=2, limits=limits, clock=clock)).start()


@dataclass
class Emulated:
    platform: Platform
    server: SandboxServer
    clock: Clock
    opened: list[PlatformClient] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.base_url

    def account(self, index: int = 0, **changes: str) -> Account:
        """The emulator's `index`-th account, its credentials changed as given (e.g. a wrong key)."""
        creds = dict(self.server.emulator.credentials()[index])
        name = creds.pop("name")
        return Account(self.platform, name, self.url, credentials=creds | changes)

    def open(self, account: Account, **options: Any) -> PlatformClient:
        """An adapter on this emulator and clock; closed with the emulator."""
        options.setdefault("now", self.clock)
        options.setdefault("timeout", 5)
        client = open_client(account, **options)
        self.opened.append(client)
        return client

    @property
    def control_headers(self) -> dict[str, str]:
        """The server's control token (`X-Sandbox-Token`), when it has one."""
        token = self.server.control_token
        return {"X-Sandbox-Token": token} if token else {}

    def state(self) -> dict[str, Any]:
        url = f"{self.url}/_sandbox/state"
        state: dict[str, Any] = requests.get(url, headers=self.control_headers, timeout=5).json()
        return state

    def control(self, route: str, **body: Any) -> Any:
        answer = requests.post(
            f"{self.url}/_sandbox/{route}", json=body, headers=self.control_headers, timeout=30
        )
        assert answer.status_code == 200, answer.text
        return answer.json()

    def fault(self, **fault: Any) -> None:
        self.control("faults", **fault)

    def audience(
        self,
        kind: str,
        text: str = "",
        author: str = "alice",
        to: str | None = None,
        count: int = 1,
        **options: Any,
    ) -> list[dict[str, Any]]:
        """Other people post (`POST audience`); their posts as the emulator stored them."""
        answer = self.control("audience", kind=kind, author=author, text=text, to=to, count=count, **options)
        posts: list[dict[str, Any]] = answer["posts"]
        return posts

    def close(self) -> None:
        for client in self.opened:
            client.close()
        self.opened.clear()


@contextmanager
def emulated(kind: type[E], platform: Platform, clock: Clock | None = None) -> Iterator[E]:
    """A running emulator as `kind` (a subclass that adds the test's own helpers), stopped after."""
    clock = clock or Clock()
    server = start_emulator(platform, clock)
    running = kind(platform, server, clock)
    try:
        yield running
    finally:
        running.close()
        server.stop()


def read_all(read: Callable[[str | None], Batch], cursor: str | None = None) -> list[Batch]:
    """Every page of one monitoring read from `cursor`, as the monitor reads a long gap."""
    batches = [read(cursor)]
    while batches[-1].more:
        assert len(batches) < MAX_PAGES, "the sweep never reached its mark"
        batches.append(read(batches[-1].cursor))
    return batches


def posts_of(batches: list[Batch]) -> list[Mention]:
    """The posts of every page, oldest first (ids of one platform sort as (length, text))."""
    posts = [p for b in batches for p in b.posts]
    return sorted(posts, key=lambda p: (p.created_at, len(p.id), p.id))
