"""A campaign of several accounts per platform run by `python -m bot run` worker processes.

For the reliability suite: `Campaign` writes config.yaml and the content queues (every account
pointed at an in-process sandbox, credentials only in the environment), starts and kills worker
processes, injects faults at random through `/_sandbox/faults`, and compares what the emulators
hold with what the ledger says. Randomness comes from one seeded `random.Random`, so a failing
run can be replayed with its seed.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import requests
from sqlalchemy import select

from bot.ledger.deliveries import Delivery, open_ledger
from bot.ledger.schema import slots
from bot.sandbox import Sandbox
from bot.sandbox.imagehost import ImageHost
from tests.imagefiles import jpeg

REPO = Path(__file__).resolve().parent.parent
PLATFORMS = ("x", "bluesky", "mastodon", "facebook", "instagram")
JOINED = ("facebook", "instagram")  # a thread goes out as one post, its parts as paragraphs
# The request that writes a post on each platform: most faults go there, the others anywhere.
POST_PATHS = {
    "x": "/2/tweets",
    "bluesky": "/xrpc/com.atproto.repo.createRecord",
    "mastodon": "/api/v1/statuses",
    "facebook": "/*/feed",  # matched with or without the Graph version
    "instagram": "/*/media_publish",
}
ANY_PATH = {"x": "/2/*", "bluesky": "/xrpc/*", "mastodon": "/api/*", "facebook": "/v*", "instagram": "/v*"}
CARD = "card.jpg"  # Instagram's image for the text posts


@dataclass(frozen=True)
class Part:
    queue: str
    post_id: str
    part: int
    text: str


def _env_name(platform: str, account: str, field_name: str) -> str:
    return f"{platform}_{account}_{field_name}".upper()


@dataclass
class Campaign:
    root: Path
    sandbox: Sandbox
    database: str
    run_tag: str
    queues: dict[str, list[list[str]]] = field(default_factory=dict)  # queue -> posts -> parts
    every: dict[str, int] = field(default_factory=dict)  # queue -> seconds between its slots
    workers: list[subprocess.Popen[str]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        (self.root / "content").mkdir(parents=True, exist_ok=True)
        (self.root / "content" / CARD).write_bytes(jpeg(1080, 1080))
        self.images = ImageHost(self.root / "content").start()
        described = self.sandbox.describe()
        self.accounts = {p: [a["name"] for a in described[p]["accounts"]] for p in PLATFORMS}
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("X_", "BSKY_", "MASTODON_", "FB_", "IG_"))
        }
        for account in described["x"]["accounts"]:
            for name in ("consumer_key", "consumer_secret", "access_token", "access_token_secret"):
                env[_env_name("x", account["name"], name)] = account[name]
        for account in described["bluesky"]["accounts"]:
            env[_env_name("bsky", account["name"], "handle")] = account["handle"]
            env[_env_name("bsky", account["name"], "app_password")] = account["app_password"]
        for account in described["mastodon"]["accounts"]:
            env[_env_name("mastodon", account["name"], "token")] = account["access_token"]
        for account in described["facebook"]["accounts"]:
            env[_env_name("fb", account["name"], "page_id")] = account["page_id"]
            env[_env_name("fb", account["name"], "token")] = account["access_token"]
        for account in described["instagram"]["accounts"]:
            env[_env_name("ig", account["name"], "user_id")] = account["ig_user_id"]
            env[_env_name("ig", account["name"], "token")] = account["access_token"]
        env["DATABASE_URL"] = self.database
        self.env = env
        self._write_config(described)

    def _write_config(self, d: dict[str, Any]) -> None:
        def block(platform: str, lines: list[str]) -> str:
            return "\n".join(lines)

        x = [
            f"""      - name: {a}
        consumer_key: "${{{_env_name("x", a, "consumer_key")}}}"
        consumer_secret: "${{{_env_name("x", a, "consumer_secret")}}}"
        access_token: "${{{_env_name("x", a, "access_token")}}}"
        access_token_secret: "${{{_env_name("x", a, "access_token_secret")}}}\""""
            for a in self.accounts["x"]
        ]
        bsky = [
            f"""      - name: {a}
        service: {d["bluesky"]["base_url"]}
        handle: "${{{_env_name("bsky", a, "handle")}}}"
        app_password: "${{{_env_name("bsky", a, "app_password")}}}\""""
            for a in self.accounts["bluesky"]
        ]
        masto = [
            f"""      - name: {a}
        api_base_url: {d["mastodon"]["base_url"]}
        access_token: "${{{_env_name("mastodon", a, "token")}}}\""""
            for a in self.accounts["mastodon"]
        ]
        fb = [
            f"""      - name: {a}
        page_id: "${{{_env_name("fb", a, "page_id")}}}"
        access_token: "${{{_env_name("fb", a, "token")}}}\""""
            for a in self.accounts["facebook"]
        ]
        ig = [
            f"""      - name: {a}
        ig_user_id: "${{{_env_name("ig", a, "user_id")}}}"
        access_token: "${{{_env_name("ig", a, "token")}}}\""""
            for a in self.accounts["instagram"]
        ]
        head = textwrap.dedent(
            """\
            campaign: Reliability
            timezone: UTC
            hashtags: ["#NoTechForICE"]
            content: content/
            database: ${DATABASE_URL}
            schedule_grace: 1h
            logging: {level: INFO, format: text, mentions_log: "-"}
            """
        )
        body = (
            "platforms:\n"
            f"  x:\n    enabled: true\n    api_base_url: {d['x']['base_url']}\n    tier: pro\n"
            f"    accounts:\n{block('x', x)}\n"
            f"  bluesky:\n    enabled: true\n    accounts:\n{block('bluesky', bsky)}\n"
            f"  mastodon:\n    enabled: true\n    accounts:\n{block('mastodon', masto)}\n"
            f"  facebook:\n    enabled: true\n    api_base_url: {d['facebook']['base_url']}\n"
            f"    accounts:\n{block('facebook', fb)}\n"
            f"  instagram:\n    enabled: true\n    api_base_url: {d['instagram']['base_url']}\n"
            f"    media_base_url: {self.images.base_url}\n"
            f"    accounts:\n{block('instagram', ig)}\n"
        )
        (self.root / "config.yaml").write_text(head + body)

    def write_queue(self, name: str, every: int, posts: list[list[str]]) -> None:
        """A queue firing every `every` seconds, sending each post (a list of thread parts) once."""
        self.queues[name] = posts
        self.every[name] = every
        # Starting now: a queue firing every few seconds would otherwise have an hour of slots
        # behind it on the first tick, each recorded (and logged) as missed.
        start = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        lines = [f"schedule: {{every: {every}s}}", f'start: "{start}"', "when_exhausted: stop"]
        lines += [f'instagram: {{image: {{path: {CARD}, alt: "The campaign card"}}}}', "posts:"]
        for i, parts in enumerate(posts):
            if len(parts) == 1:
                lines.append(f"  - id: {name}-{i}\n    text: {json.dumps(parts[0])}")
            else:
                lines.append(f"  - id: {name}-{i}\n    thread:")
                lines.extend(f"      - {json.dumps(text)}" for text in parts)
        (self.root / "content" / f"{name}.yaml").write_text("\n".join(lines) + "\n")

    def parts(self) -> list[Part]:
        return [
            Part(queue, f"{queue}-{i}", n, text)
            for queue, posts in self.queues.items()
            for i, parts in enumerate(posts)
            for n, text in enumerate(parts)
        ]

    def expected(self) -> Counter[tuple[str, str, str]]:
        """(platform, account, text) of every delivery: each must exist exactly once."""
        return Counter(
            (platform, account, self.text_of(platform, part))
            for part in self.parts()
            for platform in PLATFORMS
            if part.part == 0 or platform not in JOINED
            for account in self.accounts[platform]
        )

    def text_of(self, platform: str, part: Part) -> str:
        """A part's text as posted: Facebook and Instagram post a thread as one post, its parts as
        paragraphs."""
        if platform not in JOINED:
            return part.text
        return "\n\n".join(self.queues[part.queue][int(part.post_id.rsplit("-", 1)[1])])

    # --- worker processes ------------------------------------------------------------------

    def start_worker(self) -> subprocess.Popen[str]:
        log = self.root / f"worker-{len(self.logs)}.log"
        self.logs.append(log)
        out: IO[str] = log.open("w")
        command = [sys.executable, "-m", "bot", "--config", str(self.root / "config.yaml"), "run"]
        proc = subprocess.Popen(
            command, cwd=REPO, env=self.env, stdout=out, stderr=subprocess.STDOUT, text=True
        )
        out.close()
        self.workers.append(proc)
        return proc

    def wait_started(self, proc: subprocess.Popen[str], timeout: float = 30.0) -> bool:
        """Until the worker has its signal handlers (a SIGTERM before then kills it outright)."""
        log = self.logs[self.workers.index(proc)]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            if "daemon started" in log.read_text(errors="replace"):
                return True
            time.sleep(0.1)
        return False

    def kill(self, proc: subprocess.Popen[str]) -> None:
        """SIGKILL, then reap: a zombie's pid would still look alive to the survivors."""
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def stop_all(self, timeout: float = 30.0) -> list[int | None]:
        for proc in self.workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes: list[int | None] = []
        for proc in self.workers:
            try:
                codes.append(proc.wait(timeout=timeout))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
                codes.append(None)
        self.images.stop()
        return codes

    def log_tail(self, lines: int = 40) -> str:
        tails = []
        for log in self.logs:
            text = log.read_text(errors="replace").splitlines() if log.exists() else []
            tails.append(f"--- {log.name}\n" + "\n".join(text[-lines:]))
        return "\n".join(tails)

    def grep_logs(self, needle: str) -> list[str]:
        return [
            f"{log.stem}: {line}"
            for log in self.logs
            if log.exists()
            for line in log.read_text(errors="replace").splitlines()
            if needle in line
        ]

    # --- the ledger --------------------------------------------------------------------------

    def deliveries(self) -> list[Delivery]:
        ledger = open_ledger(self.database)
        try:
            rows: list[Delivery] = []
            for queue, posts in self.queues.items():
                for i in range(len(posts)):
                    rows.extend(ledger.deliveries_for_post(queue, f"{queue}-{i}"))
            return rows
        finally:
            ledger.close()

    def fired_slots(self) -> dict[str, list[tuple[datetime, str]]]:
        """Per queue, (slot time, post id) of every fired slot, in slot-time order."""
        engine = open_ledger(self.database).engine
        try:
            with engine.connect() as conn:
                rows = conn.execute(
                    select(slots.c.queue, slots.c.slot_name, slots.c.post_id).where(slots.c.state == "fired")
                ).all()
        finally:
            engine.dispose()
        fired: dict[str, list[tuple[datetime, str]]] = {}
        for queue, name, post_id in rows:
            fired.setdefault(queue, []).append((datetime.fromisoformat(name), post_id))
        return {queue: sorted(found) for queue, found in fired.items()}

    def settled(self) -> bool:
        """Every expected delivery is in the ledger and none is still claimed."""
        rows = self.deliveries()
        return len(rows) == sum(self.expected().values()) and all(r.state != "claimed" for r in rows)

    # --- the emulators -----------------------------------------------------------------------

    def settings(self, platform: str, **settings: Any) -> None:
        base = self.sandbox.servers[platform].base_url
        requests.post(f"{base}/_sandbox/settings", data=json.dumps(settings), timeout=5).raise_for_status()

    def our_posts(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(platform, account, post) of every live post by one of our accounts."""
        found = []
        for platform in PLATFORMS:
            base = self.sandbox.servers[platform].base_url
            state = requests.get(f"{base}/_sandbox/state", timeout=10).json()
            ours = {author: name for name, author in state["accounts"].items()}
            for post in state["posts"]:
                if post.get("deleted"):
                    continue
                account = ours.get(post["author"])
                if account is not None:
                    found.append((platform, account, post))
        return found


@dataclass
class FaultLog:
    injected: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.injected.values())


class FaultInjector:
    """Injects one random fault every `every` seconds into a random account's requests.

    Each fault hits one request (`times: 1`) and a target gets at most one every `cooldown`
    seconds, so no delivery meets more failures than its retry bound (5 calls over 30 s of
    backoff) allows: the suite looks for doubles and losses, not for deliveries given up.
    """

    KINDS: tuple[tuple[str, dict[str, Any]], ...] = (
        ("503", {"status": 503}),
        ("503-applied", {"status": 503, "apply": True}),
        ("drop-after", {"drop": "after"}),
        ("drop-before", {"drop": "before"}),
        ("latency", {"latency_ms": 1500}),
        ("429", {"status": 429, "reset_in": 1}),
    )

    def __init__(
        self, campaign: Campaign, rng: random.Random, *, every: float = 0.4, cooldown: float = 9.0
    ) -> None:
        self.campaign = campaign
        self.rng = rng
        self.every = every
        self.cooldown = cooldown
        self.log = FaultLog()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="faults", daemon=True)
        self._last: dict[tuple[str, str], float] = {}

    def __enter__(self) -> FaultInjector:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        for server in self.campaign.sandbox.servers.values():
            server.faults.clear()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            platform = self.rng.choice(PLATFORMS)
            account = self.rng.choice(self.campaign.accounts[platform])
            kind, fault = self.rng.choice(self.KINDS)
            path = POST_PATHS[platform] if self.rng.random() < 0.75 else ANY_PATH[platform]
            now = time.monotonic()
            if now - self._last.get((platform, account), -1e9) < self.cooldown:
                continue
            self._last[(platform, account)] = now
            method = "POST" if path == POST_PATHS[platform] else self.rng.choice(["GET", "POST"])
            payload = {**fault, "method": method, "path": path, "times": 1, "account": account}
            base = self.campaign.sandbox.servers[platform].base_url
            requests.post(f"{base}/_sandbox/faults", data=json.dumps(payload), timeout=5).raise_for_status()
            self.log.injected[kind] += 1
