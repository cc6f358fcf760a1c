"""`preview` reads the ledger: each slot shows the post it will really send next (DESIGN §2)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli import main
from bot.sandbox import Sandbox, start_sandbox
from tests.sandboxsite import Site

QUEUE = """\
schedule: {every: 1h}
posts:
  - {id: first, text: "First ask"}
  - {id: second, text: "Second ask"}
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    sandbox: Sandbox = start_sandbox()
    s = Site(tmp_path, sandbox)
    s.write_queue("calls", QUEUE)
    for name, value in s.env.items():
        monkeypatch.setenv(name, value)
    yield s
    sandbox.stop()


def next_posts(site: Site, capsys: pytest.CaptureFixture[str]) -> list[str | None]:
    capsys.readouterr()
    assert main(["--config", str(site.config), "preview", "--json", "--days", "1"]) == 0
    return [slot["post_id"] for slot in json.loads(capsys.readouterr().out)][:2]


def test_preview_starts_after_what_was_sent(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    assert next_posts(site, capsys) == ["first", "second"]
    assert main(["--config", str(site.config), "post", "calls"]) == 0  # sends "first"
    assert next_posts(site, capsys) == ["second", None]  # then the queue is exhausted


def test_preview_creates_no_database(site: Site) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "--config", str(site.config), "preview"],
        cwd=Path(__file__).resolve().parent.parent,
        env=site.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert not (site.root / "state").exists()


def test_preview_into_a_closed_pipe_is_no_traceback(site: Site) -> None:
    site.write_queue("calls", QUEUE.replace("posts:", "when_exhausted: repeat\nposts:"))
    command = [
        sys.executable,
        "-m",
        "bot",
        "--config",
        str(site.config),
        "preview",
        "--days",
        "30",
    ]  # past the pipe buffer
    shell = subprocess.run(
        " ".join(command) + " | head -1",
        shell=True,
        cwd=Path(__file__).resolve().parent.parent,
        env=site.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Traceback" not in shell.stderr
