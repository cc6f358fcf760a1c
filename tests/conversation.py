"""A person at the terminal of `python -m bot connect`: reads what it says, types answers.

The command runs in a subprocess with its input on a pipe (so secrets are read as plain lines,
as from any non-terminal). A reader thread collects stdout, since prompts end without a newline.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def clean_env(**extra: str) -> dict[str, str]:
    """Only what Python needs: no secrets from the caller's environment."""
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "SYSTEMROOT", "PYTHONPATH")}
    return {**base, **extra}


class Conversation:
    def __init__(self, config: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot", "--config", str(config), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=env or clean_env(),
        )
        self.out = ""
        self.err = ""
        self._readers = [
            threading.Thread(target=self._pump, args=("out",), daemon=True),
            threading.Thread(target=self._pump, args=("err",), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _pump(self, name: str) -> None:
        stream = self.process.stdout if name == "out" else self.process.stderr
        assert stream is not None
        while chunk := stream.read(1):
            setattr(self, name, getattr(self, name) + chunk)

    def wait_for(self, pattern: str, timeout: float = 20) -> re.Match[str]:
        """The first match of `pattern` in what was said so far, waiting for it to appear."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.out, re.DOTALL)
            if found:
                return found
            if self.process.poll() is not None:
                time.sleep(0.1)
                found = re.search(pattern, self.out, re.DOTALL)
                if found:
                    return found
                raise AssertionError(
                    f"ended ({self.process.returncode}) before {pattern!r}:\n{self.out}\n{self.err}"
                )
            time.sleep(0.02)
        raise AssertionError(f"no {pattern!r} within {timeout}s:\n{self.out}\n{self.err}")

    def type(self, *lines: str) -> None:
        assert self.process.stdin is not None
        for line in lines:
            self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def end(self, timeout: float = 60) -> int:
        """Close the input (as Ctrl-D would) and wait for the exit code."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        code = self.process.wait(timeout)
        for reader in self._readers:
            reader.join(5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        return code


def run(
    config: Path, *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "--config", str(config), *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env or clean_env(),
        timeout=120,
    )
