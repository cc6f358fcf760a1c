"""What every Graph API emulator shares (Facebook Pages and Instagram, on the same conventions).

The wire conventions of graph.facebook.com (docs/platforms.md, Facebook): versioned paths
(`/v27.0/...`, any `vNN.N` accepted, none at all too), `access_token` in the query, the form body
or an `Authorization: Bearer|OAuth` header, an optional `appsecret_proof`, form-encoded or
multipart requests, JSON answers with the error envelope `{"error": {message, type, code,
error_subcode, is_transient, fbtrace_id}}`, `X-App-Usage` / `X-Business-Use-Case-Usage` headers
once enough calls were made, and cursor paging (`data`, `paging.cursors`, `paging.next`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from bot.sandbox.server import Emulator, Request, Response

_VERSION = re.compile(r"^/v\d+\.\d+(?=/|$)")
PAGE_LIMIT_MAX = 100  # a higher `limit` is an error on the real API
USAGE_PERIOD = timedelta(hours=1)


@dataclass
class GraphError(Exception):
    code: int
    message: str
    status: int = 400
    subcode: int | None = None
    type: str = "OAuthException"
    transient: bool = False


# The errors a client meets, by code: (HTTP status, message, type, is_transient).
ERRORS: dict[int, tuple[int, str, str, bool]] = {
    1: (500, "An unknown error occurred", "OAuthException", True),
    2: (500, "An unexpected error has occurred. Please retry your request later.", "OAuthException", True),
    4: (403, "(#4) Application request limit reached", "OAuthException", True),
    17: (400, "(#17) User request limit reached", "OAuthException", True),
    32: (400, "(#32) Page request limit reached", "OAuthException", True),
    100: (400, "(#100) Invalid parameter", "OAuthException", False),
    190: (400, "Invalid OAuth access token - Cannot parse access token", "OAuthException", False),
    200: (403, "(#200) Permissions error", "OAuthException", False),
    368: (
        400,
        "You've already posted this. Posting the same content repeatedly on Facebook isn't allowed.",
        "OAuthException",
        False,
    ),
    506: (400, "(#506) Duplicate status message", "OAuthException", False),
    613: (400, "(#613) Calls to this api have exceeded the rate limit.", "OAuthException", True),
    80001: (
        400,
        "(#80001) There have been too many calls to this Page account. Wait a bit and try again.",
        "OAuthException",
        True,
    ),
    80002: (
        400,
        "(#80002) There have been too many calls to this Instagram account. Wait a bit and try again.",
        "OAuthException",
        True,
    ),
}
RATE_LIMIT_CODES = (4, 17, 32, 613, 80001, 80002)


def coded(code: int, message: str | None = None, subcode: int | None = None) -> GraphError:
    status, default, kind, transient = ERRORS[code]
    return GraphError(code, message or default, status, subcode, kind, transient)


def unversioned(path: str) -> str:
    """`/v27.0/123/feed` -> `/123/feed`; a path without a version is kept."""
    return _VERSION.sub("", path) or "/"


def graph_time(moment: datetime) -> str:
    """`2019-05-17T16:24:04+0000`, as the Graph API writes times."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def parse_time(value: str) -> datetime | None:
    """A `since`/`until` value: a Unix time or a date-time (the API takes both)."""
    try:
        return datetime.fromtimestamp(float(value), tz=UTC)
    except (ValueError, OverflowError):
        pass
    try:
        parsed = datetime.fromisoformat(value.strip().replace("+0000", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def appsecret_proof(app_secret: str, token: str) -> str:
    return hmac.new(app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()


def page_token(name: str) -> str:
    """A Page token derived from the account name: the same on every start, like the others'."""
    return "EAAG" + hashlib.sha256(f"sandbox-page-token:{name}".encode()).hexdigest()


class GraphEmulator(Emulator):
    """The shared layer of the Graph emulators; subclasses answer `route(request, params, token)`.

    Settings every Graph emulator takes (subclasses add their own to `settings`):
        usage_after       calls per token before the usage headers appear (default 3)
        require_proof     true: a call without a valid appsecret_proof is refused (code 100)
    """

    app_secret = "sandbox-app-secret"
    app_id = "1000000000000001"
    # A token's budget per hour under any `--limits` preset but none (LIMIT_CODE past it).
    HOURLY_CALLS = 200
    LIMIT_CODE = 80001  # Pages; Instagram's is 80002
    BUC_TYPE = "pages"  # the `type` of the X-Business-Use-Case-Usage entry

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings: dict[str, Any] = self.default_settings()

    def default_settings(self) -> dict[str, Any]:
        return {"usage_after": 3, "require_proof": False}

    # -- the shared layer's hooks -----------------------------------------------------------

    def fault_paths(self, path: str) -> tuple[str, ...]:
        bare = unversioned(path)
        return (path,) if bare == path else (path, bare)

    def error_response(self, status: int) -> Response:
        code = {401: 190, 403: 200, 400: 100, 429: self.LIMIT_CODE}.get(status, 2 if status >= 500 else 100)
        error = coded(code)
        error.status = status
        return self.error_json(error)

    def coded_error(self, code: int) -> Response:
        if code not in ERRORS:
            raise ValueError(f"unknown Graph error code {code}; known: {sorted(ERRORS)}")
        return self.error_json(coded(code))

    def rate_limited_response(self, reset_at: datetime) -> Response:
        # Minutes, as Meta counts them: a reset within half a minute says 0 (no estimate).
        minutes = max(0, round((reset_at - self.clock()).total_seconds() / 60))
        return self.error_json(
            coded(self.LIMIT_CODE), {"X-Business-Use-Case-Usage": self._buc("0", 100, minutes)}
        )

    def apply_settings(self, settings: dict[str, Any]) -> None:
        unknown = sorted(set(settings) - set(self.settings))
        if unknown:
            raise ValueError(f"unknown settings: {unknown}")
        self.settings.update(settings)

    def reset(self) -> None:
        super().reset()
        self.settings = self.default_settings()

    def state_extra(self) -> dict[str, Any]:
        return {"settings": dict(self.settings)}

    # -- requests ---------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        path = unversioned(request.path)
        with self.lock:
            try:
                params = self.params(request)
                token = self.token_of(request, params)
                self._check_proof(token, params)
                usage = self._spend(token)
                response = self.route(request.method, path, params, token)
            except GraphError as exc:
                return self.error_json(exc)
            if usage is not None:
                response.headers.update(usage)
            return response

    def route(self, method: str, path: str, params: dict[str, Any], token: str | None) -> Response:
        raise NotImplementedError

    def params(self, request: Request) -> dict[str, Any]:
        """Query, then form or multipart fields (text values as str, files as FilePart)."""
        params: dict[str, Any] = {k: v[0] for k, v in request.query.items() if v}
        ctype = request.headers.get("Content-Type", "")
        if request.method in ("POST", "DELETE") and request.body:
            if ctype.startswith("multipart/form-data"):
                for name, parts in request.multipart().items():
                    part = parts[0]
                    is_file = part.filename is not None or not part.content_type.startswith("text/")
                    params[name] = part if is_file else part.data.decode("utf-8", "replace")
            elif ctype.startswith("application/json"):  # the API takes JSON bodies too
                try:
                    body = request.json()
                except (ValueError, UnicodeDecodeError) as exc:
                    raise coded(100, "(#100) The request body could not be read") from exc
                if not isinstance(body, dict):
                    raise coded(100, "(#100) The request body must be a JSON object")
                params.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in body.items()})
            else:
                try:
                    params.update({k: v[0] for k, v in request.form().items() if v})
                except (ValueError, UnicodeDecodeError) as exc:
                    raise coded(100, "(#100) The request body could not be read") from exc
        return params

    def token_of(self, request: Request, params: dict[str, Any]) -> str | None:
        header = request.headers.get("Authorization", "")
        for scheme in ("Bearer ", "OAuth "):
            if header.startswith(scheme):
                return header.removeprefix(scheme).strip()
        token = params.get("access_token")
        return token if isinstance(token, str) else None

    def _check_proof(self, token: str | None, params: dict[str, Any]) -> None:
        proof = params.get("appsecret_proof")
        if token is None or (proof is None and not self.settings["require_proof"]):
            return
        if proof is None:
            raise coded(100, "appsecret_proof argument must be set")
        if not hmac.compare_digest(str(proof), appsecret_proof(self.app_secret, token)):
            raise coded(100, "Invalid appsecret_proof provided in the API argument")

    def usage_key(self, token: str | None) -> str | None:
        """The business object a token's calls count against (the Page), or None."""
        return None

    def _spend(self, token: str | None) -> dict[str, str] | None:
        """Count the call; the usage headers once `usage_after` calls were made, 80001 past the budget."""
        key = self.usage_key(token)
        if key is None:
            return None
        allowed, remaining, reset_at = self.rates.hit(("buc", key), self.HOURLY_CALLS, USAGE_PERIOD)
        used = self.HOURLY_CALLS - remaining
        percent = min(100, used * 100 // self.HOURLY_CALLS)
        minutes = max(1, round((reset_at - self.clock()).total_seconds() / 60))
        if not allowed and self.limits != "none":
            headers = {"X-Business-Use-Case-Usage": self._buc(key, 100, minutes)}
            raise _Limited(self.LIMIT_CODE, headers)
        if used <= int(self.settings["usage_after"]):
            return None
        return {"X-Business-Use-Case-Usage": self._buc(key, percent, 0)}

    def _buc(self, key: str, percent: int, minutes: int) -> str:
        entry = {
            "type": self.BUC_TYPE,
            "call_count": percent,
            "total_cputime": percent // 2,
            "total_time": percent // 2,
            "estimated_time_to_regain_access": minutes,
        }
        return json.dumps({key: [entry]}, separators=(",", ":"))

    def error_json(self, error: GraphError, headers: dict[str, str] | None = None) -> Response:
        if isinstance(error, _Limited):
            headers = {**error.headers, **(headers or {})}
        body: dict[str, Any] = {
            "message": error.message,
            "type": error.type,
            "code": error.code,
            "fbtrace_id": "A" + secrets.token_urlsafe(15),
        }
        if error.subcode is not None:
            body["error_subcode"] = error.subcode
        if error.transient:
            body["is_transient"] = True
        return json_response(error.status, {"error": body}, headers)

    # -- lists ------------------------------------------------------------------------------

    def page_of(
        self, items: Sequence[dict[str, Any]], params: dict[str, Any], path: str, default_limit: int = 25
    ) -> dict[str, Any]:
        """One page of `items` with Graph cursors; `next` carries the caller's token as the real one does."""
        raw_limit = str(params.get("limit", default_limit))
        if not raw_limit.isdigit():
            raise coded(100, "(#100) The parameter limit must be a number")
        limit = int(raw_limit)
        if limit > PAGE_LIMIT_MAX:
            raise coded(100, f"(#100) The limit parameter cannot exceed {PAGE_LIMIT_MAX}")
        limit = max(1, limit)
        after, before = params.get("after"), params.get("before")
        start = _cursor_index(str(after)) if after else 0
        if before:
            start = max(0, _cursor_index(str(before)) - limit)
        chunk = list(items[start : start + limit])
        result: dict[str, Any] = {"data": chunk}
        if chunk:
            result["paging"] = {
                "cursors": {"before": _cursor(start), "after": _cursor(start + len(chunk) - 1 + 1)}
            }
            if start + limit < len(items):
                query = {
                    k: v for k, v in params.items() if isinstance(v, str) and k not in ("after", "before")
                }
                query.update({"limit": str(limit), "after": _cursor(start + limit)})
                result["paging"]["next"] = f"{self.base_url}/v27.0{path}?{urlencode(query)}"
        return result


class _Limited(GraphError):
    def __init__(self, code: int, headers: dict[str, str]) -> None:
        error = coded(code)
        super().__init__(error.code, error.message, error.status, None, error.type, True)
        self.headers = headers


def _cursor(index: int) -> str:
    return base64.urlsafe_b64encode(f"i:{index}".encode()).decode().rstrip("=")


def _cursor_index(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        return max(0, int(text.removeprefix("i:")))
    except (ValueError, UnicodeDecodeError) as exc:
        raise coded(100, "(#100) The After Cursor specified is invalid") from exc


def json_response(status: int, obj: Any, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(status, body, {"Content-Type": "application/json; charset=UTF-8", **(headers or {})})
