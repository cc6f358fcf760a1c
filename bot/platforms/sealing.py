"""A Bluesky session at rest: sealed (AES-256-GCM) under a key every worker already has.

The saved session holds an access and a refresh token; the refresh token lasts 90 days and can
post as the account. In the ledger it is sealed with a key derived (scrypt) from the account's
app password and handle: every worker that may use the session has both in its environment, the
database alone (a backup, a shared PostgreSQL, a stolen laptop's SQLite file) does not. The app
password itself is never stored, so this adds no secret to keep. A session sealed under an old
app password, or a blob that is not ours, reads as no session: the client creates a new one.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "sealed1:"
_SALT = b"campaign-bot bluesky session\x00"


@functools.lru_cache(maxsize=256)
def session_key(app_password: str, handle: str) -> bytes:
    """32 bytes from the app password, salted with the handle (scrypt: slow to guess offline).

    Derived once per account and process (~50 ms of CPU each): a reloaded config opens new
    clients, and each client derives it only when it seals or unseals a session."""
    salt = _SALT + handle.strip().lower().encode()
    return hashlib.scrypt(app_password.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)


def seal(key: bytes, session: str) -> str:
    nonce = os.urandom(12)
    sealed = AESGCM(key).encrypt(nonce, session.encode(), PREFIX.encode())
    return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()


def unseal(key: bytes, blob: str) -> str | None:
    """The session, or None when `blob` was not sealed under this key (or is not sealed at all:
    a plain session from before sealing is not trusted, and is replaced on the next login)."""
    if not blob.startswith(PREFIX):
        return None
    try:
        raw = base64.urlsafe_b64decode(blob[len(PREFIX) :].encode())
        return AESGCM(key).decrypt(raw[:12], raw[12:], PREFIX.encode()).decode()
    except (InvalidTag, ValueError):
        return None
