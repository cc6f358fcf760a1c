"""X: the PIN-based OAuth 1.0a flow (tweepy's `OAuth1UserHandler`) and what a token may do.

tweepy hard-codes its OAuth host and builds a fresh `OAuth1Session` for the access-token step,
so an adapter mounted once would be lost: `_Handler.oauth` is a property whose setter mounts
the redirect (and a timeout) on every session tweepy makes. tweepy returns only the token and
its secret from `get_access_token`; who it belongs to and its access level come from
`GET /2/users/me` (`x-access-level`: read, read-write, read-write-directmessages), which X sends
on every authenticated answer. A token keeps the level its app had when it was made
(docs/accounts.md, X).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
import tweepy
from requests.adapters import HTTPAdapter

from bot.campaign.model import Account
from bot.errors import AuthFailed, PlatformError, RateLimited, Rejected, Transient
from bot.platforms.onboarding import CannotPost, CodeRefused, Diagnosis
from bot.platforms.x import REAL_HOSTS
from bot.platforms.x_transport import RedirectAdapter

X_API = "https://api.x.com"

READ_ONLY = (
    "the X app can only read, so the bot cannot post. In the X Developer Console (console.x.com) open "
    'the app, and in its User authentication settings set App permissions to "Read and write" and save. '
    "A token keeps the permission it was made with: run `python -m bot connect x --account {account}` "
    "again afterwards (or regenerate the Access Token and Secret on the app's Keys and tokens page)"
)
REVOKED = (
    "X refused the access token: it was revoked (Settings and privacy > Security and account access > "
    "Apps and sessions > Connected apps) or regenerated, or it belongs to another app than the API Key. "
    "Run `python -m bot connect x --account {account}` to make a new one"
)
BAD_APP_KEYS = (
    "X did not accept the API Key and API Key Secret. Copy both again from the app's Keys and tokens page "
    "in the X Developer Console (console.x.com); if they were regenerated, only the newest pair works"
)
PIN_REFUSED = "X did not accept that PIN: it is wrong, was already used, or belongs to an earlier attempt"


class _Timeout(HTTPAdapter):
    """A timeout on every call: requests-oauthlib and tweepy pass none."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs["timeout"] = kwargs.get("timeout") or self.timeout
        return super().send(request, *args, **kwargs)


class _TimeoutRedirect(RedirectAdapter):
    """The sandbox: X's URLs sent to `base_url`, signed for X's host, with a timeout."""

    def __init__(self, base_url: str, timeout: float) -> None:
        super().__init__(base_url)
        self.timeout = timeout

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs["timeout"] = kwargs.get("timeout") or self.timeout
        return super().send(request, *args, **kwargs)


def is_real_x(base_url: str) -> bool:
    return not base_url or base_url.rstrip("/") in REAL_HOSTS


def _route(session: requests.Session, base_url: str, timeout: float) -> None:
    adapter = _Timeout(timeout) if is_real_x(base_url) else _TimeoutRedirect(base_url, timeout)
    for prefix in ("https://api.x.com/", "https://api.twitter.com/"):
        session.mount(prefix, adapter)


class _Handler(tweepy.OAuth1UserHandler):  # type: ignore[misc]  # tweepy ships no types
    def __init__(self, consumer_key: str, consumer_secret: str, base_url: str, timeout: float) -> None:
        self._base_url, self._timeout = base_url, timeout
        super().__init__(consumer_key, consumer_secret, callback="oob")

    @property
    def oauth(self) -> requests.Session:
        return self._oauth

    @oauth.setter
    def oauth(self, session: requests.Session) -> None:
        _route(session, self._base_url, self._timeout)
        self._oauth = session

    def _get_oauth_url(self, endpoint: str) -> str:
        return f"{X_API}/oauth/{endpoint}"  # X's documented host (tweepy still says api.twitter.com)


