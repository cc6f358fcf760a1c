"""The project's own errors.

Two families, drawn once here:

    Problem                  a finding about input (config or content): FILE:LINE: message
    InputError               raised when loading input fails; carries every Problem found

    DatabaseUnavailable      the database's file or folder cannot be created: path and reason

    PlatformError            anything a platform call can end in, translated at the adapter edge
    ├── RateLimited          429: retry after `retry_after` seconds (from the reset headers)
    ├── Transient            timeout, connection error, 5xx: the write may or may not have happened
    ├── Rejected             400/403/422-style refusal: fails at once with the platform's message
    │   └── Duplicate        "already posted" (X's 403 duplicate content): look before failing
    └── AuthFailed           401: the account's credentials are refused

Adapters raise only PlatformError subclasses (`raise Transient(...) from exc`), so the scheduler
decides retries without knowing any SDK. No message here may carry a secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bot.retry import server_wait


@dataclass(frozen=True)
class Problem:
    """One error or warning about a file, printed as `FILE:LINE: message`."""

    file: str
    line: int
    message: str
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{self.file}:{self.line}: {prefix}{self.message}"


class InputError(Exception):
    """Config or content that cannot be used; `problems` lists every error found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class DatabaseUnavailable(Exception):
    """The SQLite file or its folder cannot be created; the message names the path and the OS's reason."""


class PlatformError(Exception):
    """A platform call failed; the message is the platform's own, never a credential."""


class RateLimited(PlatformError):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        # Clamped where it is made, so no reader meets `inf` or 1e300 (`Retry-After: inf`).
        self.retry_after = server_wait(retry_after)


class Transient(PlatformError):
    """Timeouts, connection errors and 5xx: the write may have been applied; reconcile before retrying."""


class Rejected(PlatformError):
    """The platform refused the request for what it is; retrying will not help."""


class Duplicate(Rejected):
    """The platform says this text is already posted: a reason to look (find_published), not proof."""


class AuthFailed(PlatformError):
    """The platform refused the account's credentials (HTTP 401)."""
