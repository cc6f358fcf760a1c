"""What `bot.platforms.bluesky` needs of the atproto SDK, imported only when a call needs it.

Importing `atproto_client` builds the pydantic models of every lexicon (its namespaces name them
in their signatures): about 0.5 s and 30 MB. A `run --once` with nothing due, or a daemon whose
Bluesky streams are not due, makes no Bluesky call, so `bluesky` imports this module at the
first call to the network, not at start-up.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from atproto_client import Client, models
from atproto_client.client.session import SessionEvent
from atproto_client.exceptions import (
    BadRequestError,
    InvokeTimeoutError,
    LoginRequiredError,
    ModelError,
    NetworkError,
    RateLimitExceededError,
    RequestErrorBase,
    RequestException,
    UnauthorizedError,
)
from atproto_client.models.common import XrpcError
from atproto_client.request import Request
from atproto_core.exceptions import AtProtocolError

from bot.errors import AuthFailed, PlatformError, RateLimited, Rejected, Transient
from bot.platforms.ratelimits import seconds_until_reset

__all__ = [
    "AtProtocolError",
    "BadRequestError",
    "ClockedClient",
    "InvokeTimeoutError",
    "LoginRequiredError",
    "NetworkError",
    "Request",
    "RequestErrorBase",
    "SessionEvent",
    "UnauthorizedError",
    "error_name",
    "models",
    "translate_error",
]


class ClockedClient(Client):  # type: ignore[misc]  # atproto ships no type information
    """The SDK's client on our injected clock.

    The SDK refreshes a session when its access token expires within 15 minutes of "now" and
    stamps records with "now"; both should follow the clock the rest of the bot (and the
    sandbox) runs on.
    """

    def __init__(self, base_url: str, request: Request, now: Callable[[], datetime]) -> None:
        super().__init__(base_url, request=request)
        self._now = now

    def get_current_time(self) -> datetime:
        return self._now().astimezone(UTC)


def translate_error(exc: AtProtocolError, now: datetime) -> PlatformError:
    """An SDK exception as one of our errors, with the PDS's own message (never a token)."""
    response = exc.response if isinstance(exc, RequestErrorBase) else None
    status = response.status_code if response is not None else None
    content = response.content if response is not None else None
    if isinstance(content, XrpcError):
        detail = f"{content.error}: {content.message}" if content.message else str(content.error)
    else:
        detail = type(exc).__name__
    message = f"Bluesky {status}: {detail}" if status else f"Bluesky: {detail}"
    if isinstance(exc, RateLimitExceededError):
        headers = response.headers if response is not None else {}
        return RateLimited(message, retry_after=seconds_until_reset(headers, now))
    if isinstance(exc, UnauthorizedError | LoginRequiredError):
        return AuthFailed(message)
    if isinstance(exc, BadRequestError):
        return Rejected(message)
    if isinstance(exc, InvokeTimeoutError):
        return Transient(message)
    if isinstance(exc, NetworkError):  # transport failures, and 409/413/502 answers
        return Rejected(message) if status == 413 else Transient(message)
    if isinstance(exc, RequestException):
        return Transient(message) if status is None or status >= 500 else Rejected(message)
    if isinstance(exc, ModelError):
        return Transient(f"Bluesky: unreadable answer ({type(exc).__name__})")
    return Transient(message)


def error_name(exc: RequestErrorBase) -> str | None:
    content = exc.response.content if exc.response is not None else None
    return content.error if isinstance(content, XrpcError) else None
