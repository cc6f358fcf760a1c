"""Bluesky sessions, rate limits and XRPC error bodies, as the PDS answers them.

Sessions are HS256 JWTs (the SDK decodes the payload and needs an integer `exp`; it never checks
the signature, but the emulator does, so a tampered token is `InvalidToken`). Refresh tokens
rotate: a used one answers 400 `ExpiredToken` "Token has been revoked". Token errors are 400s,
as in the PDS's auth verifier (`InvalidRequestError`), not 401s; a missing token is 401.

Rate limits (docs.bsky.app rate-limits guide, PDS `rate-limits.ts`) are
fixed windows on the injected clock. With the `none` preset nothing is refused, but the
`RateLimit-*` headers still count down as the real ones would.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.sandbox.bluesky_appview import Actor, Network
from bot.sandbox.bluesky_xrpc import XrpcError, xrpc_error
from bot.sandbox.server import Clock, RateWindow, Request, Response

ACCESS_TTL = timedelta(minutes=120)
REFRESH_TTL = timedelta(days=90)
SERVICE_DID = "did:web:sandbox.test"


@dataclass(frozen=True)
class RateLimit:
    name: str
    points: int
    window: timedelta

    @property
    def policy(self) -> str:
        return f"{self.points};w={int(self.window.total_seconds())}"


_MIN5, _HOUR, _DAY = timedelta(minutes=5), timedelta(hours=1), timedelta(days=1)
RATE_LIMITS: dict[str, tuple[RateLimit, ...]] = {
    "global": (RateLimit("global", 3000, _MIN5),),  # every request, per IP
    "createSession": (RateLimit("session-5m", 30, _MIN5), RateLimit("session-day", 300, _DAY)),  # per account
    "write": (
        RateLimit("write-hour", 5000, _HOUR),
        RateLimit("write-day", 35000, _DAY),
    ),  # per DID, in points
    "uploadBlob": (RateLimit("blob-day", 1000, _DAY),),  # per DID; in the PDS source, not the docs
}
WRITE_POINTS = {
    "com.atproto.repo.createRecord": 3,
    "com.atproto.repo.putRecord": 2,
    "com.atproto.repo.deleteRecord": 1,
}
_UNLIMITED = 10**12


@dataclass
class Authority:
    """Issues and checks tokens; counts rate limits."""

    clock: Clock
    rates: RateWindow
    enforce: bool
    _secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    _refresh_revoked: dict[str, bool] = field(default_factory=dict)  # jti -> revoked
    _refreshed_scope: dict[str, str] = field(default_factory=dict)  # jti -> the access scope it renews
    email_auth_factor: bool = False  # the setting: main-password sign-ins want an emailed code

    # -- sessions -------------------------------------------------------------------------

    def create_session(self, request: Request, net: Network) -> tuple[dict[str, Any], dict[str, str]]:
        try:
            body = request.json() or {}
        except ValueError:
            body = {}
        identifier = str(body.get("identifier", "")).lower()
        self.spend(RATE_LIMITS["global"], ("global",))
        headers = self.spend(RATE_LIMITS["createSession"], ("createSession", identifier))
        actor = net.actor(identifier) if identifier else None
        password = str(body.get("password", ""))
        # As the PDS: the main password first, then app passwords. Which one it was shows only
        # in the access token's `scope` (com.atproto.access vs com.atproto.appPass).
        if actor is not None and actor.password and hmac.compare_digest(password, actor.password):
            if self.email_auth_factor:
                # bsky.social emails a code; the sandbox sends none, so no code is ever right.
                if body.get("authFactorToken"):
                    raise XrpcError(401, "AuthFactorTokenRequired", "Token is invalid", headers)
                message = "A sign in code has been sent to your email address"
                raise XrpcError(401, "AuthFactorTokenRequired", message, headers)
            return self._issue(actor, "com.atproto.access"), headers
        if (
            actor is None
            or actor.app_password is None
            or not hmac.compare_digest(password, actor.app_password)
        ):
            raise XrpcError(401, "AuthenticationRequired", "Invalid identifier or password", headers)
        return self._issue(actor, "com.atproto.appPass"), headers

    def refresh_session(self, request: Request, net: Network) -> tuple[dict[str, Any], dict[str, str]]:
        headers = self.spend(RATE_LIMITS["global"], ("global",))
        payload = self._payload(request, headers)
        if payload is None:
            raise XrpcError(401, "AuthMissing", "Authentication Required", headers)
        if payload.get("scope") != "com.atproto.refresh":
            raise XrpcError(400, "InvalidToken", "Invalid token type", headers)
        if payload["exp"] <= self.clock().timestamp():
            raise XrpcError(400, "ExpiredToken", "Token has expired", headers)
        jti = str(payload.get("jti"))
        actor = net.actors.get(str(payload.get("sub")))
        if self._refresh_revoked.get(jti, True) or actor is None:
            raise XrpcError(400, "ExpiredToken", "Token has been revoked", headers)
        self._refresh_revoked[jti] = True
        return self._issue(actor, self._refreshed_scope.pop(jti, "com.atproto.appPass")), headers

    def verify_access(self, request: Request, net: Network, *, required: bool) -> Actor | None:
        payload = self._payload(request, {})
        if payload is None:
            if required:
                raise XrpcError(401, "AuthMissing", "Authentication Required")
            return None
        if payload.get("scope") not in ("com.atproto.access", "com.atproto.appPass"):
            raise XrpcError(400, "InvalidToken", "Bad token scope")
        if payload["exp"] <= self.clock().timestamp():
            raise XrpcError(400, "ExpiredToken", "Token has expired")
        actor = net.actors.get(str(payload.get("sub")))
        if actor is None:
            raise XrpcError(400, "InvalidToken", "Token could not be verified")
        return actor

    def account_name(self, request: Request, net: Network) -> str | None:
        """Whose request this is, for faults aimed at one account."""
        actor: Actor | None = None
        if request.path.endswith("com.atproto.server.createSession"):
            try:
                actor = net.actor(str((request.json() or {}).get("identifier", "")))
            except ValueError:
                return None
        else:
            try:
                payload = self._payload(request, {})
            except XrpcError:
                return None
            actor = net.actors.get(str(payload.get("sub"))) if payload else None
        return actor.name if actor is not None else None

    def _issue(self, actor: Actor, scope: str) -> dict[str, Any]:
        now = int(self.clock().timestamp())
        jti = secrets.token_urlsafe(24)
        self._refresh_revoked[jti] = False
        self._refreshed_scope[jti] = scope
        access = {
            "scope": scope,
            "sub": actor.did,
            "iat": now,
            "exp": now + int(ACCESS_TTL.total_seconds()),
            "aud": SERVICE_DID,
        }
        refresh = {
            "scope": "com.atproto.refresh",
            "sub": actor.did,
            "aud": SERVICE_DID,
            "jti": jti,
            "iat": now,
            "exp": now + int(REFRESH_TTL.total_seconds()),
        }
        # No didDoc: the SDK would move to the PDS it names (atproto_client/client/session.py).
        return {
            "accessJwt": self._sign({"typ": "at+jwt", "alg": "HS256"}, access),
            "refreshJwt": self._sign({"typ": "refresh+jwt", "alg": "HS256"}, refresh),
            "handle": actor.handle,
            "did": actor.did,
            "emailConfirmed": True,
            "emailAuthFactor": False,
            "active": True,
        }

    def _sign(self, header: dict[str, str], payload: dict[str, Any]) -> str:
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
        signature = hmac.new(self._secret, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(signature)}"

    def _payload(self, request: Request, headers: dict[str, str]) -> dict[str, Any] | None:
        """The verified payload of the bearer token; None without one; InvalidToken if it is bad."""
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return None
        token = auth.removeprefix("Bearer ").strip()
        invalid = XrpcError(400, "InvalidToken", "Token could not be verified", headers)
        try:
            signing_input, signature = token.rsplit(".", 1)
            expected = hmac.new(self._secret, signing_input.encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(_unb64(signature), expected):
                raise invalid
            payload = json.loads(_unb64(signing_input.split(".", 1)[1]))
        except (ValueError, IndexError):
            raise invalid from None
        if not isinstance(payload, dict) or not isinstance(payload.get("exp"), int):
            raise invalid
        return payload

    # -- rate limits ----------------------------------------------------------------------

    def charge(self, nsid: str, request: Request, actor: Actor | None) -> dict[str, str]:
        """Spend the request's points; the headers of its tightest limit, or raise a 429."""
        headers = self.spend(RATE_LIMITS["global"], ("global",))
        if nsid in WRITE_POINTS and actor is not None:
            return self.spend(RATE_LIMITS["write"], ("write", actor.did), WRITE_POINTS[nsid])
        if nsid == "com.atproto.repo.uploadBlob" and actor is not None:
            return self.spend(RATE_LIMITS["uploadBlob"], ("uploadBlob", actor.did))
        return headers

    def spend(self, limits: tuple[RateLimit, ...], key: tuple[str, ...], cost: int = 1) -> dict[str, str]:
        if self.enforce:
            for limit in limits:
                remaining, reset_at = self.rates.peek((*key, limit.name), limit.points, limit.window)
                if remaining < cost:
                    raise XrpcError(
                        429,
                        "RateLimitExceeded",
                        "Rate Limit Exceeded",
                        self._headers(limit, 0, reset_at, True),
                    )
        tightest: tuple[int, RateLimit, datetime] | None = None
        for limit in limits:
            # With the `none` preset the window is unlimited, and `remaining` is what a real
            # window of `limit.points` would have left.
            _, left, reset_at = self.rates.hit((*key, limit.name), _UNLIMITED, limit.window, cost)
            remaining = max(0, limit.points - (_UNLIMITED - left))
            if tightest is None or remaining < tightest[0]:
                tightest = (remaining, limit, reset_at)
        assert tightest is not None
        return self._headers(tightest[1], tightest[0], tightest[2], False)

    def too_many(self, limit: RateLimit, reset_at: datetime) -> Response:
        headers = self._headers(limit, 0, reset_at, True)
        return xrpc_error(429, headers=headers)

    def _headers(self, limit: RateLimit, remaining: int, reset_at: datetime, refused: bool) -> dict[str, str]:
        reset = math.ceil(reset_at.timestamp())
        headers = {
            "RateLimit-Limit": str(limit.points),
            "RateLimit-Remaining": str(remaining),
            "RateLimit-Reset": str(reset),
            "RateLimit-Policy": limit.policy,
        }
        if refused:
            headers["Retry-After"] = str(max(0, math.ceil(reset - self.clock().timestamp())))
        return headers


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
