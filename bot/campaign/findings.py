"""Collecting every problem in one input file, each at the line of the field it is about."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path

from bot.campaign.yamlsource import YamlDocument, YamlPath
from bot.errors import Problem

# Other names people use for a platform, which no spelling distance finds.
_ALSO_CALLED = {"twitter": "x", "tweet": "x", "bsky": "bluesky", "masto": "mastodon", "fediverse": "mastodon"}


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """` (did you mean 'tier'?)` when a choice is close to `word`, else ``."""
    choices = list(choices)
    if _ALSO_CALLED.get(word.lower()) in choices:
        return f" (did you mean {_ALSO_CALLED[word.lower()]!r}?)"
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def display_path(path: Path) -> str:
    """A path as messages show it: relative to the current folder when inside it."""
    absolute = path.absolute()
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)


def describe_path(path: YamlPath) -> str:
    """("platforms", "x", "accounts", 0) -> "platforms.x.accounts[0]"."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


class Findings:
    """Errors and warnings about one document, in the order found."""

    def __init__(self, doc: YamlDocument) -> None:
        self.doc = doc
        self.problems: list[Problem] = list(doc.problems)

    @property
    def has_errors(self) -> bool:
        return any(p.severity == "error" for p in self.problems)

    def error(self, path: YamlPath, message: str) -> None:
        self.problems.append(Problem(self.doc.file, self.doc.line(path), message))

    def warning(self, path: YamlPath, message: str) -> None:
        self.problems.append(Problem(self.doc.file, self.doc.line(path), message, "warning"))

    def check_keys(self, path: YamlPath, mapping: Mapping[str, object], allowed: Iterable[str]) -> None:
        """An error for each key not in `allowed`, with a "did you mean" when one is close."""
        known = list(allowed)
        for key in mapping:
            if key not in known:
                where = f"{describe_path(path)}: " if path else ""
                self.error((*path, key), f"{where}unknown key {key!r}{did_you_mean(key, known)}")
