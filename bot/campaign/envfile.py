"""The `.env` file beside config.yaml: which variables an account's settings name, and writing them.

config.yaml never holds a secret: an account's keys read `${VAR}` (docs/design.md, config.yaml).
`account_fields` reads the raw file to find, for each key of one account, the variable it
names or the literal value written there. `write_env` sets variables in `.env` the way a person
would edit it: every other line is kept, a variable already there is replaced in place, and a
new file is created readable by its owner only (0600). python-dotenv's `set_key` rewrites
through a temporary file in the same folder and keeps the file's mode.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dotenv import set_key

from bot.campaign.findings import display_path
from bot.campaign.yamlsource import read_yaml

# The keys that hold secrets, per network: a value written in config.yaml itself is refused by
# `connect` and a warning in `check` and at `run`'s start (the file is committed and shared).
SECRET_KEYS: Mapping[str, tuple[str, ...]] = {
    "x": ("consumer_key", "consumer_secret", "access_token", "access_token_secret"),
    "bluesky": ("app_password",),
    "mastodon": ("access_token",),
    "facebook": ("access_token", "app_secret"),
    "instagram": ("access_token",),
}
_NAMES = {"x": "X", "bluesky": "BLUESKY", "mastodon": "MASTODON", "facebook": "FB", "instagram": "IG"}


def literal_secret_message(platform: str, index: int, account: str, key: str) -> str:
    """What to say about secret `key` of account `index` written in config.yaml (never its value)."""
    suggestion = f"{_NAMES.get(platform, platform.upper())}_{account.upper()}_{key.upper()}"
    return (
        f"platforms.{platform}.accounts[{index}].{key} is written in the file itself; "
        f'write "${{{suggestion}}}" there so the secret goes to .env'
    )


def literal_secrets(data: object) -> list[tuple[tuple[str, str, str, int, str], str]]:
    """Each secret written as a value in config.yaml's raw `data`: (its YAML path, the message)."""
    platforms = data.get("platforms") if isinstance(data, dict) else None
    found: list[tuple[tuple[str, str, str, int, str], str]] = []
    for platform, section in platforms.items() if isinstance(platforms, dict) else ():
        accounts = section.get("accounts") if isinstance(section, dict) else None
        for index, account in enumerate(accounts if isinstance(accounts, list) else []):
            if not isinstance(account, dict):
                continue
            for key in SECRET_KEYS.get(str(platform), ()):
                value = account.get(key)
                if isinstance(value, str | int) and str(value).strip() and "${" not in str(value):
                    message = literal_secret_message(str(platform), index, str(account.get("name")), key)
                    found.append((("platforms", str(platform), "accounts", index, key), message))
    return found


_WHOLE_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?\}", re.DOTALL)


@dataclass(frozen=True)
class AccountFields:
    """One account's keys as written in config.yaml."""

    line: int
    variables: Mapping[str, str]  # key -> the variable its whole value names (`${VAR}`)
    literals: Mapping[str, str]  # key -> a value written in the file itself (or a default)
    lines: Mapping[str, int]  # key -> its line


def account_fields(config_path: Path, platform: str, name: str) -> AccountFields | None:
    """The keys of account `name` of `platform` as written; None when config.yaml has no such account."""
    doc = read_yaml(config_path, display_path(config_path))
    data = doc.data if isinstance(doc.data, dict) else {}
    platforms = data.get("platforms")
    section = platforms.get(platform) if isinstance(platforms, dict) else None
    accounts = section.get("accounts") if isinstance(section, dict) else None
    for index, account in enumerate(accounts if isinstance(accounts, list) else []):
        if not isinstance(account, dict) or str(account.get("name")) != name:
            continue
        variables: dict[str, str] = {}
        literals: dict[str, str] = {}
        for key, value in account.items():
            match = _WHOLE_REFERENCE.fullmatch(str(value)) if isinstance(value, str) else None
            if match is not None:
                variables[str(key)] = match.group(1)
                if match.group(2):
                    literals[str(key)] = match.group(2)
            elif isinstance(value, str | int | float):
                literals[str(key)] = str(value)
        where = ("platforms", platform, "accounts", index)
        lines = {str(key): doc.line((*where, str(key))) for key in account}
        return AccountFields(doc.line(where), variables, literals, lines)
    return None


def write_env(path: Path, values: Mapping[str, str]) -> bool:
    """Set `values` in the .env file at `path`; True when an existing file was readable by others
    and has been made owner-only."""
    tightened = False
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            path.chmod(mode & 0o700)
            tightened = True
    for name, value in values.items():
        set_key(path, name, value, quote_mode="always")
    return tightened
