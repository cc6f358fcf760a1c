"""The adapters' SDK-free parts: image headers, TIDs, reset headers, OpenGraph cards, text recovery."""

from __future__ import annotations

import contextlib
import struct
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bot.campaign.images import inspect_image
from bot.platforms.mastodon import html_to_text
from bot.platforms.opengraph import fetch_link_preview, parse_link_preview
from bot.platforms.ratelimits import seconds_until_reset
from bot.platforms.tid import is_tid, make_tid
from bot.platforms.x import _plain_text
from tests.imagefiles import jpeg, png

NOW = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)


# -- images ----------------------------------------------------------------------------------


def test_png_size_and_type_come_from_the_header() -> None:
    info = inspect_image(png(640, 360))
    assert (info.mime, info.width, info.height) == ("image/png", 640, 360)


def test_jpeg_size_is_found_past_the_segments_before_the_frame() -> None:
    info = inspect_image(jpeg(1200, 675))
    assert (info.mime, info.width, info.height) == ("image/jpeg", 1200, 675)


def test_gif_and_webp_sizes() -> None:
    gif = b"GIF89a" + struct.pack("<HH", 30, 20) + b"\x00" * 10
    vp8x = (
        b"RIFF"
        + b"\x00" * 4
        + b"WEBPVP8X"
        + b"\x00" * 8
        + (99).to_bytes(3, "little")
        + (49).to_bytes(3, "little")
    )
    assert (inspect_image(gif).width, inspect_image(gif).height) == (30, 20)
    assert (inspect_image(vp8x).mime, inspect_image(vp8x).width, inspect_image(vp8x).height) == (
        "image/webp",
        100,
        50,
    )


def test_unknown_bytes_have_no_size() -> None:
    info = inspect_image(b"not an image at all")
    assert info.width is None and info.mime == "application/octet-stream"


# -- TIDs ------------------------------------------------------------------------------------


def test_tid_encodes_the_time_and_sorts_by_it() -> None:
    first = make_tid(NOW, clock_id=5)
    later = make_tid(NOW + timedelta(microseconds=1), clock_id=0)
    assert is_tid(first) and is_tid(later)
    assert first < later
    alphabet = "234567abcdefghijklmnopqrstuvwxyz"
    value = 0
    for char in first:
        value = value * 32 + alphabet.index(char)
    assert value >> 10 == int(NOW.timestamp() * 1_000_000)
    assert value & 1023 == 5


def test_random_clock_ids_keep_two_claims_in_one_microsecond_apart() -> None:
    assert len({make_tid(NOW) for _ in range(50)}) > 1


def test_non_tids_are_refused() -> None:
    assert not is_tid("hello")
    assert not is_tid("zzzzzzzzzzzzz")  # the top bit of a TID is always 0


# -- reset headers ---------------------------------------------------------------------------


def test_x_reset_is_epoch_seconds() -> None:
    headers = {"x-rate-limit-reset": str(int(NOW.timestamp()) + 30)}
    assert seconds_until_reset(headers, NOW) == 30


def test_bluesky_retry_after_wins_over_reset() -> None:
    headers = {"RateLimit-Reset": str(int(NOW.timestamp()) + 300), "Retry-After": "12"}
    assert seconds_until_reset(headers, NOW) == 12


def test_mastodon_reset_is_an_iso_time() -> None:
    headers = {"X-RateLimit-Reset": (NOW + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
    assert seconds_until_reset(headers, NOW) == 300


def test_no_reset_or_a_past_one() -> None:
    assert seconds_until_reset({}, NOW) is None
    assert seconds_until_reset({"ratelimit-reset": str(int(NOW.timestamp()) - 10)}, NOW) == 0


# -- OpenGraph -------------------------------------------------------------------------------

PAGE = """<!doctype html><html><head><title>Fallback</title>
<meta property="og:title" content="Drop the contracts &amp; sign">
<meta property="og:description" content="Tech workers against ICE">
<meta property="og:image" content="/card.png"></head><body>…</body></html>"""


def test_opengraph_tags_with_a_relative_image() -> None:
    assert parse_link_preview("https://example.org/p", PAGE) == (
        "Drop the contracts & sign",
        "Tech workers against ICE",
        "https://example.org/card.png",
    )


def test_title_element_is_the_fallback_and_no_title_no_card() -> None:
    assert parse_link_preview("https://e.org/", "<title> Petition </title>") == ("Petition", "", None)
    assert parse_link_preview("https://e.org/", "<p>nothing</p>") is None


@pytest.fixture
def site() -> Iterator[str]:
    card = png(4, 2)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            if self.path == "/slow":
                time.sleep(0.6)
            body, ctype = (card, "image/png") if self.path == "/card.png" else (PAGE.encode(), "text/html")
            if self.path == "/missing":
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(ConnectionError):  # the slow page's reader has given up
                self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_card_is_read_from_the_page_with_its_image(site: str) -> None:
    preview = fetch_link_preview(f"{site}/p", timeout=2)
    assert preview is not None
    assert preview.title == "Drop the contracts & sign"
    assert preview.image == png(4, 2)


def test_a_slow_or_missing_page_costs_the_card_not_the_post(site: str) -> None:
    started = time.monotonic()
    assert fetch_link_preview(f"{site}/slow", timeout=0.2) is None
    assert time.monotonic() - started < 0.55
    assert fetch_link_preview(f"{site}/missing", timeout=1) is None
    assert fetch_link_preview("http://127.0.0.1:9/", timeout=0.5) is None  # nothing listens there


# -- text as posted --------------------------------------------------------------------------


def test_x_text_gets_its_links_back_and_loses_the_media_link() -> None:
    stored = "Sign &amp; share: https://t.co/abc https://t.co/pic"
    entities = {
        "urls": [
            {"url": "https://t.co/abc", "expanded_url": "https://example.org/p"},
            {
                "url": "https://t.co/pic",
                "expanded_url": "https://x.com/a/status/1/photo/1",
                "media_key": "3_1",
            },
        ]
    }
    assert _plain_text(stored, entities) == "Sign & share: https://example.org/p"


def test_mastodon_content_back_to_text() -> None:
    content = (
        '<p>Drop the contracts &amp; sign:<br /><a href="https://example.org/p"><span class="invisible">'
        'https://</span><span class="">example.org/p</span></a></p><p>#<span>NoTechForICE</span></p>'
    )
    assert html_to_text(content) == "Drop the contracts & sign:\nhttps://example.org/p\n\n#NoTechForICE"
