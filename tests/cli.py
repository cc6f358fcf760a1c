"""The real command line in tests: `python -m bot ...` in its own process, a campaign folder
to run it in, and free ports for a sandbox.

Two kinds of folder: `offline_campaign` (Mastodon at a closed loopback port, so nothing reaches
a network; for exit codes and messages) and `tests.sandboxsite.Site` (accounts on running
emulators), run with `site_bot`.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bot.sandbox import SANDBOX_PORTS

if TYPE_CHECKING:
    from tests.sandboxsite import Site

REPO = Path(__file__).resolve().parent.parent

OFFLINE_CONFIG = """\
campaign: Test
content: content/
database: sqlite:///state/bot.sqlite3
logging: {mentions_log: "-"}
platforms:
  mastodon:
    accounts:
      - {name: main, api_base_url: "http://127.0.0.1:9", access_token: "${MASTODON_ACCESS_TOKEN}"}
"""

OFFLINE_QUEUE = """\
schedule: {every: 4h}
posts:
  - {id: first, text: "Drop the contracts"}
"""

# What `offline_bot` runs with: no secret of the person running the tests leaks in.
OFFLINE_ENV = {"PATH": os.environ.get("PATH", ""), "MASTODON_ACCESS_TOKEN": "token-for-tests"}


def bot_argv(*args: str, config: Path | None = None) -> list[str]:
    """The argument list of `python -m bot [--config CONFIG] ARGS`, for `subprocess.Popen`."""
    where = ["--config", str(config)] if config is not None else []
    return [sys.executable, "-m", "bot", *where, *args]


def bot_env(env: Mapping[str, str]) -> dict[str, str]:
    """`env` with this checkout importable (PYTHONPATH)."""
    return {**env, "PYTHONPATH": str(REPO)}


def run_bot(
    *args: str, cwd: Path, env: Mapping[str, str], config: Path | None = None, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    """`python -m bot ARGS` in `cwd` with exactly `env` (and PYTHONPATH); its output captured."""
    return subprocess.run(
        bot_argv(*args, config=config),
        cwd=cwd,
        env=bot_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def without(
    env: Mapping[str, str], drop: Sequence[str] = (), prefixes: tuple[str, ...] = ()
) -> dict[str, str]:
    """`env` less the names in `drop` and those starting with one of `prefixes`."""
    return {k: v for k, v in env.items() if k not in drop and not (prefixes and k.startswith(prefixes))}


def site_bot(
    site: Site, *args: str, drop: Sequence[str] = (), timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    """`python -m bot --config SITE ARGS` from the site's folder, with this environment and the
    site's secrets, less the variables in `drop` (secrets someone has not set)."""
    env = without({**os.environ, **site.env}, drop)
    return run_bot(*args, cwd=site.root, env=env, config=site.config, timeout=timeout)


def offline_campaign(
    folder: Path, queues: Mapping[str, str] | None = None, config: str = OFFLINE_CONFIG
) -> Path:
    """config.yaml and content/ in `folder` (by default one queue, `calls`); returns `folder`."""
    (folder / "content").mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(config)
    for name, body in ({"calls": OFFLINE_QUEUE} if queues is None else queues).items():
        (folder / "content" / f"{name}.yaml").write_text(body)
    return folder


def offline_bot(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m bot ARGS` in an offline campaign folder."""
    return run_bot(*args, cwd=folder, env=OFFLINE_ENV, timeout=60)


def assert_input_error(result: subprocess.CompletedProcess[str], where: str) -> None:
    """Exit 1, `where` (FILE:LINE: …) on stderr, and no traceback."""
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert where in result.stderr


def copy_of_shipped_campaign(folder: Path) -> Path:
    """The repository's own config.yaml and content/ copied into `folder`; returns `folder`."""
    shutil.copy(REPO / "config.yaml", folder / "config.yaml")
    shutil.copytree(REPO / "content", folder / "content")
    return folder


def free_base_port(count: int = SANDBOX_PORTS) -> int:
    """N such that N to N+count-1 (by default every emulator's port) are free on 127.0.0.1 now."""
    for _ in range(100):
        base = random.randrange(20000, 60000)
        try:
            for port in range(base, base + count):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError(f"no {count} free ports in a row")
