"""Connecting an account and diagnosing it: what `connect` and `check --online` share.

Each network whose connection needs more than `verify()` has a module
`bot.platforms.<platform>_onboarding` with its sign-in steps (built on the SDK's own OAuth
helpers) and `diagnose(account, timeout)`, which looks at what the credentials may do and says
in a person's words what is wrong and where in the network's settings to fix it. A platform
without such a module (Facebook and Instagram, for now) is diagnosed by `verify()` alone.

Errors, beside the `bot.errors` tree the adapters raise:

    PlatformError
    ├── CodeRefused       the code or PIN pasted was not accepted (wrong, used or expired)
    └── CannotPost        the credentials work but cannot do what the bot needs (read-only
                          app, missing scope, main password instead of an app password);
                          the message says where to fix it
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from bot.campaign.model import Account
from bot.errors import AuthFailed, PlatformError


class CodeRefused(PlatformError):
    """The code or PIN was not accepted."""


class CannotPost(PlatformError):
    """Valid credentials that cannot post as the bot needs; the message says what to change where."""


@dataclass(frozen=True)
class Diagnosis:
    """What `check --online` says about one account: who it is, and what a person must fix."""

    handle: str | None  # None when the credentials were refused
    problems: list[str] = field(default_factory=list)  # each a sentence a person can act on

    @property
    def ok(self) -> bool:
        return self.handle is not None and not self.problems


def diagnose(account: Account, *, timeout: float, content_dir: object = None) -> Diagnosis:
    """One account's diagnosis; raises PlatformError only for what is not about the credentials."""
    name = f"bot.platforms.{account.platform}_onboarding"
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise  # the module is there, a dependency of it is not
        return _verify_only(account, timeout, content_dir)
    result: Diagnosis = module.diagnose(account, timeout=timeout)
    return result


def _verify_only(account: Account, timeout: float, content_dir: object) -> Diagnosis:
    from bot.platforms import open_client

    client = open_client(account, timeout=timeout, content_dir=content_dir)
    try:
        handle = client.verify()
        # Instagram fetches images from a public address: does each content image answer there?
        image_problems = getattr(client, "image_problems", None)
        problems = image_problems(content_dir) if image_problems is not None and content_dir else []
        return Diagnosis(handle, problems)
    except AuthFailed as exc:
        return Diagnosis(None, [f"the credentials were refused ({exc})"])
    finally:
        client.close()
