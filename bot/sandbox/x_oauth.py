"""X's OAuth 1.0a PIN flow and app permissions, as `python -m bot connect x` (tweepy's
`OAuth1UserHandler`) uses them.

    POST /oauth/request_token         signed with the app's keys alone; `oauth_callback=oob`
    GET  /console                     the sandbox's developer console: every app's keys
    GET  /oauth/authorize?oauth_token=  the consent page a person opens in a browser
    POST /oauth/authorize             "Authorize app" (or "Cancel"): the page shows a 7-digit PIN
    POST /oauth/access_token          signed with the request token, `oauth_verifier=PIN`
    POST /1.1/oauth/invalidate_token  revoke the signing token

Each sandbox account has its own app (its consumer key). An app's permission is "read",
"read-write" (the default) or "read-write-directmessages", set with the sandbox setting
`app_permissions`. A token granted through the PIN flow keeps the level its app had then, as on
X (re-authorizing is the fix); the fixed sandbox tokens follow their app's current level, as if
regenerated in the developer console. Every authenticated answer carries `x-access-level`, and a
write with a `read` token is X's 403 `oauth1-permissions` problem. Bodies of the OAuth endpoints
are form-encoded text, errors the v1.1 shapes (docs.x.com authentication API reference).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape
from typing import Any

from bot.sandbox.server import Request, Response
from bot.sandbox.webpages import account_choice, hidden_fields, page
from bot.sandbox.x_auth import OAuthHeader, parse_oauth_header
from bot.sandbox.x_errors import unknown_route
from bot.sandbox.x_tweets import XUser

LEVELS = ("read", "read-write", "read-write-directmessages")
INVALID_VERIFIER = "Error processing your OAuth request: Invalid oauth_verifier parameter"


@dataclass
class RequestToken:
    consumer_key: str
    secret: str
    access_type: str | None  # x_auth_access_type: ask for less than the app's level
    pin: str | None = None  # set once a person authorizes
    user: XUser | None = None


@dataclass
class Granted:
    user: XUser
    consumer_key: str
    secret: str
    level: str


@dataclass
class XOAuth:
    """Request tokens, granted tokens, app permissions and revocations of the X emulator."""

    apps: dict[str, tuple[XUser, str]]  # consumer key -> (the app's owner account, consumer secret)
    permissions: dict[str, str] = field(default_factory=dict)  # consumer key -> level
    requests: dict[str, RequestToken] = field(default_factory=dict)
    granted: dict[str, Granted] = field(default_factory=dict)
    revoked: set[str] = field(default_factory=set)

    def level(self, consumer_key: str) -> str:
        return self.permissions.get(consumer_key, "read-write")

    def set_permissions(self, by_account: dict[str, Any], keys_of: dict[str, str]) -> None:
        """The `app_permissions` setting: {account name: level}."""
        for name, level in by_account.items():
            if name not in keys_of:
                raise ValueError(f"app_permissions: no sandbox account {name!r}")
            if level not in LEVELS:
                raise ValueError(f"app_permissions: {level!r} is not one of {', '.join(LEVELS)}")
            self.permissions[keys_of[name]] = str(level)

    def granted_token(self, consumer_key: str, token: str) -> Granted | None:
        found = self.granted.get(token)
        if found is None or found.consumer_key != consumer_key or token in self.revoked:
            return None
        return found

    # -- the flow ---------------------------------------------------------------------------

    def route(
        self,
        request: Request,
        accounts: list[XUser],
        authenticate: Callable[[Request], object],
        signed: Callable[[Request, OAuthHeader, str, str], bool],
    ) -> Response:
        """Answer one of the OAuth routes; `authenticate`/`signed` are the emulator's signature checks."""
        method, path = request.method, request.path
        if path == "/oauth/authorize" and method == "GET":
            return self.consent_page(request, accounts)
        if path == "/console" and method == "GET":
            return self.console_page()
        if path == "/oauth/authorize" and method == "POST":
            return self.decide(request, accounts)
        if method != "POST" or path not in (
            "/oauth/request_token",
            "/oauth/access_token",
            "/1.1/oauth/invalidate_token",
        ):
            return unknown_route()
        oauth = parse_oauth_header(request.headers.get("Authorization"))
        if path == "/1.1/oauth/invalidate_token":
            return (
                self.invalidate(oauth.token) if oauth and authenticate(request) else could_not_authenticate()
            )
        app = self.apps.get(oauth.consumer_key) if oauth else None
        token_secret = self.signing_secret(oauth) if oauth else None
        if (
            oauth is None
            or app is None
            or token_secret is None
            or not signed(request, oauth, app[1], token_secret)
        ):
            return could_not_authenticate()
        if path == "/oauth/request_token":
            return self.request_token(oauth, request)
        return self.access_token(oauth, request)

    def console_page(self) -> Response:
        """The sandbox's developer console: each account's app, its permission and its keys."""
        rows = "".join(
            f"<tr><td>@{escape(user.username)}</td><td>{escape(self.level(key))}</td>"
            f"<td><code>{escape(key)}</code></td><td><code>{escape(secret)}</code></td></tr>\n"
            for key, (user, secret) in self.apps.items()
        )
        body = (
            "<p>Each sandbox account owns one app. Its keys are on its Keys and tokens page on X; "
            "here they are all at once.</p>\n<table>\n<tr><th>App owner</th><th>App permissions</th>"
            f"<th>API Key</th><th>API Key Secret</th></tr>\n{rows}</table>"
        )
        return page(200, "Sandbox developer console", body)

    def request_token(self, oauth: OAuthHeader, request: Request) -> Response:
        if oauth.params.get("oauth_callback") != "oob":
            # Sandbox apps register no callback URL: only the PIN flow is open to them.
            return _v1_error(403, 415, "Callback URL not approved for this client application.")
        access_type = request.arg("x_auth_access_type")
        if access_type not in (None, "read", "write"):
            access_type = None
        token = RequestToken(oauth.consumer_key, secrets.token_urlsafe(24), access_type)
        key = secrets.token_urlsafe(20)
        self.requests[key] = token
        return _form_text(oauth_token=key, oauth_token_secret=token.secret, oauth_callback_confirmed="true")

    def consent_page(self, request: Request, accounts: list[XUser]) -> Response:
        key = request.arg("oauth_token") or ""
        pending = self.requests.get(key)
        if pending is None or pending.pin is not None:
            return _invalid_page()
        owner = self.apps[pending.consumer_key][0]
        names = [str(u.account) for u in accounts]
        labels = {str(u.account): f"@{u.username}" for u in accounts}
        can = "<li>Read posts and your profile</li>"
        if self._level_for(pending) != "read":
            can += "<li>Create and delete posts, repost and like for you</li>"
        body = (
            f"<p><strong>campaign-bot app of @{escape(owner.username)}</strong> "
            "wants to access your X account.</p>\n"
            f"<h2>This application will be able to:</h2>\n<ul class='permissions'>{can}</ul>\n"
            "<form method='post' action='/oauth/authorize'>\n"
            + hidden_fields({"oauth_token": key})
            + account_choice(names, labels)
            + "<button type='submit' name='allow' value='1'>Authorize app</button>\n"
            "<button type='submit' name='cancel' value='1'>Cancel</button>\n</form>"
        )
        return page(200, "Authorize app", body)

    def decide(self, request: Request, accounts: list[XUser]) -> Response:
        form = _body_form(request)
        key = (form.get("oauth_token") or [request.arg("oauth_token") or ""])[0]
        pending = self.requests.get(key)
        if pending is None or pending.pin is not None:
            return _invalid_page()
        if form.get("cancel"):
            del self.requests[key]
            return page(
                200,
                "Authorization cancelled",
                "<p>You have not authorized this app. You can close this window.</p>",
            )
        chosen = (form.get("account") or [str(accounts[0].account)])[0]
        user = next((u for u in accounts if str(u.account) == chosen), None)
        if user is None:
            return _invalid_page()
        pending.user, pending.pin = user, f"{secrets.randbelow(10**7):07d}"
        body = (
            "<p>You've granted access to the app. Next, return to it and enter this PIN to complete "
            f"the authorization process:</p>\n<kbd id='oauth_pin'>{pending.pin}</kbd>"
        )
        return page(200, "Authorized", body)

    def access_token(self, oauth: OAuthHeader, request: Request) -> Response:
        pending = self.requests.get(oauth.token)
        body = _body_form(request)
        verifier = (
            oauth.params.get("oauth_verifier")
            or request.arg("oauth_verifier")
            or (body.get("oauth_verifier") or [""])[0]
        )
        if pending is None or pending.user is None or pending.pin is None or verifier.strip() != pending.pin:
            return Response(401, INVALID_VERIFIER.encode(), {"Content-Type": "text/plain; charset=utf-8"})
        del self.requests[oauth.token]  # a PIN works once
        user = pending.user
        token = f"{user.id}-{secrets.token_urlsafe(30)}"
        secret = secrets.token_urlsafe(33)
        self.granted[token] = Granted(user, pending.consumer_key, secret, self._level_for(pending))
        return _form_text(
            oauth_token=token, oauth_token_secret=secret, user_id=user.id, screen_name=user.username
        )

    def signing_secret(self, oauth: OAuthHeader) -> str | None:
        """The token secret an OAuth-endpoint request is signed with; None if the token is unknown."""
        if not oauth.token:
            return ""
        pending = self.requests.get(oauth.token)
        return pending.secret if pending is not None and pending.consumer_key == oauth.consumer_key else None

    def invalidate(self, token: str) -> Response:
        self.revoked.add(token)
        return Response.json(200, {"access_token": token})

    def _level_for(self, pending: RequestToken) -> str:
        level = self.level(pending.consumer_key)
        return "read" if pending.access_type == "read" else level


def _body_form(request: Request) -> dict[str, list[str]]:
    """A form body, or nothing for a body that is not one (a stranger may send anything)."""
    try:
        return request.form() if request.body else {}
    except (ValueError, UnicodeDecodeError, AttributeError):
        return {}


def _form_text(**fields: str) -> Response:
    # X labels these answers JSON in its docs, but sends form-encoded text.
    from urllib.parse import urlencode

    return Response(200, urlencode(fields).encode(), {"Content-Type": "text/html; charset=utf-8"})


def _v1_error(status: int, code: int, message: str) -> Response:
    return Response.json(status, {"errors": [{"code": code, "message": message}]})


def could_not_authenticate() -> Response:
    return _v1_error(401, 32, "Could not authenticate you.")


def _invalid_page() -> Response:
    return page(
        200,
        "Whoa there!",
        "<p>The request token for this page is invalid. It may have already been used, "
        "or expired because it is too old. Please go back to the site or application that sent you here "
        "and try again; it was probably just a mistake.</p>",
    )
