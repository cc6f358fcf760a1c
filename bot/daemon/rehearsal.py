"""`run --sandbox`: the daemon against the in-process emulators, for a newcomer to watch.

The emulators listen on the fixed ports of `bot.sandbox.SANDBOX_PORT`; every account of the
config is pointed at them with the sandbox's credentials (the real ones are never needed nor
read), the database is a sandbox file emptied at each start, a demo queue fires every few
seconds besides the shipped content, and the emulated audience replies to our posts now and then.
"""

from __future__ import annotations

import fcntl
import logging
import os
import random
import threading
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

from bot.campaign.model import (
    AccountLimits,
    Config,
    Image,
    Part,
    Platform,
    PlatformOptions,
    Post,
    Queue,
    Schedule,
)
from bot.daemon.audience import play_scene
from bot.ledger.database import make_private_folders
from bot.sandbox import SANDBOX_PORT, Sandbox, new_control_token, start_sandbox

log = logging.getLogger("bot.sandbox")

DEMO_EVERY = timedelta(seconds=10)
AUDIENCE_EVERY = 12.0  # seconds between two audience scenes
DEMO_CARD = Image(
    "images/no-tech-for-ice-banner.jpg",
    "Banner with the words NO TECH FOR ICE in large white block letters on a dark blue background.",
)

_DEMO_TEXTS = [
    "Tech workers: your code should not power deportations. Ask your employer about its ICE contracts.",
    "Cloud, data and surveillance tools keep ICE running. Companies can choose not to sell them.",
    "Hundreds of employees have asked their companies to drop ICE contracts. Add your voice.",
    "Call your representative today and ask them to oppose surveillance tech for ICE.",
    "Share this with a friend in tech: organizing works, and it starts with a conversation.",
    "Data brokers sell our location to ICE. Demand that lawmakers close the loophole.",
]


def sandbox_database(config: Config, *, empty: bool = True) -> str:
    """The sandbox's own SQLite file beside the config, emptied now (`empty=False`: to read a
    rehearsal)."""
    path = _sandbox_file(config)
    if not empty:
        return f"sqlite:///{path}"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    (path.parent / "sandbox-mentions.jsonl").unlink(missing_ok=True)
    return f"sqlite:///{path}"


def hold_rehearsal(config: Config) -> int | None:
    """Lock the rehearsal's files for this process (released when it exits); None if another
    `run --sandbox` beside this config holds them, since starting would empty its database."""
    path = _sandbox_file(config)
    make_private_folders(path.parent)
    lock = os.open(path.with_name("sandbox.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock)
        return None
    return lock


def _sandbox_file(config: Config) -> Path:
    return config.path.parent / "state" / "sandbox.sqlite3"


def sandbox_view(config: Config) -> Config | None:
    """The config as the last `run --sandbox` ran it, for `status`, `mentions` and `preview
    --sandbox` to read its database (never emptied here); None if it never ran."""
    path = _sandbox_file(config)
    if not path.is_file():
        return None
    platforms = {
        name: replace(
            platform,
            accounts=tuple(replace(a, missing=(), limits=AccountLimits()) for a in platform.accounts),
        )
        for name, platform in config.platforms.items()
    }
    mentions = path.parent / "sandbox-mentions.jsonl"
    return replace(
        config,
        platforms=platforms,
        database_url=f"sqlite:///{path}",
        alerts_webhook=None,
        logging=replace(config.logging, mentions_log=mentions),
    )


def point_at_sandbox(config: Config, sandbox: Sandbox, database_url: str) -> Config:
    """The config with every account on the emulators, with the sandbox's credentials."""
    described = sandbox.describe()
    platforms = {}
    for name, platform in config.platforms.items():
        creds = described[name]
        # No account limits: the demo queue fires every few seconds on purpose.
        extra = {"media_base_url": sandbox.serve_images(config.content_dir)} if name == "instagram" else {}
        accounts = tuple(
            replace(
                account,
                base_url=creds["base_url"],
                credentials={k: v for k, v in cred.items() if k != "name"} | extra,
                missing=(),
                limits=AccountLimits(),
            )
            for account, cred in zip(platform.accounts, creds["accounts"], strict=False)
        )
        # The emulators enforce no rate limits (`--limits none`): no tier budget to pace X by.
        tier = "pro" if name == "x" else platform.tier
        platforms[name] = replace(platform, accounts=accounts, tier=tier)
    # Replies should show up while a newcomer watches, not five minutes later.
    monitor = replace(config.monitor, hashtags_every=DEMO_EVERY, replies_every=DEMO_EVERY)
    # Rehearsal replies stay out of the campaign's own mentions log.
    mentions = config.path.parent / "state" / "sandbox-mentions.jsonl"
    return replace(
        config,
        platforms=platforms,
        database_url=database_url,
        alerts_webhook=None,
        monitor=monitor,
        logging=replace(config.logging, mentions_log=mentions),
    )


def demo_queue(config: Config, now: datetime) -> Queue:
    """A queue firing every few seconds, on every enabled platform, repeating its posts.

    Instagram takes no text-only posts: its card is the campaign's banner when content/ has it
    as a JPEG, else the demo leaves Instagram out."""
    platforms = config.enabled_platforms()
    defaults: dict[Platform, PlatformOptions] = {}
    if (config.content_dir / DEMO_CARD.path).is_file():
        defaults["instagram"] = PlatformOptions(image=DEMO_CARD)
    else:
        platforms = tuple(p for p in platforms if p != "instagram")
    posts = tuple(
        Post(id=f"demo-{n + 1}", parts=_demo_parts(n, text), line=0) for n, text in enumerate(_DEMO_TEXTS * 5)
    )
    return Queue(
        name="sandbox-demo",
        file=config.content_dir / "sandbox-demo.yaml",
        schedule=Schedule(kind="every", timezone="UTC", every=DEMO_EVERY),
        posts=posts,
        platforms=platforms,
        defaults=defaults,
        hashtags=config.hashtags[:1],
        start=now.replace(microsecond=0),
        when_exhausted="repeat",
    )


def _demo_parts(n: int, text: str) -> tuple[Part, ...]:
    first = Part(f"{text} (sandbox demo {n + 1})")
    if n % 3:
        return (first,)
    # Every third a thread: the audience then has a reply of ours to answer (bot/daemon/audience.py).
    return first, Part(f"More on this in the campaign's guide. (sandbox demo {n + 1}, part 2)")


def start_emulators(accounts: int, port: int = SANDBOX_PORT) -> Sandbox:
    return start_sandbox(port, accounts=max(2, accounts), control_token=new_control_token())


def run_audience(sandbox: Sandbox, stop: threading.Event, every: float = AUDIENCE_EVERY) -> threading.Thread:
    """Every few seconds the next audience scene (bot/daemon/audience.py) on a random platform."""
    rng = random.Random()
    servers = {name: (server.base_url, server.control_token) for name, server in sandbox.servers.items()}

    def loop() -> None:
        number = 0
        while not stop.wait(every):
            try:
                play_scene(number, servers, rng)
            except Exception as exc:  # a demo nicety: never let it take the daemon down
                log.debug("audience scene skipped: %s", exc)
            number += 1

    thread = threading.Thread(target=loop, name="sandbox-audience", daemon=True)
    thread.start()
    return thread
