"""Local emulators of X, Bluesky, Mastodon, Facebook and Instagram: real HTTP on 127.0.0.1, state in memory.

Staff rehearse a campaign against them (`python -m bot sandbox`, `run --sandbox`), and every
test of the bot drives them with the real client libraries.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.sandbox.imagehost import ImageHost
from bot.sandbox.server import Clock, Emulator, SandboxServer, utc_now

# The fixed ports of `run --sandbox` (X, Bluesky, Mastodon, Facebook, Instagram): fixed so a saved Bluesky
# session, which remembers its PDS URL, still points at the emulator after a restart.
SANDBOX_PORT = 8801
SANDBOX_PORTS = 5  # one per emulator (build_emulators): N to N+4


def new_control_token() -> str:
    """A fresh token for one run of the sandbox (printed in its JSON line, never stored)."""
    return secrets.token_urlsafe(24)


@dataclass
class Sandbox:
    servers: dict[str, SandboxServer]
    images: ImageHost | None = None  # the content folder's images, for Instagram to fetch

    def describe(self) -> dict[str, Any]:
        return {name: server.emulator.describe() for name, server in self.servers.items()}

    def serve_images(self, content_dir: Path) -> str:
        """Serve `content_dir` on a free local port (once); its base URL, a `media_base_url`."""
        if self.images is None:
            self.images = ImageHost(content_dir).start()
        return self.images.base_url

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()
        if self.images is not None:
            self.images.stop()


def build_emulators(accounts: int = 2, limits: str = "none", clock: Clock = utc_now) -> dict[str, Emulator]:
    from bot.sandbox.bluesky import BlueskyEmulator
    from bot.sandbox.graph.facebook import FacebookEmulator
    from bot.sandbox.graph.instagram import InstagramEmulator
    from bot.sandbox.mastodon import MastodonEmulator
    from bot.sandbox.x import XEmulator

    facebook = FacebookEmulator(accounts=accounts, limits=limits, clock=clock)
    return {
        "x": XEmulator(accounts=accounts, limits=limits, clock=clock),
        "bluesky": BlueskyEmulator(accounts=accounts, limits=limits, clock=clock),
        "mastodon": MastodonEmulator(accounts=accounts, limits=limits, clock=clock),
        "facebook": facebook,
        "instagram": InstagramEmulator(pages=facebook, accounts=accounts, limits=limits, clock=clock),
    }


def start_sandbox(
    port: int | None = None,
    accounts: int = 2,
    limits: str = "none",
    clock: Clock = utc_now,
    control_token: str | None = None,
) -> Sandbox:
    """Start the emulators: on ports N, N+1, ... N+4, or on free ports when `port` is None.

    `control_token`: required in `X-Sandbox-Token` by every `/_sandbox/` route (see
    `new_control_token`); the commands always set one, a test may leave it out.
    """
    emulators = build_emulators(accounts, limits, clock)
    servers: dict[str, SandboxServer] = {}
    try:
        for offset, (name, emulator) in enumerate(emulators.items()):
            at = 0 if port is None else port + offset
            servers[name] = SandboxServer(emulator, at, control_token).start()
    except OSError:
        for server in servers.values():
            server.stop()
        raise
    return Sandbox(servers)
