"""In sandbox mode every link the bot prints opens the post on the emulator that holds it."""

from __future__ import annotations

import re

import pytest
import requests

from bot.cli import main
from tests.sandboxsite import PLATFORMS, Site


def test_post_prints_links_to_the_emulators(
    site: Site, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    site.write_queue("calls", 'schedule: {every: 1h}\nposts:\n  - {id: first, text: "Drop the contracts"}\n')
    for name, value in site.env.items():
        monkeypatch.setenv(name, value)
    assert main(["--config", str(site.config), "post", "calls"]) == 0
    printed = capsys.readouterr().out
    for platform in PLATFORMS:
        (line,) = [line for line in printed.splitlines() if line.startswith(f"{platform}/main ")]
        url = re.search(r"posted: (\S+)", line)
        assert url is not None, line
        assert url[1].startswith(site.base(platform) + "/"), line  # not x.com or bsky.app
        opened = requests.get(url[1], timeout=5)
        assert opened.status_code == 200 and opened.json()["text"].startswith("Drop the contracts")
