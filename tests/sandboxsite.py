"""A campaign folder wired to running emulators, for tests of delivery, `post` and the daemon.

`Site` writes config.yaml and content/ into a temporary folder, with every account pointed at
the sandbox (started on free ports by the test) and the sandbox credentials in an environment
mapping, never in the file (as staff would write it). It reads `/_sandbox/state` and injects
faults over real HTTP.
"""

from __future__ import annotations

import json
import os
import textwrap
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from bot.sandbox import Sandbox

PLATFORMS = ("x", "bluesky", "mastodon")
POST_PATHS = {
    "x": "/2/tweets",
    "bluesky": "/xrpc/com.atproto.repo.createRecord",
    "mastodon": "/api/v1/statuses",
    "facebook": "/*/feed",
}


def env_for(sandbox: Sandbox) -> dict[str, str]:
    d = sandbox.describe()
    x, bsky, masto = d["x"]["accounts"][0], d["bluesky"]["accounts"][0], d["mastodon"]["accounts"][0]
    return {
        "X_CONSUMER_KEY": x["consumer_key"],
        "X_CONSUMER_SECRET": x["consumer_secret"],
        "X_ACCESS_TOKEN": x["access_token"],
        "X_ACCESS_TOKEN_SECRET": x["access_token_secret"],
        "BSKY_HANDLE": bsky["handle"],
        "BSKY_APP_PASSWORD": bsky["app_password"],
        "MASTODON_ACCESS_TOKEN": masto["access_token"],
        **facebook_env(sandbox),
    }


def facebook_env(sandbox: Sandbox) -> dict[str, str]:
    page = sandbox.describe()["facebook"]["accounts"][0]
    return {
        "FB_PAGE_ID": page["page_id"],
        "FB_PAGE_TOKEN": page["access_token"],
        "FB_APP_SECRET": page["app_secret"],
    }


def facebook_block(base_url: str) -> str:
    """The `platforms.facebook` section of a config (indented for `platforms:`), secrets as ${VAR}."""
    return (
        "  facebook:\n"
        "    enabled: true\n"
        f"    api_base_url: {base_url}\n"
        "    api_version: v27.0\n"
        "    accounts:\n"
        "      - name: main\n"
        '        page_id: "${FB_PAGE_ID}"\n'
        '        access_token: "${FB_PAGE_TOKEN}"\n'
        '        app_secret: "${FB_APP_SECRET}"\n'
    )


@dataclass
class Site:
    root: Path
    sandbox: Sandbox
    limits: str = ""  # YAML flow mapping for the X account's limits, e.g. "{min_gap: 20m}"
    webhook: str = ""
    grace: str = "1h"
    env: dict[str, str] = field(default_factory=dict)
    facebook: bool = False  # also post to the Facebook emulator

    def __post_init__(self) -> None:
        self.env = {**env_for(self.sandbox), "PATH": os.environ.get("PATH", "")}
        (self.root / "content").mkdir(parents=True, exist_ok=True)
        self.write_config()

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def database(self) -> str:
        return f"sqlite:///{self.root / 'state' / 'bot.sqlite3'}"

    def write_config(self) -> None:
        d = self.sandbox.describe()
        limits = f"\n{' ' * 24}limits: {self.limits}" if self.limits else ""
        self.config.write_text(
            textwrap.dedent(
                f"""\
                campaign: Test
                timezone: UTC
                hashtags: ["#NoTechForICE"]
                content: content/
                database: sqlite:///state/bot.sqlite3
                schedule_grace: {self.grace}
                logging: {{level: INFO, format: text, mentions_log: "-"}}
                alerts: {{webhook: "{self.webhook}"}}
                platforms:
                  x:
                    enabled: true
                    api_base_url: {d["x"]["base_url"]}
                    tier: pro
                    accounts:
                      - name: main
                        consumer_key: "${{X_CONSUMER_KEY}}"
                        consumer_secret: "${{X_CONSUMER_SECRET}}"
                        access_token: "${{X_ACCESS_TOKEN}}"
                        access_token_secret: "${{X_ACCESS_TOKEN_SECRET}}"{limits}
                  bluesky:
                    enabled: true
                    accounts:
                      - name: main
                        service: {d["bluesky"]["base_url"]}
                        handle: "${{BSKY_HANDLE}}"
                        app_password: "${{BSKY_APP_PASSWORD}}"
                  mastodon:
                    enabled: true
                    accounts:
                      - name: main
                        api_base_url: {d["mastodon"]["base_url"]}
                        access_token: "${{MASTODON_ACCESS_TOKEN}}"
                """
            )
            + (facebook_block(d["facebook"]["base_url"]) if self.facebook else "")
        )

    def write_queue(self, name: str, body: str, *, mtime: float | None = None) -> Path:
        path = self.root / "content" / f"{name}.yaml"
        path.write_text(textwrap.dedent(body))
        if mtime is not None:
            os.utime(path, (mtime, mtime))
        return path

    # --- the emulators ---------------------------------------------------------------------

    def base(self, platform: str) -> str:
        return self.sandbox.servers[platform].base_url

    def control_headers(self, platform: str) -> dict[str, str]:
        """The run's control token (`X-Sandbox-Token`), when the sandbox has one."""
        return control_headers(self.sandbox.servers[platform].control_token)

    def state(self, platform: str) -> list[dict[str, Any]]:
        url = f"{self.base(platform)}/_sandbox/state"
        posts: list[dict[str, Any]] = requests.get(
            url, headers=self.control_headers(platform), timeout=5
        ).json()["posts"]
        return posts

    def live_texts(self, platform: str) -> list[str]:
        return [p["text"] for p in self.state(platform) if not p.get("deleted")]

    def fault(self, platform: str, **fault: Any) -> None:
        fault.setdefault("method", "POST")
        fault.setdefault("path", POST_PATHS[platform])
        response = requests.post(
            f"{self.base(platform)}/_sandbox/faults",
            data=json.dumps(fault),
            headers=self.control_headers(platform),
            timeout=5,
        )
        response.raise_for_status()

    def settings(self, platform: str, **settings: Any) -> None:
        requests.post(
            f"{self.base(platform)}/_sandbox/settings",
            data=json.dumps(settings),
            headers=self.control_headers(platform),
            timeout=5,
        ).raise_for_status()


def control_headers(token: str | None) -> dict[str, str]:
    return {"X-Sandbox-Token": token} if token else {}


def wait_for(predicate: Any, timeout: float = 10.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def environ(site: Site) -> Mapping[str, str]:
    return site.env
