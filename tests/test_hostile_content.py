"""Content files changed under a running daemon: an image swapped for a link, or for other bytes.

`check` saw a good image; at send time the file is a link to a secret outside `content/`, or is
not the image its name claims. The running daemon (the real command, against the emulators) must
send neither, and say which file it refused.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.imagefiles import png
from tests.sandboxsite import Site, wait_for

REPO = Path(__file__).resolve().parent.parent
# Not X: repeating a text there is "duplicate content", which is beside the point here.
QUEUE = """\
schedule: {every: 5s}
when_exhausted: repeat
platforms: [bluesky, mastodon]
posts:
  - {id: a, text: "Ask A", images: [{path: images/banner.png, alt: "Our banner"}]}
  - {id: b, text: "Ask B", images: [{path: images/banner.png, alt: "Our banner"}]}
"""


def with_media(site: Site) -> int:
    return sum(1 for p in ("bluesky", "mastodon") for post in site.state(p) if post["media"])


def link_out(banner: Path) -> None:
    secret = banner.parents[2] / "secret.png"  # beside config.yaml, as .env is
    secret.write_bytes(png(3, 3))  # an image, so that the emulators would take it
    banner.unlink()
    banner.symlink_to(Path("..") / ".." / "secret.png")


def other_bytes(banner: Path) -> None:
    banner.write_bytes(b"DATABASE_URL=postgres://campaign:hunter2@db.example/campaign\n")


@pytest.mark.parametrize("swap", [link_out, other_bytes], ids=["link-out", "not-an-image"])
def test_an_image_swapped_after_check_is_refused_at_send_time(
    site: Site, tmp_path: Path, swap: Callable[[Path], None]
) -> None:
    banner = site.root / "content" / "images" / "banner.png"
    banner.parent.mkdir()
    banner.write_bytes(png(2, 2))
    site.write_queue("often", QUEUE)
    log = tmp_path / "daemon.log"
    with log.open("w") as err:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "bot", "--config", str(site.config), "run", "--for", "1m"],
            cwd=REPO,
            env={**site.env, "PYTHONPATH": str(REPO)},
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        assert wait_for(lambda: with_media(site) >= 2, timeout=30), log.read_text()
        swap(banner)
        sent = with_media(site)
        assert wait_for(lambda: log.read_text().count("content/images/banner.png") >= 2, timeout=30)
        # At most the copies of one slot already reading the old file (one per platform).
        assert with_media(site) <= sent + 2
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
    refused = [line for line in log.read_text().splitlines() if "content/images/banner.png" in line]
    reason = "a link" if swap is link_out else "not the image/png its name claims"
    assert all(reason in line for line in refused), refused
    assert "hunter2" not in log.read_text()
    assert os.path.islink(banner) == (swap is link_out)


def test_check_refuses_an_image_that_is_a_link_even_inside_the_content_folder(site: Site) -> None:
    images = site.root / "content" / "images"
    images.mkdir()
    (images / "real.png").write_bytes(png(2, 2))
    (images / "banner.png").symlink_to("real.png")
    site.write_queue("often", QUEUE)
    result = subprocess.run(
        [sys.executable, "-m", "bot", "--config", str(site.config), "check"],
        cwd=REPO,
        env={**site.env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "often.yaml:" in result.stderr and "'images/banner.png' is a link" in result.stderr
