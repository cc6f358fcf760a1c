"""The sandbox's control API against a web page in the staff's browser, and broken requests.

`python -m bot sandbox` (the real command) prints a per-run control token in its JSON line; the
`/_sandbox/` routes refuse a request without it (a page's cross-origin `text/plain` POST), one
naming another Host (DNS rebinding), and a request whose Content-Length is negative.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def described() -> Iterator[dict[str, Any]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "sandbox"], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        yield json.loads(process.stdout.readline())
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


def test_a_web_page_cannot_drive_the_sandbox_without_the_runs_token(described: dict[str, Any]) -> None:
    base, token = described["mastodon"]["base_url"], described["mastodon"]["control_token"]
    assert len(token) >= 20 and described["x"]["control_token"] == token
    page = {"kind": "hashtag", "text": "posted by a web page"}
    # What a page can send without a CORS preflight: a text/plain POST, no custom header.
    forged = requests.post(
        f"{base}/_sandbox/audience", data=json.dumps(page), headers={"Content-Type": "text/plain"}, timeout=5
    )
    assert forged.status_code == 403
    wrong = requests.post(
        f"{base}/_sandbox/audience", json=page, headers={"X-Sandbox-Token": "guess"}, timeout=5
    )
    assert wrong.status_code == 403
    # DNS rebinding: the page's own name resolving to 127.0.0.1, so the Host is the page's.
    rebound = requests.post(
        f"{base}/_sandbox/reset", headers={"X-Sandbox-Token": token, "Host": "evil.example"}, timeout=5
    )
    assert rebound.status_code == 403
    state = requests.get(f"{base}/_sandbox/state", headers={"X-Sandbox-Token": token}, timeout=5)
    assert state.status_code == 200 and state.json()["posts"] == []
    ok = requests.post(f"{base}/_sandbox/audience", json=page, headers={"X-Sandbox-Token": token}, timeout=5)
    assert ok.status_code == 200


def test_a_negative_content_length_is_refused_at_once(described: dict[str, Any]) -> None:
    port = int(described["x"]["base_url"].rsplit(":", 1)[1])
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(b"POST /2/tweets HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -1\r\n\r\n{}")
        answer = conn.recv(4096)
    assert answer.startswith(b"HTTP/1.1 400")
    assert time.monotonic() - started < 3