@dataclass
class PinFlow:
    """One run of the PIN flow: `authorization_url()`, a person approves, then `finish(pin)`."""

    consumer_key: str
    consumer_secret: str
    base_url: str  # "" or X's own for the real X; the sandbox's address otherwise
    timeout: float = 20.0

    def __post_init__(self) -> None:
        self._handler = _Handler(self.consumer_key, self.consumer_secret, self.base_url, self.timeout)

    def authorization_url(self) -> str:
        """Get a request token; the page where a person approves it (on the sandbox: its own address)."""
        url: str = _oauth_call(lambda: self._handler.get_authorization_url(), BAD_APP_KEYS)
        if not is_real_x(self.base_url):
            target, shown = urlsplit(self.base_url), urlsplit(url)
            url = urlunsplit((target.scheme, target.netloc, shown.path, shown.query, ""))
        return url

    def finish(self, pin: str) -> tuple[str, str]:
        """The access token and secret for the PIN; CodeRefused if X does not take it."""
        token, secret = _oauth_call(lambda: self._handler.get_access_token(pin.strip()), PIN_REFUSED)
        return str(token), str(secret)


def _oauth_call(send: Any, refused: str) -> Any:
    try:
        return send()
    except tweepy.TweepyException as exc:
        cause: object = exc
        while isinstance(cause, tweepy.TweepyException) and cause.args:
            cause = cause.args[0]  # tweepy wraps twice on the request-token step
        if isinstance(cause, requests.RequestException) and not hasattr(cause, "status_code"):
            raise Transient(f"cannot reach X ({type(cause).__name__})") from exc
        status = getattr(cause, "status_code", None)
        if status == 401:
            raise (CodeRefused(refused) if refused is PIN_REFUSED else AuthFailed(refused)) from exc
        if status == 429:
            raise RateLimited("X: too many sign-in attempts; wait 15 minutes") from exc
        if isinstance(status, int) and status >= 500:
            raise Transient(f"X answered {status}; try again in a minute") from exc
        raise Rejected(f"X refused the sign-in request ({status or type(cause).__name__})") from exc


@dataclass(frozen=True)
class Identity:
    username: str
    access_level: str  # read | read-write | read-write-directmessages ("" if X did not say)


def identify(
    consumer_key: str, consumer_secret: str, token: str, secret: str, base_url: str, timeout: float
) -> Identity:
    """`GET /2/users/me` with the user's token: the username and the token's access level."""
    client = tweepy.Client(
        consumer_key=consumer_key,
        consumer_secret=consumer_secret,
        access_token=token,
        access_token_secret=secret,
        return_type=requests.Response,
    )
    session = requests.Session()
    _route(session, base_url, timeout)
    client.session = session
    try:
        response: requests.Response = client.get_me(user_auth=True)
    except tweepy.Unauthorized as exc:
        raise AuthFailed("X 401") from exc
    except tweepy.TooManyRequests as exc:
        raise RateLimited("X: users/me is limited (25 a day on Free); try again later") from exc
    except tweepy.HTTPException as exc:
        raise Rejected(f"X {exc.response.status_code}: {'; '.join(exc.api_messages)}") from exc
    except requests.RequestException as exc:
        raise Transient(f"cannot reach X ({type(exc).__name__})") from exc
    finally:
        session.close()
    username = str(response.json().get("data", {}).get("username", ""))
    return Identity(username, response.headers.get("x-access-level", ""))


def diagnose(account: Account, *, timeout: float) -> Diagnosis:
    creds = account.credentials
    try:
        who = identify(
            creds.get("consumer_key", ""),
            creds.get("consumer_secret", ""),
            creds.get("access_token", ""),
            creds.get("access_token_secret", ""),
            account.base_url,
            timeout,
        )
    except AuthFailed:
        return Diagnosis(None, [REVOKED.format(account=account.name)])
    except PlatformError:
        raise
    handle = f"@{who.username}"
    if who.access_level == "read":
        return Diagnosis(handle, [READ_ONLY.format(account=account.name)])
    return Diagnosis(handle)


def check_can_post(who: Identity, account: str) -> None:
    """CannotPost, with the fix, when the token is read-only."""
    if who.access_level == "read":
        raise CannotPost(READ_ONLY.format(account=account))
