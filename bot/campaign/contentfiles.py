"""Reading a content file at send time, when `check` is long past.

Staff and scripts change `content/` under a running daemon: an image checked an hour ago may be
a link to `../../.env` now. So every read at send time opens the file again, component by
component below the content folder without following a link (`O_NOFOLLOW` through `openat`),
takes it only if it is a regular file no larger than the caller's limit, and an image only if
its bytes are the type its name claims. Anything else is a `Rejected` naming the file (never its
bytes), so the part fails alone before a byte goes out.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path, PurePath

from bot.campaign.images import inspect_image
from bot.errors import Rejected

# What any network takes at most (Mastodon's image limit; X takes 5 MB, Bluesky 1 MB).
MAX_CONTENT_BYTES = 16 * 1024 * 1024
SUFFIX_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
}


def read_content_file(root: Path, path: Path, max_bytes: int = MAX_CONTENT_BYTES) -> bytes:
    """The bytes of `path`, which must lie below the content folder `root` (itself may be a link,
    as staff set it up) as a regular file reached without any link."""
    shown = _shown(root, path)
    try:
        parts = PurePath(os.path.relpath(path, root)).parts
    except ValueError:
        parts = ("..",)
    if not parts or any(p in ("..", ".", "") for p in parts):
        raise Rejected(f"{shown}: not inside the content folder")
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise Rejected(f"{shown}: the content folder cannot be opened ({exc.strerror})") from None
    try:
        for name in parts[:-1]:
            inner = os.open(name, flags | os.O_DIRECTORY, dir_fd=folder)
            os.close(folder)
            folder = inner
        # O_NONBLOCK: a FIFO put in the image's place must not hang the worker on open.
        fd = os.open(parts[-1], flags | os.O_NONBLOCK, dir_fd=folder)
    except OSError as exc:
        raise Rejected(f"{shown}: {_why(exc)}") from None
    finally:
        os.close(folder)
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise Rejected(f"{shown}: not a regular file")
        data = file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise Rejected(f"{shown}: larger than {max_bytes:,} bytes")
    return data


def read_content_image(root: Path, path: Path, max_bytes: int = MAX_CONTENT_BYTES) -> bytes:
    """`read_content_file`, and the bytes must be the image type the file's name claims."""
    data = read_content_file(root, path, max_bytes)
    claimed = SUFFIX_TYPES.get(path.suffix.lower())
    found = inspect_image(data).mime
    if claimed is None or found != claimed:
        raise Rejected(f"{_shown(root, path)}: not the {claimed or 'image'} its name claims")
    return data


def _shown(root: Path, path: Path) -> str:
    return f"content/{os.path.relpath(path, root)}" if path.is_relative_to(root) else path.name


def _why(exc: OSError) -> str:
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        return "a link (or under one), not a file inside the content folder"
    if exc.errno == errno.ENOENT:
        return "missing"
    return exc.strerror or type(exc).__name__
