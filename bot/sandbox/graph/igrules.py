"""What Instagram checks of a new container: its caption, and its image once fetched.

docs/platforms.md, Instagram: JPEG only, 8 MB, aspect ratio 4:5 to 1.91:1; captions of 2,200
characters, 30 hashtags and 20 @tags. Each refusal is Instagram's code and 22070xx subcode.
"""

from __future__ import annotations

import urllib.error
import urllib.request

from bot.campaign.images import inspect_image
from bot.sandbox.graph.core import GraphError

MAX_CAPTION = 2200
MAX_HASHTAGS = 30
MAX_MENTIONS = 20
MAX_IMAGE_BYTES = 8 * 1024 * 1024
MAX_ALT = 1000
RATIOS = (0.8, 1.91)
FETCH_TIMEOUT = 10.0


def ig_error(code: int, subcode: int, message: str, *, transient: bool = False) -> GraphError:
    """One of Instagram's publishing errors: HTTP 400, a code and a 22070xx subcode."""
    return GraphError(code, message, 400, subcode, "OAuthException", transient)


def check_caption(caption: str) -> None:
    if len(caption) > MAX_CAPTION or caption.count("#") > MAX_HASHTAGS:
        raise ig_error(36004, 2207010, "The caption is too long (2,200 characters, 30 hashtags at most).")
    if caption.count("@") > MAX_MENTIONS:
        raise ig_error(100, 2207040, "Cannot use more than 20 tags per created media.")


def fetch_problem(url: str) -> tuple[int, str] | None:
    """Fetch and decode the image as Instagram does: None, or (subcode, why) it cannot be used."""
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT) as answer:
            data = answer.read(MAX_IMAGE_BYTES + 1)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return 2207052, f"The media could not be fetched from this URI: {exc}"
    info = inspect_image(data)
    if len(data) > MAX_IMAGE_BYTES:
        return 2207004, "The image is too large to download (8 MB at most)."
    if info.mime != "image/jpeg" or not info.width or not info.height:
        return 2207005, "The image format is not supported (JPEG only)."
    if not RATIOS[0] <= info.width / info.height <= RATIOS[1]:
        return 2207009, "The aspect ratio is not supported (4:5 to 1.91:1)."
    return None
