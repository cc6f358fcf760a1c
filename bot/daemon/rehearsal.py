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
from bot.sandbox import SANDBOX_PORT, Sandbox, new_control_token, start_sandbox

log = logging.getLogger("bot.sandbox")

DEMO_EVERY = timedelta(seconds=10)
AUDIENCE_EVERY = 20.0  # seconds between two audience replies

_DEMO_TEXTS = [
    "Tech workers: your code should not power deportations. Ask your employer about its ICE contracts.",
    "Cloud, data and surveillance tools keep ICE running. Companies can choose not to sell them.",
    "Hundreds of employees have asked their companies to drop ICE contracts. Add your voice.",
    "Call your representative today and ask them to oppose surveillance tech for ICE.",
    "Share this with a friend in tech: organizing works, and it starts with a conversation.",
    "Data brokers sell our location to ICE. Demand that lawmakers close the loophole.",
]


def sandbox_database(config: Config) -> str:
    """The sandbox's own SQLite file beside the config, emptied now."""
    path = _sandbox_file(config)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    (path.parent / "sandbox-mentions.jsonl").unlink(missing_ok=True)
    return f"sqlite:///{path}"


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


def start_emulators(accounts: int, port: int = SANDBOX_PORT) -> Sandbox:
    return start_sandbox(port, accounts=max(2, accounts), control_token=new_control_token())


def _request(url: str, token: str | None, payload: dict[str, Any] | None = None) -> Any:
    data = json.dumps(payload).encode() if payload is not None else None
    headers = {"Content-Type": "application/json", **({"X-Sandbox-Token": token} if token else {})}
    request = urllib.request.Request(url, data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read() or b"null")


def run_audience(
    sandbox: Sandbox, stop: threading.Event, every: float = AUDIENCE_EVERY, hashtag: str = "#NoTechForICE"
) -> threading.Thread:
    """Now and then someone replies to one of our latest posts, or posts with the campaign's
    hashtag (so hashtag tracking shows too), on a random platform."""
    rng = random.Random()
    voices = [("alice", "Signed and shared!"), ("bob", "Which companies? Names please."), ("carol", "On it.")]
    tagged = [("dana", f"Called my rep today. {hashtag}"), ("eli", f"Our union signed on. {hashtag}")]

    def loop() -> None:
        while not stop.wait(every):
            name = rng.choice(sorted(sandbox.servers))
            base, token = sandbox.servers[name].base_url, sandbox.servers[name].control_token
            try:
                if rng.random() < 0.3:
                    author, text = rng.choice(tagged)
                    payload = {"kind": "hashtag", "author": author, "text": text}
                    _request(f"{base}/_sandbox/audience", token, payload)
                    continue
                posts = _request(f"{base}/_sandbox/state", token)["posts"]
                ours = [p for p in posts if not p.get("deleted") and p.get("in_reply_to") is None]
                ours = [p for p in ours if p["author"] not in {v for v, _ in (*voices, *tagged)}]
                if not ours:
                    continue
                author, text = rng.choice(voices)
                _request(
                    f"{base}/_sandbox/audience",
                    token,
                    {"kind": "reply", "author": author, "text": text, "to": ours[-1]["id"]},
                )
            except Exception as exc:  # a demo nicety: never let it take the daemon down
                log.debug("audience skipped: %s", exc)

    thread = threading.Thread(target=loop, name="sandbox-audience", daemon=True)
    thread.start()
    return thread
