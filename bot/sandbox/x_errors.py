"""X API v2 error bodies, in the shapes X sends (docs.x.com "Response codes and errors").

401, 403, 429, 5xx   an RFC 7807 problem: {"title", "detail", "type": "about:blank", "status"}
400                  the invalid-request problem, with `errors[].parameters` and `.message`
404 unknown route    the v1-style {"errors": [{"message", "code": 34}]}
unknown resource     the resource-not-found problem
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from bot.sandbox.server import Response

INVALID_REQUEST = "https://api.twitter.com/2/problems/invalid-request"
NOT_FOUND = "https://api.twitter.com/2/problems/resource-not-found"
DUPLICATE = "You are not allowed to create a Tweet with duplicate content."
NOT_PERMITTED = "You are not permitted to perform this action."
# A write with a token made while the app was read-only (the problem X sends, as reported in
# https://github.com/PLhery/node-twitter-api-v2/issues/493).
OAUTH1_PERMISSIONS = "https://api.twitter.com/2/problems/oauth1-permissions"
OAUTH1_PERMISSIONS_DETAIL = (
    "Your client app is not configured with the appropriate oauth1 app permissions for this endpoint."
)


def problem(status: int, detail: str, type_: str = "about:blank") -> Response:
    """An RFC 7807 problem body as X's v2 API sends it."""
    title = HTTPStatus(status).phrase
    return Response.json(status, {"title": title, "detail": detail, "type": type_, "status": status})


def unknown_route() -> Response:
    return Response.json(404, {"errors": [{"message": "Sorry, that page does not exist", "code": 34}]})


def invalid_request(message: str, parameter: str | None = None, values: list[str] | None = None) -> Response:
    """X's 400: one `errors` entry naming the parameter, under the invalid-request problem."""
    error: dict[str, Any] = {"message": message}
    if parameter is not None:
        error = {"parameters": {parameter: values or []}, "message": message}
    return Response.json(
        400,
        {
            "errors": [error],
            "title": "Invalid Request",
            "detail": "One or more parameters to your request was invalid.",
            "type": INVALID_REQUEST,
        },
    )


def not_found_error(kind: str, value: str, parameter: str) -> dict[str, Any]:
    """One resource-not-found entry, as X puts them in `errors`."""
    return {
        "value": value,
        "detail": f"Could not find {kind} with {parameter}: [{value}].",
        "title": "Not Found Error",
        "resource_type": kind,
        "parameter": parameter,
        "resource_id": value,
        "type": NOT_FOUND,
    }


def not_authorized_error(value: str, parameter: str) -> dict[str, Any]:
    """The `errors` entry for a tweet X will not show, such as a suspended author's."""
    return {
        "value": value,
        "detail": f"Sorry, you are not authorized to see the Tweet with {parameter}: [{value}].",
        "title": "Authorization Error",
        "resource_type": "tweet",
        "parameter": parameter,
        "resource_id": value,
        "section": "data",
        "type": "https://api.twitter.com/2/problems/not-authorized-for-resource",
    }


def not_found(kind: str, value: str, parameter: str) -> Response:
    error = not_found_error(kind, value, parameter)
    return Response.json(
        404, {"errors": [error], "title": "Not Found Error", "detail": error["detail"], "type": NOT_FOUND}
    )


def missing_user(user_id: str) -> Response:
    # A lookup of an unknown user is a 200 that carries only `errors` (X's "partial error").
    return Response.json(200, {"errors": [not_found_error("user", user_id, "id")]})
