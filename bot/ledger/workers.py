"""Worker ids, and telling a worker that died on this host from one that is alive.

Every process that claims work in the ledger (each `run`, each `post`) names its claims with a
worker id `host:pid:random`: unique per run, so a restarted worker never mistakes a claim of its
previous life for a live one of its own, and readable, so people see who holds what.

The ledger alone cannot tell that a worker died before its lease runs out (90 s). On the worker's
own host we can: its pid is gone. That lets a restarted daemon, or a surviving worker next to a
killed one, reconcile what the dead one left at once. "Host" is the hostname plus the pid
namespace: containers that share a hostname (Docker's `--network host`) each see other pids, so
a pid missing from our namespace proves nothing about theirs.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable
from pathlib import Path


def this_host() -> str:
    """The hostname, plus the pid namespace where the platform has them (Linux)."""
    try:
        namespace = f"~{os.stat('/proc/self/ns/pid').st_ino:x}"
    except OSError:
        namespace = ""
    return f"{socket.gethostname()}{namespace}"


def new_worker_id() -> str:
    """A name for this process's claims: `host:pid:random`, unique per run."""
    return f"{this_host()}:{os.getpid()}:{secrets.token_hex(4)}"


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists here and is not a zombie (dead, not yet reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive, and not one of ours to judge
    try:
        # "pid (name) S ...": the state follows the last ")" (a name may hold parentheses).
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): os.kill's answer is all we have
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def died_here(worker: str, *, host: str | None = None, alive: Callable[[int], bool] = pid_alive) -> bool:
    """True only when `worker` ran on this host and its process is gone.

    Any doubt (another host, an id of another shape, a pid reused by a new process) answers
    False: the claim then waits out its lease, which is slow but never doubles a post.
    """
    parts = worker.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return False
    worker_host, pid = parts[0], int(parts[1])
    if worker_host != (host if host is not None else this_host()) or pid == os.getpid():
        return False
    return not alive(pid)
