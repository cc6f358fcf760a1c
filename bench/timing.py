"""Timing a command as a subprocess: wall time and the CPU time it used (user + system).

The machine these figures come from is shared (2 cores, other test runs), so next to the wall
time each bench also prints the child's CPU time, which load hardly changes.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


@dataclass(frozen=True)
class Timing:
    wall: float  # seconds
    cpu: float  # seconds of user + system time of the child


def time_command(args: list[str], env: dict[str, str] | None = None, timeout: float = 300) -> Timing:
    """Run `args` from the repository root; exit the bench with its stderr if it fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        args, cwd=REPO, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timing(wall, cpu)


def best_of(runs: int, args: list[str], env: dict[str, str] | None = None) -> Timing:
    """The fastest of `runs` runs by wall time, and the least CPU time seen."""
    timings = [time_command(args, env) for _ in range(runs)]
    return Timing(min(t.wall for t in timings), min(t.cpu for t in timings))


def load_average() -> float:
    """The 1-minute load average, to print beside figures taken on a shared machine."""
    return os.getloadavg()[0]


def fresh_database(server: str, name: str) -> str:
    """Create database `name` on the PostgreSQL server of `server` (a URL to any database on it)."""
    import psycopg

    with psycopg.connect(server.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return server.rsplit("/", 1)[0] + "/" + name


def drop_database(server: str, name: str) -> None:
    import psycopg

    with psycopg.connect(server.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
