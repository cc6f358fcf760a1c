"""Talking with a person at a terminal: instructions, questions, and secrets read without echo.

Everything said goes to `out` (stdout), why it stops to `err` (stderr); a secret is read with
`getpass` when the input is a terminal, so it never shows, and as a plain line otherwise (a
test or a pipe feeding it). The
end of the input or Ctrl-C raises `Interrupted`, which the caller turns into "run it again to
continue".
"""

from __future__ import annotations

import getpass
import textwrap
from typing import TextIO


class Interrupted(Exception):
    """The person stopped (Ctrl-C) or the input ended before a question was answered."""


class Dialogue:
    def __init__(self, stdin: TextIO, out: TextIO, err: TextIO, *, width: int = 78) -> None:
        self._in = stdin
        self._out = out
        self._err = err
        self._width = width

    def refuse(self, text: str) -> None:
        """Why the command stops: one line on stderr (a terminal wraps it; a log keeps it whole)."""
        self._err.write(text + "\n")
        self._err.flush()

    def say(self, text: str = "") -> None:
        """A paragraph, wrapped; lines starting with spaces (steps, addresses) are kept as written."""
        for line in text.splitlines() or [""]:
            if line.startswith(" ") or len(line) <= self._width:
                self._out.write(line + "\n")
            else:
                self._out.write(textwrap.fill(line, self._width) + "\n")
        self._out.flush()

    def ask(self, question: str, default: str | None = None) -> str:
        """One line of answer, stripped; Enter alone gives `default` (or "")."""
        shown = f"{question} [{default}]: " if default else f"{question}: "
        answer = self._read(shown, secret=False).strip()
        return answer or (default or "")

    def ask_secret(self, question: str) -> str:
        return self._read(f"{question} (typing is hidden): ", secret=True).strip()

    def _read(self, prompt: str, *, secret: bool) -> str:
        try:
            if secret and self._in.isatty():
                return getpass.getpass(prompt)
            self._out.write(prompt)
            self._out.flush()
            line = self._in.readline()
        except (KeyboardInterrupt, EOFError):
            self._out.write("\n")
            raise Interrupted from None
        if not line:  # the input ended
            self._out.write("\n")
            raise Interrupted
        return line.rstrip("\n")
