"""A local web server for the campaign's image files, so the Instagram emulator can fetch them.

Instagram fetches `image_url` itself; in `run --sandbox` the content directory's images are
served here (read-only, GET and HEAD, nothing outside the directory) and the bot's
`media_base_url` points at it.
"""

from __future__ import annotations

import mimetypes
import threading
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit


class _Files(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def __init__(self, root: Path, *args: Any) -> None:
        self.root = root
        super().__init__(*args)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        relative = unquote(urlsplit(self.path).path).lstrip("/")
        target = (self.root / relative).resolve()
        if not target.is_relative_to(self.root) or not target.is_file():
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = target.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", mimetypes.guess_type(target.name)[0] or "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_HEAD = do_GET


class ImageHost(ThreadingHTTPServer):
    """Serves `root` on 127.0.0.1 (a free port unless given) until `stop`."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, root: Path, port: int = 0) -> None:
        self.root = root.resolve()
        super().__init__(("127.0.0.1", port), partial(_Files, self.root))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> ImageHost:
        threading.Thread(target=self.serve_forever, args=(0.05,), name="sandbox-images", daemon=True).start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
