"""Mastodon: registering the bot's app on an instance and the out-of-band OAuth flow, with
Mastodon.py's own helpers (`create_app`, `auth_request_url`, `log_in`).

One granular scope list is used everywhere (registration, the authorization page and the code
exchange), exactly what the bot calls (docs/accounts.md, Mastodon). Mastodon.py quirks handled
here: `create_app` never checks the HTTP status (a 422 surfaces as `KeyError('client_id')`);
`auth_request_url` and `log_in` read `/.well-known/oauth-authorization-server` first and refuse
its http:// endpoints unless `allow_http` (given only for a loopback address, the sandbox);
`auth_request_url` writes `force_login=False&state=None&lang=None` into the URL, which Rails
reads as `force_login` on, so those are dropped; `log_in` raises when the granted scopes do not
cover the requested ones; and a known `mastodon_version` skips the version probe.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from mastodon import Mastodon
from mastodon.errors import (
    MastodonAPIError,
    MastodonError,
    MastodonIllegalArgumentError,
    MastodonNetworkError,
)

from bot.campaign.model import Account
from bot.errors import AuthFailed, PlatformError, Rejected, Transient
from bot.platforms.mastodon import translate_error
from bot.platforms.onboarding import CannotPost, CodeRefused, Diagnosis

T = TypeVar("T")
OOB = "urn:ietf:wg:oauth:2.0:oob"
APP_NAME = "campaign-bot"
VERSION = "4.3.0"  # the features used exist since 4.3 (granular scopes, app scopes in verify_credentials)
# What each scope is for is in docs/accounts.md.
SCOPES = (
    "read:accounts",
    "read:statuses",
    "read:notifications",
    "read:search",
    "write:statuses",
    "write:media",
)
NEEDED = {  # scope -> what the bot cannot do without it (the broad `read`/`write` cover their children)
    "write:statuses": "post",
    "write:media": "attach images",
    "read:notifications": "see replies and mentions",
    "read:accounts": "check which account it is",
}
AUTHORIZED_APPS = "Preferences > Account > Authorized apps"
REVOKED = (
    "the instance refused the access token: it was revoked ({apps}), the app was deleted "
    "(Preferences > Development), or the account moved. "
    "Run `python -m bot connect mastodon --account {account}`"
)
MISSING = (
    "the token lacks {scopes}, so the bot cannot {what}. "
    "Run `python -m bot connect mastodon --account {account}`: "
    "it asks for exactly the permissions the bot needs (for an app made by hand under "
    "Preferences > Development: tick them there, save, and use a new access token)"
)


def is_loopback(base_url: str) -> bool:
    return urlsplit(base_url).hostname in ("127.0.0.1", "localhost", "::1")


def register_app(base_url: str, timeout: float) -> tuple[str, str]:
    """`POST /api/v1/apps` with the bot's scopes and the out-of-band redirect: (client_id, client_secret)."""
    try:
        client_id, client_secret = Mastodon.create_app(
            APP_NAME, scopes=list(SCOPES), redirect_uris=OOB, api_base_url=base_url, request_timeout=timeout
        )
    except KeyError as exc:  # Mastodon.py reads the body of an error answer as if it were the app
        raise Rejected(f"{base_url} refused to register the app (is it a Mastodon server?)") from exc
    except MastodonNetworkError as exc:
        raise Transient(f"cannot reach {base_url}: is the address right?") from exc
    except (MastodonError, ValueError) as exc:
        raise Rejected(f"{base_url} did not register the app ({type(exc).__name__})") from exc
    return str(client_id), str(client_secret)


