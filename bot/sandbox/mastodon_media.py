"""Media attachments: uploads, the asynchronous processing path, and what a status may attach.

Real Mastodon answers an image upload with 200 and its url; video and audio are transcoded
after the answer: 202 with `url: null`, then `GET /api/v1/media/:id` answers 206 until done and
200 after. In the recording (Mastodon.py's cassette test_media_post[True]) the first poll was
already a 200, and so it is here by default. The setting `media_processing` sends images down
the same path and makes it slow: one 206 first, then 200 (or 5 s after the upload on the
emulator's clock, whichever comes first).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from bot.campaign.images import UNKNOWN, inspect_image
from bot.sandbox.mastodon_entities import DESCRIPTION_LIMIT, MAX_MEDIA_ATTACHMENTS, Actor, Media, media_json
from bot.sandbox.mastodon_http import ApiError
from bot.sandbox.mastodon_instance import SUPPORTED_MIME_TYPES
from bot.sandbox.mastodon_store import MastodonStore
from bot.sandbox.server import Request

IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp", "image/avif", "image/heic")
VIDEO_TYPES = ("video/mp4", "video/webm", "video/quicktime", "video/ogg")
PROCESSING_TIME = timedelta(seconds=5)
NOT_READY = "Cannot attach files that have not finished processing. Try again in a moment!"


def processing(media: Media, now: datetime) -> bool:
    return media.polls_until_ready > 0 and now - media.created_at < PROCESSING_TIME


def upload_media(
    store: MastodonStore, request: Request, owner: Actor, *, v2: bool, process_images: bool
) -> tuple[int, Media]:
    """POST /api/v{1,2}/media (multipart `file`, `description`, `focus`): (status code, media)."""
    parts = request.multipart() if "multipart/" in request.headers.get("Content-Type", "") else {}
    files = parts.get("file")
    if not files or not files[0].data:
        raise ApiError(422, "Validation failed: File can't be blank")
    description = parts["description"][0].data.decode() if parts.get("description") else None
    if description is not None and len(description) > DESCRIPTION_LIMIT:
        raise ApiError(
            422, f"Validation failed: Description is too long (maximum is {DESCRIPTION_LIMIT} characters)"
        )
    data = files[0].data
    mime_type = sniff_mime_type(data, files[0].content_type)
    if mime_type not in SUPPORTED_MIME_TYPES:
        raise ApiError(422, "Validation failed: File content type is invalid, File is invalid")
    kind = "image" if mime_type in IMAGE_TYPES else "video" if mime_type in VIDEO_TYPES else "audio"
    focus = None
    if parts.get("focus"):
        x, _, y = parts["focus"][0].data.decode().partition(",")
        focus = (float(x), float(y or 0))
    image = inspect_image(data)
    width, height = (image.width or 0, image.height or 0) if kind == "image" else (640, 640)
    # v1 media answered only once processed; v2 answers at once and processes afterwards.
    asynchronous = v2 and (kind != "image" or process_images)
    media = Media(
        id=store.new_id(),
        owner=owner,
        kind=kind,
        mime_type=mime_type,
        description=description,
        created_at=store.clock(),
        width=width,
        height=height,
        focus=focus,
        # Polls until the url is there: the first (default, as recorded) or the second.
        polls_until_ready=(2 if process_images else 1) if asynchronous else 0,
    )
    store.media[media.id] = media
    return (202 if asynchronous else 200), media


def poll_media(
    store: MastodonStore, owner: Actor, media_id: str, base_url: str
) -> tuple[int, dict[str, Any]]:
    """GET /api/v1/media/:id: 206 with `url: null` while processing, then 200."""
    media = store.media.get(media_id)
    if media is None or media.owner is not owner:
        raise ApiError(404, "Not Found")
    if processing(media, store.clock()):
        media.polls_until_ready -= 1
    else:
        media.polls_until_ready = 0
    return (206 if media.polls_until_ready > 0 else 200), media_json(media, base_url)


def attachable_media(store: MastodonStore, ids: list[str], author: Actor) -> list[Media]:
    """The uploads a new status may carry: the author's, unattached, processed, at most four."""
    if len(ids) > MAX_MEDIA_ATTACHMENTS:
        raise ApiError(422, f"Cannot attach more than {MAX_MEDIA_ATTACHMENTS} files")
    found = [store.media.get(i) for i in ids]
    missing = [
        i for i, m in zip(ids, found, strict=True) if m is None or m.owner is not author or m.status_id
    ]
    if missing:
        raise ApiError(422, f"Media {', '.join(missing)} not found or already attached to another post")
    media = [m for m in found if m is not None]
    if any(processing(m, store.clock()) for m in media):
        raise ApiError(422, NOT_READY)
    if len(media) > 1 and any(m.kind in ("video", "audio") for m in media):
        raise ApiError(422, "Cannot attach a video to a post that already contains images")
    return media


def sniff_mime_type(data: bytes, declared: str) -> str:
    """The content type from the file's own bytes, as Mastodon checks it, else the declared one."""
    image = inspect_image(data).mime
    if image != UNKNOWN:
        return image
    if data[4:8] == b"ftyp":
        return "video/mp4"
    if data.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm"
    return declared
