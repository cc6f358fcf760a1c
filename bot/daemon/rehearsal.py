"""`run --sandbox`: the daemon against the in-process emulators, for a newcomer to watch.

The emulators listen on the fixed ports of `bot.sandbox.SANDBOX_PORT`; every account of the
config is pointed at them with the sandbox's credentials (the real ones are never needed nor
read), the database is a sandbox file emptied at each start, a demo queue fires every few
seconds besides the shipped content, and the emulated audience replies to our posts now and then.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import urllib.request
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bot.campaign.model import AccountLimits, Config, Part, Post, Queue, Schedule
from bot.sandbox import SANDBOX_PORT, Sandbox, start_sandbox

log = logging.getLogger("bot.sandbox")

DEMO_EVERY = timedelta(seconds=10)
AUDIENCE_EVERY = 10.0  # seconds between two audience replies (each with a hashtag post)

_DEMO_TEXTS = [
    "Tech workers: your code should not power deportations. Ask your employer about its ICE contracts.",
    "Cloud, data and surveillance tools keep ICE running. Companies can choose not to sell them.",
    "Hundreds of employees have asked their companies to drop ICE contracts. Add your voice.",
    "Call your representative today and ask them to oppose surveillance tech for ICE.",
    "Share this with a friend in tech: organizing works, and it starts with a conversation.",
    "Data brokers sell our location to ICE. Demand that lawmakers close the loophole.",
]
_HASHTAG_VOICES = [
    ("dana", "Our union just voted to back #NoTechForICE."),
    ("erin", "Read the contracts, then sign. #NoTechForICE"),
    ("dana", "Day three of the walkout. #NoTechForICE"),
    ("frank", "Tech workers, this is your moment #NoTechForICE"),
]


def sandbox_database(config: Config, *, empty: bool = True) -> str:
    """The sandbox's own SQLite file beside the config, emptied now (`empty=False`: to read a rehearsal)."""
    path = config.path.parent / "state" / "sandbox.sqlite3"
    if not empty:
        return f"sqlite:///{path}"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    (path.parent / "sandbox-mentions.jsonl").unlink(missing_ok=True)
    return f"sqlite:///{path}"


def point_at_sandbox(config: Config, sandbox: Sandbox, database_url: str) -> Config:
    """The config with every account on the emulators, with the sandbox's credentials."""
    described = sandbox.describe()
    platforms = {}
    for name, platform in config.platforms.items():
        creds = described[name]
        # No account limits: the demo queue fires every few seconds on purpose.
        accounts = tuple(
            replace(
                account,
                base_url=creds["base_url"],
                credentials={k: v for k, v in cred.items() if k != "name"},
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
    """A queue firing every few seconds, on every enabled platform, repeating its posts."""
    posts = tuple(
        Post(id=f"demo-{n + 1}", parts=(Part(f"{text} (sandbox demo {n + 1})"),), line=0)
        for n, text in enumerate(_DEMO_TEXTS * 5)
    )
    return Queue(
        name="sandbox-demo",
        file=config.content_dir / "sandbox-demo.yaml",
        schedule=Schedule(kind="every", timezone="UTC", every=DEMO_EVERY),
        posts=posts,
        platforms=config.enabled_platforms(),
        hashtags=config.hashtags[:1],
        start=now.replace(microsecond=0),
        when_exhausted="repeat",
    )


def start_emulators(accounts: int) -> Sandbox:
    return start_sandbox(SANDBOX_PORT, accounts=max(2, accounts))


def _request(url: str, payload: dict[str, Any] | None = None) -> Any:
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read() or b"null")


def run_audience(sandbox: Sandbox, stop: threading.Event, every: float = AUDIENCE_EVERY) -> threading.Thread:
    """Now and then someone replies to one of our latest posts, on a random platform."""
    rng = random.Random()
    voices = [("alice", "Signed and shared!"), ("bob", "Which companies? Names please."), ("carol", "On it.")]

    def loop() -> None:
        while not stop.wait(every):
            name = rng.choice(sorted(sandbox.servers))
            base = sandbox.servers[name].base_url
            try:
                state = _request(f"{base}/_sandbox/state")
                mine = set(state["accounts"].values())
                ours = [
                    p
                    for p in state["posts"]
                    if p["author"] in mine and not p.get("deleted") and p.get("in_reply_to") is None
                ]
                if not ours:
                    continue
                author, text = rng.choice(voices)
                _request(
                    f"{base}/_sandbox/audience",
                    {"kind": "reply", "author": author, "text": text, "to": ours[-1]["id"]},
                )
                # And a stranger picks up the hashtag on another network (`report`'s voices).
                author, text = rng.choice(_HASHTAG_VOICES)
                other = sandbox.servers[rng.choice(sorted(sandbox.servers))].base_url
                _request(f"{other}/_sandbox/audience", {"kind": "hashtag", "author": author, "text": text})
            except Exception as exc:  # a demo nicety: never let it take the daemon down
                log.debug("audience skipped: %s", exc)

    thread = threading.Thread(target=loop, name="sandbox-audience", daemon=True)
    thread.start()
    return thread
