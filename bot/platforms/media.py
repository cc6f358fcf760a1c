"""Reading an image to send: the same byte checks as `check`, since the file may have changed since."""

from __future__ import annotations

from bot.campaign.images import image_problem
from bot.errors import Rejected
from bot.platforms import Media


def read_media(media: Media, platform: str) -> bytes:
    """The image's bytes; Rejected (no retry, no upload) when the platform would refuse them."""
    data = media.read()  # a regular file inside content/, reached without a link
    problem = image_problem(data, [platform])
    if problem is not None:
        raise Rejected(f"image {media.path.name} {problem}")
    return data
