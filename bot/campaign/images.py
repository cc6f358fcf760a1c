"""What an image file is and how big it is, read from its first bytes.

Pure, and shared by the adapters and the emulators. The adapters need a MIME type for each
upload (the atproto SDK sends `*/*`) and Bluesky's embed wants each image's aspect ratio; the
emulators check uploads the way the platforms do, from the bytes and not the file name.
Reading PNG, JPEG, GIF and WebP headers ourselves spares a dependency on Pillow for two numbers.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

UNKNOWN = "application/octet-stream"


@dataclass(frozen=True)
class ImageInfo:
    mime: str  # UNKNOWN unless the bytes are a PNG, JPEG, GIF or WebP
    width: int | None = None  # None where the header does not give the size
    height: int | None = None


def inspect_image(data: bytes) -> ImageInfo:
    """The image's MIME type and, where the header gives it, its size in pixels."""
    mime = _image_type(data)
    size = _SIZE_READERS[mime](data) if mime in _SIZE_READERS else None
    return ImageInfo(mime, *size) if size else ImageInfo(mime)


def _image_type(data: bytes) -> str:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return UNKNOWN


def _png_size(data: bytes) -> tuple[int, int] | None:
    if len(data) < 24:
        return None
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _gif_size(data: bytes) -> tuple[int, int] | None:
    if len(data) < 10:
        return None
    width, height = struct.unpack("<HH", data[6:10])
    return width, height


# Start-of-frame markers carry the size; C4 (Huffman tables), C8 and CC (arithmetic coding
# conditioning) share the range but are not frames.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _SOF_MARKERS and pos + 9 <= len(data):
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height
        pos += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if chunk == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


_SIZE_READERS = {
    "image/png": _png_size,
    "image/jpeg": _jpeg_size,
    "image/gif": _gif_size,
    "image/webp": _webp_size,
}


# --- whether a file will be taken ----------------------------------------------------------------

MB = 1024 * 1024


@dataclass(frozen=True)
class ImageLimits:
    """One platform's limits for one image (docs/platforms.md, images)."""

    max_bytes: int
    max_gif_bytes: int
    max_pixels: int | None = None  # width x height
    refused: frozenset[str] = frozenset()  # MIME types the platform does not take
    ratios: tuple[float, float] | None = None  # width / height, at least and at most


IMAGE_LIMITS = {
    "x": ImageLimits(5 * MB, 15 * MB),
    "bluesky": ImageLimits(1_000_000, 1_000_000),
    "mastodon": ImageLimits(16 * MB, 16 * MB, max_pixels=33_177_600),
    # Page photos: JPEG, PNG, GIF, BMP or TIFF up to 10 MB (docs/platforms.md, Facebook).
    "facebook": ImageLimits(10 * MB, 10 * MB, refused=frozenset({"image/webp"})),
    # JPEG only, 8 MiB, 4:5 to 1.91:1 (docs/platforms.md, Instagram).
    "instagram": ImageLimits(
        8 * MB, 8 * MB, refused=frozenset({"image/png", "image/gif", "image/webp"}), ratios=(0.8, 1.91)
    ),
}


def image_problem(data: bytes, platforms: Iterable[str]) -> str | None:
    """Why these bytes would be refused by one of `platforms`, or None: checked at `check` and
    again when a file is read to be sent (it may have changed in between)."""
    info = inspect_image(data)
    if info.mime == UNKNOWN:
        return "is not a PNG, JPEG, GIF or WebP image (whatever its name says)"
    kind = info.mime.removeprefix("image/").upper()
    damage = _DAMAGE_CHECKS[info.mime](data)
    if damage is not None:
        return f"is a damaged {kind} ({damage})"
    if not info.width or not info.height:
        return f"is a {kind} without a width and height in its header"
    for platform in platforms:
        limits = IMAGE_LIMITS.get(platform)
        if limits is None:
            continue
        if info.mime in limits.refused:
            named = "WebP" if info.mime == "image/webp" else kind
            use = "JPEG" if "image/png" in limits.refused else "PNG or JPEG"
            return f"is {named}, which {_NAMES.get(platform, platform)} does not take; use {use}"
        most = limits.max_gif_bytes if info.mime == "image/gif" else limits.max_bytes
        if len(data) > most:
            return f"is {len(data):,} bytes; {_NAMES.get(platform, platform)} takes at most {most:,}"
        if limits.ratios is not None and not limits.ratios[0] <= info.width / info.height <= limits.ratios[1]:
            return (
                f"is {info.width}x{info.height} pixels; {_NAMES.get(platform, platform)} takes aspect "
                "ratios from 4:5 (portrait) to 1.91:1 (landscape)"
            )
        pixels = info.width * info.height
        if limits.max_pixels is not None and pixels > limits.max_pixels:
            return (
                f"is {info.width}x{info.height} pixels; {_NAMES.get(platform, platform)} takes at most "
                f"{limits.max_pixels:,} pixels"
            )
    return None


_NAMES = {
    "x": "X",
    "bluesky": "Bluesky",
    "mastodon": "Mastodon",
    "facebook": "Facebook",
    "instagram": "Instagram",
}


def _png_damage(data: bytes) -> str | None:
    """Every chunk's CRC, IHDR first and IEND last, and the pixel data inflates."""
    pos, seen, inflate = 8, [], zlib.decompressobj()
    try:
        while pos + 12 <= len(data):
            (length,) = struct.unpack(">I", data[pos : pos + 4])
            kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
            (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length] or b"\0\0\0\0")
            if len(body) < length or zlib.crc32(kind + body) != crc:
                return f"chunk {kind.decode('latin-1')!r} is cut short or corrupt"
            seen.append(kind)
            if kind == b"IDAT":
                while body:  # inflate in bounded steps: a small file may expand enormously
                    inflate.decompress(body, 1 << 20)
                    body = inflate.unconsumed_tail
            pos += 12 + length
            if kind == b"IEND":
                break
    except (zlib.error, struct.error):
        return "its pixel data does not decompress"
    if not seen or seen[0] != b"IHDR" or seen[-1] != b"IEND" or b"IDAT" not in seen:
        return "cut short: no end marker" if seen and seen[0] == b"IHDR" else "no image header"
    return None


def _jpeg_damage(data: bytes) -> str | None:
    if _jpeg_size(data) is None:
        return "no frame header"
    # Some cameras append data after the end marker; a file cut short has none at all.
    return None if b"\xff\xd9" in data[-4096:] else "cut short: no end marker"


def _gif_damage(data: bytes) -> str | None:
    return None if b";" in data[-16:] else "cut short: no end marker"


def _webp_damage(data: bytes) -> str | None:
    (size,) = struct.unpack("<I", data[4:8])
    return "cut short" if size + 8 > len(data) or _webp_size(data) is None else None


_DAMAGE_CHECKS = {
    "image/png": _png_damage,
    "image/jpeg": _jpeg_damage,
    "image/gif": _gif_damage,
    "image/webp": _webp_damage,
}
