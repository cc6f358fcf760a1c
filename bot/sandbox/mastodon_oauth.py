"""Mastodon's OAuth 2 (Doorkeeper), as `python -m bot connect mastodon` and Mastodon.py use it.

    POST /api/v1/apps                         register an app (form or JSON; public)
    GET  /.well-known/oauth-authorization-server   the endpoints (Mastodon 4.3+)
    GET  /oauth/authorize                     the consent page a person opens in a browser
    POST /oauth/authorize                     "Authorize" (`_method=delete`: "Deny")
    GET  /oauth/authorize/native?code=        the page that shows the code (out-of-band)
    POST /oauth/token                         code -> token; client_credentials -> app token
    POST /oauth/revoke                        revoke a token (idempotent)
    GET  /api/v1/apps/verify_credentials      the token's app: name, website, scopes

A token carries the scopes approved on the consent page; each API route needs one of the scopes
in `ROUTE_SCOPES` (the "OAuth:" line of each method in Mastodon's docs), else 403. The fixed
sandbox tokens belong to an app with every scope. Codes last 10 minutes and work once
(Doorkeeper's defaults); tokens never expire and are reused for the same app, account and scopes
(Mastodon turns `reuse_access_token` on). Error texts are Doorkeeper's (config/locales/doorkeeper.en.yml).
"""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from html import escape
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

from bot.sandbox.mastodon_http import ApiError
from bot.sandbox.server import Clock, Request, Response
from bot.sandbox.webpages import account_choice, hidden_fields, page, redirect

OOB = "urn:ietf:wg:oauth:2.0:oob"
CODE_TTL = timedelta(minutes=10)
_ADMIN = "accounts reports domain_allows domain_blocks ip_blocks email_domain_blocks canonical_email_blocks"
_GROUPS = {
    "read": "accounts blocks bookmarks favourites filters follows lists mutes notifications search statuses",
    "write": "accounts blocks bookmarks conversations favourites filters follows lists media mutes "
    "notifications reports statuses",
    "admin:read": _ADMIN,
    "admin:write": _ADMIN,
}
VALID_SCOPES = frozenset(
    ["read", "write", "follow", "push", "profile", "admin:read", "admin:write"]
    + [f"{group}:{child}" for group, children in _GROUPS.items() for child in children.split()]
)
FIXED_TOKEN_SCOPES = ("read", "write", "follow", "push")
OUTSIDE_SCOPES = "This action is outside the authorized scopes"

# (method, path pattern) -> scopes of which the token needs one.
ROUTE_SCOPES: list[tuple[str, re.Pattern[str], tuple[str, ...]]] = [
    ("POST", re.compile(r"/api/v1/statuses"), ("write", "write:statuses")),
    ("DELETE", re.compile(r"/api/v1/statuses/[^/]+"), ("write", "write:statuses")),
    ("POST", re.compile(r"/api/v1/statuses/[^/]+/(un)?reblog"), ("write", "write:statuses")),
    ("POST", re.compile(r"/api/v[12]/media"), ("write", "write:media")),
    ("GET", re.compile(r"/api/v1/media/[^/]+"), ("write", "write:media")),
    ("GET", re.compile(r"/api/v1/notifications(/[^/]+)?"), ("read", "read:notifications")),
    ("GET", re.compile(r"/api/v1/accounts/verify_credentials"), ("read", "read:accounts", "profile")),
    ("GET", re.compile(r"/api/v1/statuses/[^/]+(/context)?"), ("read", "read:statuses")),
    ("GET", re.compile(r"/api/v1/accounts/[^/]+/statuses"), ("read", "read:statuses")),
]

_DESCRIPTIONS = {  # Doorkeeper's error_description texts
    "invalid_grant": "The provided authorization grant is invalid, expired, revoked, does not match the "
    "redirection URI used in the authorization request, or was issued to another client.",
    "invalid_client": "Client authentication failed due to unknown client, no client authentication "
    "included, or unsupported authentication method.",
    "invalid_scope": "The requested scope is invalid, unknown, or malformed.",
    "invalid_redirect_uri": "The requested redirect uri is malformed or doesn't match client redirect URI.",
    "unsupported_response_type": "The authorization server does not support this response type.",
    "unsupported_grant_type": "The authorization grant type is not supported by the authorization server.",
    "access_denied": "The resource owner or authorization server denied the request.",
    "invalid_request": "The request is missing a required parameter, includes an unsupported parameter "
    "value, or is otherwise malformed.",
}


