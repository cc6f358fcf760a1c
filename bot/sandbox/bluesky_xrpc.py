"""XRPC plumbing shared by the Bluesky emulator's modules: error answers and parameter parsing.

Errors are `{"error", "message"}` bodies. Names and messages for a bare status come from
@atproto/xrpc (`ResponseTypeNames`, `ResponseTypeStrings`); parameter errors are worded as
the lexicon validator words them ("Params/limit can not be greater than 100").
"""

from __future__ import annotations

from typing import Any

from bot.sandbox.server import Request, Response

# Error names and messages of @atproto/xrpc for a bare status (injected faults).
_STATUS_ERRORS = {
    400: ("InvalidRequest", "Invalid Request"),
    401: ("AuthenticationRequired", "Authentication Required"),
    403: ("Forbidden", "Forbidden"),
    404: ("XRPCNotSupported", "XRPC Not Supported"),
    413: ("PayloadTooLarge", "Payload Too Large"),
    429: ("RateLimitExceeded", "Rate Limit Exceeded"),
    500: ("InternalServerError", "Internal Server Error"),
    501: ("MethodNotImplemented", "Method Not Implemented"),
    502: ("UpstreamFailure", "Upstream Failure"),
    503: ("NotEnoughResources", "Not Enough Resources"),
    504: ("UpstreamTimeout", "Upstream Timeout"),
}


class XrpcError(Exception):
    """An XRPC error answer: `{"error", "message"}` with a status."""

    def __init__(self, status: int, error: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message
        self.headers = headers or {}


def xrpc_error(
    status: int, error: str | None = None, message: str | None = None, headers: dict[str, str] | None = None
) -> Response:
    default_error, default_message = _STATUS_ERRORS.get(
        status, ("InternalServerError", "Internal Server Error")
    )
    body = {"error": error or default_error, "message": message or default_message}
    return Response.json(status, body, headers)


def read_body(request: Request) -> dict[str, Any]:
    try:
        body = request.json()
    except ValueError:
        raise XrpcError(400, "InvalidRequest", "Request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise XrpcError(400, "InvalidRequest", "Input must be an object")
    return body


def param(request: Request, name: str) -> str:
    value = request.arg(name)
    if value is None:
        raise XrpcError(400, "InvalidRequest", f'Params must have the property "{name}"')
    return value


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.arg(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise XrpcError(400, "InvalidRequest", f"Params/{name} must be an integer") from None
    if value < low:
        raise XrpcError(400, "InvalidRequest", f"Params/{name} can not be less than {low}")
    if value > high:
        raise XrpcError(400, "InvalidRequest", f"Params/{name} can not be greater than {high}")
    return value


def limit_param(request: Request, default: int) -> int:
    return int_param(request, "limit", default, 1, 100)


def offset_cursor(request: Request) -> int:
    raw = request.arg("cursor")
    return int(raw) if raw and raw.isdigit() else 0
