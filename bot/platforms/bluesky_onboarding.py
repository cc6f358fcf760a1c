"""Bluesky: signing in with an app password, and telling it from the account's main password.

Nothing in createSession's answer says which password was used; the access token's `scope`
claim does (`com.atproto.access` for the main password, `com.atproto.appPass` or
`com.atproto.appPassPrivileged` for an app password). The protocol calls token fields unstable,
so the shape of an app password (`xxxx-xxxx-xxxx-xxxx`, base32) is checked before anything is
sent, and the claim only confirms it (docs/accounts.md, Bluesky). atproto has no OAuth client,
and Bluesky's own guide says password auth is acceptable for bots, so app passwords it is.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from atproto_client import Client, models
from atproto_client.exceptions import InvokeTimeoutError, NetworkError, RequestErrorBase, UnauthorizedError
from atproto_client.models.common import XrpcError
from atproto_client.request import Request
from atproto_core.exceptions import AtProtocolError

from bot.campaign.model import Account
from bot.errors import AuthFailed, Transient
from bot.platforms.bluesky import DEFAULT_SERVICE
from bot.platforms.bluesky_sdk import translate_error
from bot.platforms.onboarding import CannotPost, Diagnosis

APP_PASSWORD = re.compile(r"[a-z2-7]{4}(-[a-z2-7]{4}){3}")
SETTINGS = "Settings > Privacy and security > App passwords"

MAIN_PASSWORD = (
    "this is the account's main password, not an app password. The bot must never hold it: "
    f'in Bluesky open {SETTINGS}, press "Add App Password", and use the password it shows '
    "(run `python -m bot connect bluesky --account {account}`)"
)
STORED = ". Then change the main password, since the bot's settings held it"
REFUSED = (
    "Bluesky did not accept the handle and app password: the app password was deleted ({settings}) "
    "or mistyped, or the handle changed. Make a new app password there and run "
    "`python -m bot connect bluesky --account {account}`"
)
TWO_FACTOR = (
    "Bluesky asked for an email sign-in code: that only happens with the account's main password. "
    f"Use an app password instead ({SETTINGS} > Add App Password)"
)


def looks_like_app_password(text: str) -> bool:
    return APP_PASSWORD.fullmatch(text.strip().lower()) is not None


@dataclass(frozen=True)
class SignIn:
    handle: str
    did: str
    kind: str  # "app", "app-privileged" (may read DMs), "main", or "unknown"


def sign_in(service: str, identifier: str, password: str, timeout: float) -> SignIn:
    """One createSession; which kind of password it was, from the access token's scope."""
    client = Client((service or DEFAULT_SERVICE).rstrip("/"), request=Request(timeout=httpx.Timeout(timeout)))
    try:
        session = client.com.atproto.server.create_session(
            models.ComAtprotoServerCreateSession.Data(
                identifier=identifier.strip().lstrip("@"), password=password
            )
        )
    except UnauthorizedError as exc:
        if _error_name(exc) == "AuthFactorTokenRequired":
            raise CannotPost(TWO_FACTOR) from exc
        raise AuthFailed("Bluesky 401: Invalid identifier or password") from exc
    except (NetworkError, InvokeTimeoutError) as exc:
        if exc.response is not None:  # the SDK's NetworkError also wraps some answers (502)
            raise translate_error(exc, datetime.now(UTC)) from exc
        raise Transient(_unreachable(service, type(exc).__name__)) from exc
    except AtProtocolError as exc:
        raise translate_error(exc, datetime.now(UTC)) from exc
    except httpx.HTTPError as exc:
        raise Transient(_unreachable(service, type(exc).__name__)) from exc
    finally:
        client.request.close()
    kinds = {
        "com.atproto.access": "main",
        "com.atproto.appPass": "app",
        "com.atproto.appPassPrivileged": "app-privileged",
    }
    return SignIn(str(session.handle), str(session.did), kinds.get(_scope(session.access_jwt), "unknown"))


def _unreachable(service: str, why: str) -> str:
    return (
        f"cannot reach {service or DEFAULT_SERVICE} ({why}): is the address right? It is the "
        "account's `service` in config.yaml (https://bsky.social for most accounts)"
    )


def diagnose(account: Account, *, timeout: float) -> Diagnosis:
    creds = account.credentials
    try:
        who = sign_in(account.base_url, creds.get("handle", ""), creds.get("app_password", ""), timeout)
    except AuthFailed:
        return Diagnosis(None, [REFUSED.format(settings=SETTINGS, account=account.name)])
    except CannotPost as exc:
        return Diagnosis(None, [str(exc)])
    if who.kind == "main":
        return Diagnosis(who.handle, [MAIN_PASSWORD.format(account=account.name) + STORED])
    return Diagnosis(who.handle)


def _scope(jwt: str) -> str:
    try:
        payload = jwt.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return ""
    return str(claims.get("scope", "")) if isinstance(claims, dict) else ""


def _error_name(exc: RequestErrorBase) -> str | None:
    content = exc.response.content if exc.response is not None else None
    return content.error if isinstance(content, XrpcError) else None
