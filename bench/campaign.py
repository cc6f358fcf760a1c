"""A campaign for the benches: a config.yaml whose three platforms point at a sandbox.

The sandbox runs either in-process (`bot.sandbox.start_sandbox`) or as its own process
(`python -m bot sandbox`, so that the daemon being measured does not share its CPU time);
both describe themselves with the same JSON (docs/design.md, sandbox control API).
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

from timing import PYTHON, REPO


def account_env(description: dict[str, Any]) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Per platform the config lines of its accounts, and the variables they read."""
    env: dict[str, str] = {}
    lines: dict[str, list[str]] = {"x": [], "bluesky": [], "mastodon": []}
    for n, account in enumerate(description["x"]["accounts"]):
        keys = ("consumer_key", "consumer_secret", "access_token", "access_token_secret")
        lines["x"].append(f"      - name: {account['name']}")
        for key in keys:
            env[f"BENCH_X_{n}_{key.upper()}"] = account[key]
            lines["x"].append(f'        {key}: "${{BENCH_X_{n}_{key.upper()}}}"')
    for n, account in enumerate(description["bluesky"]["accounts"]):
        env[f"BENCH_BSKY_{n}_HANDLE"] = account["handle"]
        env[f"BENCH_BSKY_{n}_PASSWORD"] = account["app_password"]
        lines["bluesky"] += [
            f"      - name: {account['name']}",
            f"        service: {description['bluesky']['base_url']}",
            f'        handle: "${{BENCH_BSKY_{n}_HANDLE}}"',
            f'        app_password: "${{BENCH_BSKY_{n}_PASSWORD}}"',
        ]
    for n, account in enumerate(description["mastodon"]["accounts"]):
        env[f"BENCH_MASTODON_{n}_TOKEN"] = account["access_token"]
        lines["mastodon"] += [
            f"      - name: {account['name']}",
            f"        api_base_url: {description['mastodon']['base_url']}",
            f'        access_token: "${{BENCH_MASTODON_{n}_TOKEN}}"',
        ]
    return lines, env


def write_config(
    folder: Path,
    description: dict[str, Any],
    queues: dict[str, str],
    extra: str = "",
    database: str = "sqlite:///state/bot.sqlite3",
    platforms: tuple[str, ...] = ("x", "bluesky", "mastodon"),
) -> tuple[Path, dict[str, str]]:
    """config.yaml, content/<name>.yaml per queue and a state folder in `folder`.

    Only `platforms` are enabled. Returns the config's path and the environment its `${VAR}`s need.
    """
    lines, env = account_env(description)
    content = folder / "content"
    content.mkdir(parents=True, exist_ok=True)
    for name, text in queues.items():
        (content / f"{name}.yaml").write_text(text, encoding="utf-8")
    config = "\n".join(
        [
            "campaign: Bench",
            "timezone: UTC",
            'hashtags: ["#NoTechForICE"]',
            "content: content/",
            f"database: {database}",
            "logging: {level: INFO, format: text, mentions_log: logs/mentions.jsonl}",
            extra,
            "platforms:",
            "  x:",
            f"    enabled: {str('x' in platforms).lower()}",
            f"    api_base_url: {description['x']['base_url']}",
            "    tier: pro",
            "    accounts:",
            *lines["x"],
            "  bluesky:",
            f"    enabled: {str('bluesky' in platforms).lower()}",
            "    accounts:",
            *lines["bluesky"],
            "  mastodon:",
            f"    enabled: {str('mastodon' in platforms).lower()}",
            "    accounts:",
            *lines["mastodon"],
            "",
        ]
    )
    path = folder / "config.yaml"
    path.write_text(config, encoding="utf-8")
    return path, env


class SandboxProcess:
    """`python -m bot sandbox` in its own process; stopped (SIGTERM, then SIGKILL) on exit."""

    def __init__(self, accounts: int = 2) -> None:
        self.process = subprocess.Popen(
            [PYTHON, "-m", "bot", "sandbox", "--accounts", str(accounts)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.stop()
            raise RuntimeError("python -m bot sandbox printed nothing")
        self.description: dict[str, Any] = json.loads(line)

    def state(self, platform: str) -> dict[str, Any]:
        described = self.description[platform]
        token = described.get("control_token")
        request = urllib.request.Request(
            described["base_url"] + "/_sandbox/state", headers={"X-Sandbox-Token": token} if token else {}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            result: dict[str, Any] = json.load(answer)
            return result

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> SandboxProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