@dataclass
class CodeFlow:
    """The out-of-band authorization: `authorization_url()`, a person approves, `finish(code)`."""

    base_url: str
    client_id: str
    client_secret: str
    timeout: float = 20.0

    def _api(self, token: str | None = None) -> Any:
        return Mastodon(
            client_id=self.client_id,
            client_secret=self.client_secret,
            access_token=token,
            api_base_url=self.base_url,
            mastodon_version=VERSION,
            request_timeout=self.timeout,
        )

    def authorization_url(self) -> str:
        api = self._api()
        url = _guard(
            lambda: api.auth_request_url(
                redirect_uris=OOB, scopes=list(SCOPES), allow_http=is_loopback(self.base_url)
            )
        )
        parts = urlsplit(str(url))
        junk = {("force_login", "False"), ("state", "None"), ("lang", "None")}
        query = urlencode([pair for pair in parse_qsl(parts.query) if pair not in junk])
        return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))

    def finish(self, code: str) -> str:
        """The access token for the code; CodeRefused or CannotPost (fewer scopes granted) otherwise."""
        api = self._api()
        try:
            token = api.log_in(
                code=code.strip(),
                redirect_uri=OOB,
                scopes=list(SCOPES),
                allow_http=is_loopback(self.base_url),
            )
        except MastodonIllegalArgumentError as exc:  # Mastodon.py's wrapping of invalid_grant
            raise CodeRefused(
                "the instance did not accept that code: it is mistyped, already used, "
                "or older than 10 minutes"
            ) from exc
        except MastodonAPIError as exc:
            if "Granted scopes" in str(exc):
                raise CannotPost(
                    "the instance granted fewer permissions than the bot asked for; approve the request "
                    "as it is, without removing any"
                ) from exc
            raise _translated(exc) from exc
        except MastodonError as exc:
            raise _translated(exc) from exc
        except KeyError as exc:  # no `scope` in the answer: not a server we can check
            raise Rejected("the instance's answer named no permissions; is it a Mastodon server?") from exc
        return str(token)

    def identify(self, token: str) -> tuple[str, list[str]]:
        """(the account's acct, the scopes of its token's app) with the new token."""
        api = self._api(token)
        me: Mapping[str, Any] = _guard(api.account_verify_credentials)
        app: Mapping[str, Any] = _guard(api.app_verify_credentials)
        return str(me["acct"]), [str(s) for s in app.get("scopes") or []]


def missing_scopes(granted: list[str]) -> list[str]:
    """The bot's needed scopes that `granted` does not cover (`write` covers `write:statuses`)."""
    have = set(granted) | ({"read:accounts"} if "profile" in granted else set())  # 4.3's `profile`
    return [s for s in NEEDED if s not in have and s.split(":")[0] not in have]


def diagnose(account: Account, *, timeout: float) -> Diagnosis:
    flow = CodeFlow(account.base_url, "", "", timeout)
    token = account.credentials.get("access_token", "")
    api = flow._api(token)
    try:
        me: Mapping[str, Any] = _guard(api.account_verify_credentials)
    except AuthFailed:
        return Diagnosis(None, [REVOKED.format(apps=AUTHORIZED_APPS, account=account.name)])
    except Rejected as exc:
        if "403" not in str(exc):
            raise
        return Diagnosis(None, [_missing(["read:accounts"], account.name)])
    except Transient as exc:
        if isinstance(exc.__cause__, MastodonNetworkError):  # no answer at all: the address
            raise Transient(f"cannot reach {account.base_url}: is the account's api_base_url right?") from exc
        raise
    try:
        app: Mapping[str, Any] = _guard(api.app_verify_credentials)
    except Rejected:
        app = {}  # older servers (and some others) do not say; the bot finds out when it posts
    granted = [str(s) for s in app.get("scopes") or []]
    lacking = missing_scopes(granted) if granted else []
    handle = (
        f"@{me['acct']}" if "@" in str(me["acct"]) else f"@{me['acct']}@{urlsplit(account.base_url).netloc}"
    )
    return Diagnosis(handle, [_missing(lacking, account.name)] if lacking else [])


def _missing(scopes: list[str], account: str) -> str:
    what = " or ".join(NEEDED[s] for s in scopes)
    return MISSING.format(scopes=", ".join(scopes), what=what, account=account)


def _guard(send: Callable[[], T]) -> T:
    try:
        return send()
    except MastodonError as exc:
        raise _translated(exc) from exc


def _translated(exc: MastodonError) -> PlatformError:
    return translate_error(exc, {}, datetime.now(UTC))