def scopes_of(text: str | None, default: str = "read") -> tuple[str, ...]:
    """A `scope`/`scopes` value: space-separated (a form's `+` is already a space)."""
    words = (text or "").split()
    return tuple(dict.fromkeys(words)) if words else (default,)


def covers(granted: tuple[str, ...], wanted: str) -> bool:
    """Whether a token with `granted` has `wanted` (`read` covers `read:statuses`, ...)."""
    return wanted in granted or (":" in wanted and wanted.rsplit(":", 1)[0] in granted)


@dataclass
class App:
    id: str
    name: str
    website: str | None
    scopes: tuple[str, ...]
    redirect_uris: tuple[str, ...]
    client_id: str
    client_secret: str

    def json(self, *, with_secret: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "website": self.website,
            "scopes": list(self.scopes),
            "redirect_uri": "\n".join(self.redirect_uris),
            "redirect_uris": list(self.redirect_uris),
        }
        if with_secret:
            body |= {
                "client_id": self.client_id,
                "client_secret": self.client_secret,
                "client_secret_expires_at": 0,
            }
        return body


@dataclass
class Grant:
    """An authorization code or an access token: who approved which app for which scopes."""

    app: App
    account: str | None  # None: an app token (client_credentials)
    scopes: tuple[str, ...]
    redirect_uri: str = ""
    issued_at: datetime | None = None
    revoked: bool = False


