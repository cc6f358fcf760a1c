"""Bluesky record keys (TIDs): chosen when a delivery is claimed, before the first attempt.

A post created with an explicit rkey can be looked up by it after a lost answer (getRecord),
which is Bluesky's only lever against a double post. The same string serves X and Mastodon as
a nonce (Mastodon's Idempotency-Key), so the ledger stores one kind of value for every platform.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime

_S32 = "234567abcdefghijklmnopqrstuvwxyz"
TID_PATTERN = re.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")


def make_tid(now: datetime, clock_id: int | None = None) -> str:
    """A TID for `now`: 53 bits of microseconds since the epoch, then 10 bits of clock id.

    The clock id is random unless given, so two workers claiming in the same microsecond
    still pick different keys (as the TypeScript `TID.next()` does).
    """
    micros = int(now.timestamp() * 1_000_000)
    clock = secrets.randbelow(1024) if clock_id is None else clock_id & 1023
    value = (micros << 10) | clock
    return "".join(_S32[(value >> (60 - 5 * i)) & 31] for i in range(13))


def is_tid(value: str) -> bool:
    return TID_PATTERN.fullmatch(value) is not None
