"""`connect PLATFORM [--account NAME]`: connect one account step by step; its keys go to `.env`.

The steps of each network are in `bot.commands.connect_<platform>` (`connect(session)`), built
on the sign-in helpers of `bot.platforms.<platform>_onboarding`. A network without such a
module (Facebook and Instagram, for now) is refused with a pointer to docs/accounts.md. What a
connection has done so far is kept, without secrets, in `.connect-progress.json` beside
config.yaml, so a run stopped half-way (Ctrl-C, a closed browser, a lost code) picks up where it
was; the entry is removed once the account is connected. Secrets go only to `.env`, under the
variable names config.yaml gives the account, and are never printed.

At the end config.yaml is loaded again, with the account's variables taken from `.env` alone,
and the account is diagnosed as `check --online` does: the command succeeds only if that passes.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.campaign.config import load_config
from bot.campaign.envfile import (
    SECRET_KEYS,
    AccountFields,
    account_fields,
    literal_secret_message,
    write_env,
)
from bot.campaign.findings import display_path
from bot.campaign.model import Account, Platform
from bot.commands.dialogue import Dialogue, Interrupted
from bot.errors import InputError, PlatformError, Problem

EXIT_OK, EXIT_INPUT, EXIT_USAGE, EXIT_RUNTIME = 0, 1, 2, 3
PROGRESS_FILE = ".connect-progress.json"
TIMEOUT = 20.0
NAMES = {"x": "X", "bluesky": "Bluesky", "mastodon": "Mastodon"}


class NotConnected(Exception):
    """The connection cannot finish now; the message says why and what to do."""


class Progress:
    """One account's progress, without secrets, in the progress file beside config.yaml."""

    def __init__(self, path: Path, key: str) -> None:
        self.path, self.key = path, key

    def _all(self) -> dict[str, dict[str, str]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self) -> dict[str, str]:
        entry = self._all().get(self.key)
        return {str(k): str(v) for k, v in entry.items()} if isinstance(entry, dict) else {}

    def save(self, **values: str) -> None:
        data = self._all()
        data[self.key] = {**data.get(self.key, {}), **values}
        self._write(data)

    def clear(self) -> None:
        data = self._all()
        if data.pop(self.key, None) is None:
            return
        if data:
            self._write(data)
        else:
            self.path.unlink(missing_ok=True)

    def _write(self, data: dict[str, Any]) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(data, file, indent=1, sort_keys=True)


@dataclass
class Session:
    """What a network's steps get: the person, the account as configured, progress and .env."""

    dialogue: Dialogue
    platform: Platform
    account: Account
    fields: AccountFields
    config_path: Path
    progress: Progress
    timeout: float = TIMEOUT
    written: list[str] = field(default_factory=list)  # variable names set in .env, in order

    @property
    def env_path(self) -> Path:
        return self.config_path.parent / ".env"

    @property
    def label(self) -> str:
        return f'{NAMES.get(self.platform, self.platform)} account "{self.account.name}"'

    def variable(self, key: str) -> str | None:
        return self.fields.variables.get(key)

    def saved(self, key: str) -> str:
        """The value `key` has now (from .env or the environment), or "" if unset."""
        return self.account.credentials.get(key, "")

    def save_env(self, values: Mapping[str, str]) -> None:
        """Write config keys (by their variable names) or extra variable names to .env."""
        named = {self.variable(key) or key: value for key, value in values.items()}
        if write_env(self.env_path, named):
            self.dialogue.say(f"(Made {display_path(self.env_path)} readable by its owner only.)")
        self.written.extend(name for name in named if name not in self.written)


