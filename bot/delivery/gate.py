"""The gate every delivery passes: the global pause (kept in the database) and the stop signal.

`pause` is written by another process (`python -m bot pause`), so a running daemon reads it
from the ledger. Reading it on every check would hammer the database from every delivery
thread; a cached answer no older than `refresh` seconds keeps the 5 s promise (`pause`) with
one read per two seconds. A wait is cut into steps so a backoff notices a pause or a stop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from bot.ledger.deliveries import Ledger


class LiveGate:
    def __init__(
        self,
        ledger: Ledger,
        stop: threading.Event | None = None,
        *,
        refresh: float = 2.0,
        step: float = 0.5,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ledger = ledger
        self.stop = stop or threading.Event()
        self._refresh = refresh
        self._step = step
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._paused = False
        self._read_at: float | None = None

    def paused(self) -> bool:
        with self._lock:
            now = self._monotonic()
            if self._read_at is None or now - self._read_at >= self._refresh:
                self._paused = self.ledger.shared.pause_state().paused
                self._read_at = now
            return self._paused

    def halted(self) -> str | None:
        if self.stop.is_set():
            return "stopping"
        if self.paused():
            return "paused"
        return None

    def wait(self, seconds: float) -> bool:
        """Wait up to `seconds`; False as soon as a stop or a pause is seen."""
        deadline = self._monotonic() + seconds
        while True:
            if self.halted():
                return False
            left = deadline - self._monotonic()
            if left <= 0:
                return True
            if self.stop.wait(min(self._step, left)):
                return False
