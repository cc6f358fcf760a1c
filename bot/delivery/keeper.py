"""Keep delivery claims alive while their publish runs: one thread for every publish at once.

A publish may make several HTTP requests (images, then the post), each within its own deadline,
and another worker must not take the claim over meanwhile. Most publishes end in well under a
second, long before the first renewal is due, so a publish only registers itself (a dict entry
under a lock); the process's one keeper thread wakes only when some publish has run `every`
seconds, renews its claim, and lets go of it `deadline` seconds after it started (a call still
running then is a bug). A thread per publish cost more than the ledger's claim (bench/overhead.py).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

log = logging.getLogger(__name__)

Renew = Callable[[], bool]  # renews one claim; False: it is no longer ours, stop renewing it


@dataclass
class _Held:
    renew: Renew
    every: float
    due: float  # the next renewal (monotonic seconds)
    until: float  # let go then


class _Keeper:
    def __init__(self) -> None:
        self._changed = threading.Condition()  # guards everything below
        self._held: dict[int, _Held] = {}
        self._tokens = itertools.count()
        self._renewing: int | None = None  # the token whose renewal runs now, outside the lock
        self._wakes_at = float("inf")
        self._thread: threading.Thread | None = None

    @contextmanager
    def keeping(self, renew: Renew, every: float, deadline: float) -> Iterator[None]:
        started = time.monotonic()
        token = next(self._tokens)
        with self._changed:
            self._held[token] = _Held(renew, every, started + every, started + deadline)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)
                self._thread.start()
            elif started + every < self._wakes_at:
                self._changed.notify_all()
        try:
            yield
        finally:
            with self._changed:
                self._held.pop(token, None)  # gone already if let go or no longer ours
                while self._renewing == token:
                    self._changed.wait()

    def _run(self) -> None:
        while True:
            with self._changed:
                token, held = self._next_due()
                self._renewing = token
            try:
                kept = held.renew()
            except Exception as exc:  # a database hiccup: the next round tries again
                log.warning("renewing a slow publish's claim failed (%s); trying again", type(exc).__name__)
                kept = True
            with self._changed:
                self._renewing = None
                if not kept:
                    self._held.pop(token, None)  # taken over: the confirm will say so
                self._changed.notify_all()

    def _next_due(self) -> tuple[int, _Held]:
        """Wait (the lock released while waiting) for a renewal that is due; schedule its next."""
        while True:
            now = time.monotonic()
            for token, held in list(self._held.items()):
                if held.until <= now:
                    del self._held[token]  # past the call deadline: let go
                elif held.due <= now:
                    held.due = now + held.every
                    return token, held
            self._wakes_at = min((held.due for held in self._held.values()), default=float("inf"))
            self._changed.wait(None if not self._held else max(self._wakes_at - now, 0.0))


_KEEPER = _Keeper()


def keeping(renew: Renew, every: float, deadline: float) -> contextlib.AbstractContextManager[None]:
    """Call `renew` every `every` seconds while the block runs, for at most `deadline` seconds.
    No renewal runs once the block has returned, so a confirm or a release after it stays."""
    return _KEEPER.keeping(renew, every, deadline)
