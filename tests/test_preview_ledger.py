"""`preview` reads the ledger: each slot shows the post it will really send next (docs/design.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main
from tests.sandboxsite import Site

QUEUE = """\
schedule: {every: 1h}
posts:
  - {id: first, text: "First ask"}
  - {id: second, text: "Second ask"}
"""


@pytest.fixture
def campaign(site: Site, monkeypatch: pytest.MonkeyPatch) -> Site:
    site.write_queue("calls", QUEUE)
    for name, value in site.env.items():
        monkeypatch.setenv(name, value)
    return site


def next_posts(site: Site, capsys: pytest.CaptureFixture[str]) -> list[str | None]:
    capsys.readouterr()
    assert main(["--config", str(site.config), "preview", "--json", "--days", "1"]) == 0
    return [slot["post_id"] for slot in json.loads(capsys.readouterr().out)][:2]


def test_preview_starts_after_what_was_sent(campaign: Site, capsys: pytest.CaptureFixture[str]) -> None:
    assert next_posts(campaign, capsys) == ["first", "second"]
    assert main(["--config", str(campaign.config), "post", "calls"]) == 0  # sends "first"
    assert next_posts(campaign, capsys) == ["second", None]  # then the queue is exhausted


def test_preview_creates_no_database(campaign: Site) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "--config", str(campaign.config), "preview"],
        cwd=Path(__file__).resolve().parent.parent,
        env=campaign.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert not (campaign.root / "state").exists()


def test_preview_into_a_closed_pipe_is_no_traceback(campaign: Site) -> None:
    campaign.write_queue("calls", QUEUE.replace("posts:", "when_exhausted: repeat\nposts:"))
    command = [
        sys.executable,
        "-m",
        "bot",
        "--config",
        str(campaign.config),
        "preview",
        "--days",
        "30",
    ]  # past the pipe buffer
    shell = subprocess.run(
        " ".join(command) + " | head -1",
        shell=True,
        cwd=Path(__file__).resolve().parent.parent,
        env=campaign.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Traceback" not in shell.stderr
