"""Image files are judged by their bytes: at `check`, and again when read to be sent."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import time
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.cli import OFFLINE_CONFIG, assert_input_error, bot_argv, bot_env, offline_bot, offline_campaign
from tests.imagefiles import png
from tests.sandboxsite import PLATFORMS, Site


def queue_with(image: str, platforms: str = "[mastodon]") -> str:
    return (
        f"schedule: {{every: 4h}}\nplatforms: {platforms}\nposts:\n"
        f'  - id: a\n    text: "Ask"\n    images: [{{path: {image}, alt: "A banner"}}]\n'
    )


def with_size(data: bytes, width: int, height: int) -> bytes:
    """A PNG whose header claims another size (its IHDR CRC kept right)."""
    header = struct.pack(">II", width, height) + data[24:29]
    return data[:16] + header + struct.pack(">I", zlib.crc32(b"IHDR" + header)) + data[33:]


@pytest.fixture
def campaign(tmp_path: Path) -> Path:
    return offline_campaign(tmp_path, {})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"this is a text file, not a picture\n", "is not a PNG, JPEG, GIF or WebP image"),
        (png(20, 20)[:-20], "is a damaged PNG"),
        (png(20, 20)[:45] + b"\x00" * 10 + png(20, 20)[55:], "is a damaged PNG"),
        (with_size(png(2, 2), 8000, 4200), "is 8000x4200 pixels; Mastodon takes at most 33,177,600 pixels"),
    ],
)
def test_check_refuses_a_file_that_is_not_a_usable_image(campaign: Path, data: bytes, message: str) -> None:
    (campaign / "content" / "fake.png").write_bytes(data)
    (campaign / "content" / "calls.yaml").write_text(queue_with("fake.png"))
    result = offline_bot(campaign, "check")
    assert_input_error(result, "content/calls.yaml:6: image 'fake.png' ")
    assert message in result.stderr


def test_check_measures_bytes_against_each_target_platform(campaign: Path) -> None:
    # ~1.2 MB of incompressible pixel data: fine for Mastodon, too big for Bluesky.
    big = png(600, 600)
    noise = zlib.compress(os.urandom(600 * 1801), 0)
    chunk = struct.pack(">I", len(noise)) + b"IDAT" + noise + struct.pack(">I", zlib.crc32(b"IDAT" + noise))
    big = big[:33] + chunk + big[-12:]
    (campaign / "content" / "big.png").write_bytes(big)
    (campaign / "content" / "calls.yaml").write_text(queue_with("big.png"))
    assert offline_bot(campaign, "check").returncode == 0
    config = (
        OFFLINE_CONFIG
        + '  bluesky:\n    accounts:\n      - {name: main, handle: a.example, app_password: "p"}\n'
    )
    (campaign / "config.yaml").write_text(config)
    (campaign / "content" / "calls.yaml").write_text(queue_with("big.png", "[mastodon, bluesky]"))
    result = offline_bot(campaign, "check")
    assert_input_error(result, "image 'big.png' is 1,")
    assert "Bluesky takes at most 1,000,000" in result.stderr


def test_an_image_spoiled_after_loading_is_refused_when_read_to_send(site: Site) -> None:
    (site.root / "content" / "banner.png").write_bytes(png(40, 20))
    when = (datetime.now(UTC) + timedelta(seconds=6)).strftime("%Y-%m-%dT%H:%M:%S")
    site.write_queue(
        "calls",
        f'schedule: {{at: ["{when}"]}}\nposts:\n  - id: a\n    text: "Ask"\n'
        '    images: [{path: banner.png, alt: "A banner"}]\n',
    )
    log = site.root / "daemon.log"
    with log.open("w") as out:
        daemon = subprocess.Popen(
            bot_argv("run", config=site.config),
            cwd=site.root,
            env=bot_env({**os.environ, **site.env}),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 40
        while "daemon started" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        (site.root / "content" / "banner.png").write_bytes(b"<html>not an image</html>")
        while (
            log.read_text().count("banner.png: not the image/png its name claims") < 3
            and time.monotonic() < deadline
        ):
            time.sleep(0.2)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    text = log.read_text()
    # Read at send time as a content file: the bytes are not the PNG the name claims.
    assert text.count("banner.png: not the image/png its name claims") == 3, text
    assert "Traceback" not in text
    assert all(site.live_texts(p) == [] for p in PLATFORMS)