def run_connect(
    config_path: Path,
    platform: Platform,
    account_name: str | None,
    dialogue: Dialogue,
    environ: Mapping[str, str],
) -> int:
    """The whole command; returns the exit code. Bad config raises InputError (exit 1)."""
    config, _ = load_config(config_path, environ)
    section = config.platforms.get(platform)
    accounts = section.accounts if section is not None else ()
    shown, name = display_path(config_path), NAMES.get(platform, platform.capitalize())
    if section is not None and not section.enabled:
        dialogue.refuse(f"{shown}: platforms.{platform} is disabled (enabled: false); enable it first.")
        return EXIT_USAGE
    if not accounts:
        dialogue.refuse(
            f"{shown} has no {name} account: add one under platforms.{platform}.accounts (docs/accounts.md)."
        )
        return EXIT_USAGE
    if account_name is None and len(accounts) > 1:
        names = ", ".join(a.name for a in accounts)
        dialogue.refuse(f"{shown} has {len(accounts)} {name} accounts: name one with --account ({names}).")
        return EXIT_USAGE
    account = next((a for a in accounts if account_name in (None, a.name)), None)
    if account is None:
        names = ", ".join(a.name for a in accounts)
        dialogue.refuse(f"{shown} has no {name} account named {account_name!r} (accounts: {names}).")
        return EXIT_USAGE
    fields = account_fields(config_path, platform, account.name)
    assert fields is not None  # load_config found it
    literal = [k for k in SECRET_KEYS.get(platform, ()) if k in fields.lines and k not in fields.variables]
    if literal:
        key = literal[0]
        message = literal_secret_message(platform, accounts.index(account), account.name, key)
        raise InputError([Problem(shown, fields.lines.get(key, fields.line), message)])

    module = f"bot.commands.connect_{platform}"
    try:
        flow = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise  # the flow is there, a dependency of it is not
        dialogue.refuse(
            f"connect cannot guide {name} yet: docs/accounts.md says how to get its keys by hand."
        )
        return EXIT_USAGE
    progress = Progress(config_path.parent / PROGRESS_FILE, f"{platform}/{account.name}")
    session = Session(dialogue, platform, account, fields, config_path, progress)
    again = f"python -m bot connect {platform} --account {account.name}"
    try:
        flow.connect(session)
    except (Interrupted, KeyboardInterrupt):
        dialogue.refuse(f"Stopped. What was done is kept: run `{again}` to continue.")
        return EXIT_RUNTIME
    except NotConnected as exc:
        dialogue.refuse(f"Not connected: {_sentence(str(exc))}")
        return EXIT_RUNTIME
    except PlatformError as exc:
        dialogue.refuse(f"Not connected: {_sentence(str(exc))} Run `{again}` to try again.")
        return EXIT_RUNTIME
    except OSError as exc:  # .env or the progress file cannot be written
        dialogue.refuse(f"Not connected: cannot write {exc.filename or 'a file'}: {exc.strerror or exc}.")
        return EXIT_RUNTIME
    return _confirm(session, environ)


def _sentence(text: str) -> str:
    return text if text.endswith((".", "?", "!")) else text + "."


def _confirm(session: Session, environ: Mapping[str, str]) -> int:
    """Load config.yaml again with the account's variables from .env only, and diagnose it."""
    from bot.platforms.onboarding import diagnose

    say, refuse = session.dialogue.say, session.dialogue.refuse
    ours = set(session.fields.variables.values())
    shadowed = sorted(v for v in ours if environ.get(v))
    config, _ = load_config(session.config_path, {k: v for k, v in environ.items() if k not in ours})
    account = next(a for a in config.platforms[session.platform].accounts if a.name == session.account.name)
    if account.missing:
        refuse(
            f"Not connected: {', '.join(account.missing)} still not set in {display_path(session.env_path)}."
        )
        return EXIT_RUNTIME
    try:
        result = diagnose(account, timeout=session.timeout)
    except PlatformError as exc:
        refuse(f"Saved, but the last check could not run: {exc}. Run `python -m bot check --online` later.")
        return EXIT_RUNTIME
    if not result.ok:
        for problem in result.problems:
            refuse(f"Not connected: {_sentence(problem)}")
        return EXIT_RUNTIME
    session.progress.clear()
    say("")
    say(f"Connected: the {session.label} is {result.handle} and can post.")
    say(f"Saved in {display_path(session.env_path)} (values not shown): {', '.join(session.written)}.")
    if shadowed:
        say(
            f"Note: {', '.join(shadowed)} also set in this shell's environment, which wins over .env: "
            "unset it (or update it) before `python -m bot run`."
        )
    say("`python -m bot check --online` checks every account at any time.")
    return EXIT_OK