@dataclass
class OAuthServer:
    clock: Clock
    accounts: list[str]  # our sandbox accounts, who may approve on the consent page
    apps: dict[str, App] = field(default_factory=dict)  # by client_id
    codes: dict[str, Grant] = field(default_factory=dict)
    tokens: dict[str, Grant] = field(default_factory=dict)
    fixed_app: App = field(
        default_factory=lambda: App(
            "1", "campaign-bot sandbox", None, FIXED_TOKEN_SCOPES, (OOB,), "fixed", "fixed"
        )
    )

    def handles(self, request: Request) -> bool:
        path = request.path
        return (
            path.startswith("/oauth/")
            or path == "/.well-known/oauth-authorization-server"
            or path.rstrip("/") in ("/api/v1/apps", "/api/v1/apps/verify_credentials")
        )

    def account_of(self, token: str) -> str | None:
        grant = self.tokens.get(token)
        return grant.account if grant is not None and not grant.revoked else None

    def check_scope(self, request: Request, token: str | None) -> None:
        """403 when the route needs a scope the token lacks (fixed sandbox tokens have them all)."""
        grant = self.tokens.get(token or "")
        if grant is None or grant.revoked:
            return
        for method, pattern, needed in ROUTE_SCOPES:
            if method == request.method and pattern.fullmatch(request.path):
                if not any(covers(grant.scopes, scope) for scope in needed):
                    raise ApiError(403, OUTSIDE_SCOPES)
                return

    def handle(self, request: Request, base_url: str, fixed_token: bool, token: str | None) -> Response:
        method, path = request.method, request.path.rstrip("/")
        if path == "/.well-known/oauth-authorization-server" and method == "GET":
            return Response.json(200, self._metadata(base_url))
        if path == "/api/v1/apps" and method == "POST":
            return self._register(request)
        if path == "/api/v1/apps/verify_credentials" and method == "GET":
            grant = self.tokens.get(token or "")
            if fixed_token:
                return Response.json(200, self.fixed_app.json(with_secret=False))
            if grant is None or grant.revoked:
                raise ApiError(401, "The access token is invalid")
            return Response.json(200, grant.app.json(with_secret=False))
        if path == "/oauth/authorize" and method == "GET":
            return self._consent_page(request)
        if path == "/oauth/authorize" and method in ("POST", "DELETE"):
            return self._decide(request)
        if path == "/oauth/authorize/native" and method == "GET":
            return self._native_page(request)
        if path == "/oauth/token" and method == "POST":
            return self._token(request)
        if path == "/oauth/revoke" and method == "POST":
            return self._revoke(request)
        raise ApiError(404, "Not Found")

    # -- apps ------------------------------------------------------------------------------

    def _register(self, request: Request) -> Response:
        form = _form(request)
        name = (form.get("client_name") or [""])[0].strip()
        uris = [line.strip() for value in form.get("redirect_uris", []) for line in value.splitlines()]
        uris = [uri for uri in uris if uri]
        scopes = scopes_of((form.get("scopes") or [""])[0])
        problems = []
        if not name:
            problems.append("Name can't be blank")
        if not uris:
            problems.append("Redirect URI can't be blank")
        elif not all(uri == OOB or urlsplit(uri).scheme for uri in uris):
            problems.append("Redirect URI must be an absolute URI.")
        if not set(scopes) <= VALID_SCOPES:
            problems.append("Scopes must be from the list of supported scopes")  # wording not verified
        if problems:
            raise ApiError(422, "Validation failed: " + ", ".join(problems))
        website = (form.get("website") or [""])[0] or None
        app = App(
            str(len(self.apps) + 2),
            name[:60],
            website,
            scopes,
            tuple(uris),
            secrets.token_urlsafe(32),
            secrets.token_urlsafe(32),
        )
        self.apps[app.client_id] = app
        return Response.json(200, app.json(with_secret=True))

    # -- the consent page ------------------------------------------------------------------

    def _authorization(self, params: dict[str, list[str]]) -> tuple[App, str, tuple[str, ...]]:
        """The app, redirect URI and scopes a consent request names; ValueError(error) if invalid."""

        def one(name: str) -> str:
            return (params.get(name) or [""])[0]

        app = self.apps.get(one("client_id"))
        if app is None:
            raise ValueError("invalid_client")
        redirect_uri = one("redirect_uri")
        if redirect_uri not in app.redirect_uris:
            raise ValueError("invalid_redirect_uri")
        if one("response_type") != "code":
            raise ValueError("unsupported_response_type")
        scopes = scopes_of(one("scope"))
        if not set(scopes) <= set(app.scopes):
            raise ValueError("invalid_scope")
        return app, redirect_uri, scopes

    def _consent_page(self, request: Request) -> Response:
        try:
            app, redirect_uri, scopes = self._authorization(request.query)
        except ValueError as exc:
            return _error_page(str(exc))
        fields = {
            "client_id": app.client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "scope": " ".join(scopes),
            "state": request.arg("state") or "",
        }
        listed = "".join(f"<li>{escape(scope)}</li>" for scope in scopes)
        form = (
            f"<p><strong>{escape(app.name)}</strong> would like permission to access your account. "
            "It is a third-party application. If you do not trust it, then you should not authorize it.</p>\n"
            f"<h2>Review permissions</h2>\n<ul class='scopes'>{listed}</ul>\n"
            "<form method='post' action='/oauth/authorize'>\n"
            + hidden_fields(fields)
            + account_choice(self.accounts, {n: f"@{n}" for n in self.accounts})
            + "<button type='submit' name='button' value='authorize'>Authorize</button>\n"
            "<button type='submit' name='_method' value='delete'>Deny</button>\n</form>"
        )
        return page(200, "Authorization required", form)

    def _decide(self, request: Request) -> Response:
        form = _form(request)
        try:
            app, redirect_uri, scopes = self._authorization(form)
        except ValueError as exc:
            return _error_page(str(exc))
        state = (form.get("state") or [""])[0]
        if request.method == "DELETE" or (form.get("_method") or [""])[0].lower() == "delete":
            if redirect_uri == OOB:
                return _error_page("access_denied")
            return redirect(_with_query(redirect_uri, error="access_denied", state=state))
        account = (form.get("account") or [self.accounts[0]])[0]
        if account not in self.accounts:
            return _error_page("access_denied")
        code = secrets.token_urlsafe(32)
        self.codes[code] = Grant(app, account, scopes, redirect_uri, self.clock())
        if redirect_uri == OOB:
            return redirect(f"/oauth/authorize/native?code={code}")
        return redirect(_with_query(redirect_uri, code=code, state=state))

    def _native_page(self, request: Request) -> Response:
        code = request.arg("code") or ""
        body = (
            "<p>Copy this authorization code and paste it to the application.</p>\n"
            f"<input class='oauth-code' readonly type='text' value='{escape(code)}'>"
        )
        return page(200, "Authorization code", body)

    # -- tokens ----------------------------------------------------------------------------

    def _token(self, request: Request) -> Response:
        form = _form(request)

        def one(name: str) -> str:
            return (form.get(name) or [""])[0]

        grant_type = one("grant_type")
        if not grant_type:
            return _oauth_error(400, "invalid_request", "Missing required parameter: grant_type.")
        if grant_type not in ("authorization_code", "client_credentials"):
            return _oauth_error(400, "unsupported_grant_type")  # `password` is gone since 4.4
        app = self._client(request, form)
        if app is None:
            return _oauth_error(401, "invalid_client")
        now = self.clock()
        if grant_type == "client_credentials":
            scopes = scopes_of(one("scope"))
            if not set(scopes) <= set(app.scopes):
                return _oauth_error(400, "invalid_scope")
            return self._issue(Grant(app, None, scopes, issued_at=now))
        code = self.codes.get(one("code"))
        if (
            code is None
            or code.app is not app
            or code.redirect_uri != one("redirect_uri")
            or code.issued_at is None
            or now - code.issued_at > CODE_TTL
        ):
            return _oauth_error(400, "invalid_grant")
        del self.codes[one("code")]  # a code works once
        return self._issue(Grant(app, code.account, code.scopes, issued_at=now))

    def _issue(self, grant: Grant) -> Response:
        token = next(
            (
                t
                for t, g in self.tokens.items()
                if not g.revoked and (g.app, g.account, g.scopes) == (grant.app, grant.account, grant.scopes)
            ),
            None,
        )
        if token is None:
            token = secrets.token_urlsafe(32)
            self.tokens[token] = grant
        issued = self.tokens[token].issued_at or self.clock()
        return Response.json(
            200,
            {
                "access_token": token,
                "token_type": "Bearer",
                "scope": " ".join(grant.scopes),
                "created_at": int(issued.timestamp()),
            },
        )

    def _revoke(self, request: Request) -> Response:
        form = _form(request)
        app = self._client(request, form)
        if app is None:
            return _oauth_error(401, "invalid_client")
        grant = self.tokens.get((form.get("token") or [""])[0])
        if grant is not None and grant.app is not app:
            return _oauth_error(403, "unauthorized_client", "You are not authorized to revoke this token")
        if grant is not None:
            grant.revoked = True
        return Response.json(200, {})

    def _client(self, request: Request, form: dict[str, list[str]]) -> App | None:
        """The app whose credentials come in the body or in HTTP Basic (both are Doorkeeper's)."""
        client_id, secret = (form.get("client_id") or [""])[0], (form.get("client_secret") or [""])[0]
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                decoded = base64.b64decode(header[len("Basic ") :], validate=True).decode()
            except (ValueError, UnicodeDecodeError):
                return None
            client_id, _, secret = (unquote(part) for part in decoded.partition(":"))
        app = self.apps.get(client_id)
        return app if app is not None and secrets.compare_digest(app.client_secret, secret) else None

    def _metadata(self, base_url: str) -> dict[str, Any]:
        return {
            "issuer": f"{base_url}/",
            "service_documentation": "https://docs.joinmastodon.org/",
            "authorization_endpoint": f"{base_url}/oauth/authorize",
            "token_endpoint": f"{base_url}/oauth/token",
            "app_registration_endpoint": f"{base_url}/api/v1/apps",
            "revocation_endpoint": f"{base_url}/oauth/revoke",
            "userinfo_endpoint": f"{base_url}/oauth/userinfo",
            "scopes_supported": sorted(VALID_SCOPES),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query", "fragment", "form_post"],
            "grant_types_supported": ["authorization_code", "client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
        }


def _form(request: Request) -> dict[str, list[str]]:
    """A form or JSON body, with the query string's parameters under it (Rails merges both)."""
    try:
        body = request.form()
    except (ValueError, UnicodeDecodeError):
        body = {}
    return {**request.query, **body}


def _oauth_error(status: int, error: str, description: str | None = None) -> Response:
    return Response.json(status, {"error": error, "error_description": description or _DESCRIPTIONS[error]})


def _error_page(error: str) -> Response:
    return page(400, "An error has occurred", f"<p class='error'>{escape(_DESCRIPTIONS[error])}</p>")


def _with_query(uri: str, **params: str) -> str:
    return uri + ("&" if "?" in uri else "?") + urlencode({k: v for k, v in params.items() if v})
