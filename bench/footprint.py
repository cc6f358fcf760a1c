"""Footprint: RSS and CPU of `run` idle for 60 s with all three platforms configured.

A sandbox runs as its own process (`python -m bot sandbox`, so its CPU is not counted); the
daemon (`python -m bot run`) gets a config with X, Bluesky and Mastodon pointing at it and a
queue with nothing due, so it only ticks, watches its files and does its monitoring passes.
After a warm-up, the daemon's own /proc/<pid>/stat (utime + stime, all its threads) is read
at the start and end of the window and /proc/<pid>/status (VmRSS) every second; then it is
stopped with SIGTERM, as Heroku would.

    python bench/footprint.py [--seconds 60] [--warmup 10]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from campaign import SandboxProcess, write_config
from timing import PYTHON, REPO, load_average

GOAL_RSS_MB = 100.0
GOAL_CPU_PERCENT = 1.0
STOP_BOUND = 30.0  # Heroku's SIGTERM-to-SIGKILL

NOTHING_DUE = """\
schedule: {every: 1d}
start: 2099-01-01
posts:
  - id: later
    text: "Nothing is due until 2099. https://example.org/p"
"""


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process (every thread), from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak RSS) from /proc/<pid>/status, in MB."""
    found: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0]) / 1024
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--accounts", type=int, default=1, help="accounts per platform")
    args = parser.parse_args()
    print(f"(load average {load_average():.1f} on {os.cpu_count()} cores)")
    with (
        tempfile.TemporaryDirectory(prefix="bench-footprint-") as tmp,
        SandboxProcess(args.accounts) as sandbox,
    ):
        config, env = write_config(Path(tmp), sandbox.description, {"later": NOTHING_DUE})
        log_path = Path(tmp) / "run.log"
        with log_path.open("w") as log:
            daemon = subprocess.Popen(
                [PYTHON, "-m", "bot", "--config", str(config), "run"],
                cwd=REPO,
                env={**os.environ, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            time.sleep(args.warmup)
            if daemon.poll() is not None:
                sys.exit(f"run exited early ({daemon.returncode}):\n{log_path.read_text()[-2000:]}")
            start_cpu, started = cpu_seconds(daemon.pid), time.monotonic()
            rss_seen: list[float] = []
            while time.monotonic() - started < args.seconds:
                rss_seen.append(memory_mb(daemon.pid)["VmRSS"])
                time.sleep(1.0)
            cpu = cpu_seconds(daemon.pid) - start_cpu
            elapsed = time.monotonic() - started
            peak = memory_mb(daemon.pid)["VmHWM"]
        finally:
            stop_started = time.monotonic()
            daemon.send_signal(signal.SIGTERM)
            try:
                code = daemon.wait(timeout=STOP_BOUND)
            except subprocess.TimeoutExpired:
                daemon.kill()
                code = daemon.wait()
            stopped_in = time.monotonic() - stop_started
    cpu_percent = 100 * cpu / elapsed
    rss = max(rss_seen)
    rss_ok, cpu_ok = rss <= GOAL_RSS_MB, cpu_percent <= GOAL_CPU_PERCENT
    print(
        f"footprint run idle {elapsed:.0f} s RSS: {rss:.0f} MB (peak since start {peak:.0f} MB)"
        f" (goal <= {GOAL_RSS_MB:g} MB): {'ok' if rss_ok else 'MISSED'}"
    )
    print(
        f"footprint run idle {elapsed:.0f} s CPU: {cpu_percent:.2f} % ({cpu:.2f} s CPU)"
        f" (goal <= {GOAL_CPU_PERCENT:g} %): {'ok' if cpu_ok else 'MISSED'}"
    )
    print(f"footprint run stop on SIGTERM: exit {code} in {stopped_in:.1f} s")
    print(f"floor: importing the libraries run needs, in a bare interpreter: {import_floor_mb():.0f} MB RSS")
    return 0 if rss_ok and cpu_ok else 1


def import_floor_mb() -> float:
    """Peak RSS of an interpreter that only imports what `run` has loaded once it polled every network."""
    from startup import LIBRARIES_POLLING

    probe = f"{LIBRARIES_POLLING}\nimport resource\nprint(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    done = subprocess.run([PYTHON, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    return int(done.stdout) / 1024


if __name__ == "__main__":
    sys.exit(main())
