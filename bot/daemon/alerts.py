"""Alerts: a JSON POST to `alerts.webhook` when a person should look.

Kinds: `account_unhealthy`, `rejected`, `queue_exhausted`, `queue_expired`, `paused`, `held`,
`resumed`. The body suits Slack-, Matrix- and Discord-style incoming hooks at once (`text` and
`content` carry the same line) and adds structured fields for anything else:

    {"text": "[NoTechForICE] x/main: credentials refused: ...", "content": "...",
     "campaign": "NoTechForICE", "kind": "account_unhealthy", "message": "...", "ts": "..."}

Alerts are sent from one background thread so a slow hook never delays a delivery. A failed
alert is logged (without the URL: hooks embed their token in it) and never raised.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime

log = logging.getLogger("bot.alerts")

Send = Callable[[str, bytes], None]  # (url, body)


def post_json(url: str, body: bytes, timeout: float = 10.0) -> None:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        response.read()


class Alerter:
    """Queue alerts for the webhook; `close()` sends what is queued before a command exits."""

    def __init__(
        self,
        webhook: str | None,
        campaign: str,
        send: Send = post_json,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._webhook = webhook or None
        self._campaign = campaign
        self._send = send
        self._now = now
        self._queue: queue.Queue[bytes | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Alerter(webhook={'set' if self._webhook else 'unset'})"

    def __call__(self, kind: str, message: str) -> None:
        """Send one alert (kind, message) in the background; no-op without a webhook."""
        if self._webhook is None:
            return
        line = f"[{self._campaign}] {message}"
        body = {
            "text": line,
            "content": line,
            "campaign": self._campaign,
            "kind": kind,
            "message": message,
            "ts": self._now().isoformat(timespec="seconds"),
        }
        self._queue.put(json.dumps(body, ensure_ascii=False).encode())
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._drain, name="alerts", daemon=True)
                self._thread.start()

    def _drain(self) -> None:
        while True:
            body = self._queue.get()
            if body is None:
                return
            try:
                assert self._webhook is not None
                self._send(self._webhook, body)
            except Exception as exc:  # any failure of the hook: log it, never take the bot down
                log.warning("alert not delivered: %s", _describe(exc))

    def close(self, timeout: float = 10.0) -> None:
        """Send what is queued (waiting at most `timeout` seconds), then stop the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)


def _describe(exc: Exception) -> str:
    """The failure without the URL, which carries the hook's token."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"webhook answered HTTP {exc.code}"
    if isinstance(exc, urllib.error.URLError):
        return f"webhook unreachable: {type(exc.reason).__name__}"
    return type(exc).__name__
