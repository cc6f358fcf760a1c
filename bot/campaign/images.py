"""What an image file is and how big it is, read from its first bytes.

Pure, and shared by the adapters and the emulators. The adapters need a MIME type for each
upload (the atproto SDK sends `*/*`) and Bluesky's embed wants each image's aspect ratio; the
emulators check uploads the way the platforms do, from the bytes and not the file name.
Reading PNG, JPEG, GIF and WebP headers ourselves spares a dependency on Pillow for two numbers.
"""

from __future__ import annotations

import struct
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
