"""Hostile answers, side by side: a huge answer's cost in memory, a dripping answer's in time.

The sandbox runs in its own process (`python -m bot sandbox`). Its Mastodon emulator answers the
notifications read with a `body_bytes` fault (a valid JSON body of N bytes), then with a
`drip_ms` fault (a byte at a time). Each is read once with a plain `requests` session as the
SDKs had it (a per-read timeout, no cap) and once with `bot.platforms.deadline` mounted, and the
peak RSS growth and the wall time are printed one line each:

    python bench/hostile.py [--mb 300] [--drip-ms 500]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import threading
import time
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from campaign import SandboxProcess

from bot.platforms.deadline import mount_deadline

PATH = "/api/v1/notifications"


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def control(described: dict[str, Any], route: str, spec: dict[str, Any]) -> None:
    mastodon = described["mastodon"]
    requests.post(
        f"{mastodon['base_url']}/_sandbox/{route}",
        data=json.dumps(spec),
        headers={"X-Sandbox-Token": mastodon.get("control_token", "")},
        timeout=10,
    ).raise_for_status()


def fault(described: dict[str, Any], **spec: Any) -> None:
    control(described, "faults", {"method": "GET", "path": PATH, **spec})


def read(session: requests.Session, url: str, token: str, timeout: float) -> str:
    try:
        answer = session.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout)
        return f"{len(answer.content):,} bytes read"
    except requests.RequestException as exc:
        return f"refused: {type(exc).__name__}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=300)
    parser.add_argument("--drip-ms", type=int, default=500)
    parser.add_argument("--timeout", type=float, default=20.0, help="the daemon's per-call timeout")
    args = parser.parse_args()
    sandbox = SandboxProcess()
    try:
        described = sandbox.description
        url = described["mastodon"]["base_url"] + PATH
        token = described["mastodon"]["accounts"][0]["access_token"]
        capped = requests.Session()
        mount_deadline(capped, args.timeout)
        # Capped first: ru_maxrss only grows, so the uncapped read must come last to be seen.
        for name, session in (("deadline + cap", capped), ("plain requests", requests.Session())):
            fault(described, body_bytes=args.mb * 1024 * 1024)
            before, started = peak_mb(), time.monotonic()
            outcome = read(session, url, token, args.timeout)
            took = time.monotonic() - started
            grown = peak_mb() - before
            print(f"huge ({args.mb} MB)  {name:15} {outcome:28} peak RSS +{grown:6.0f} MB  {took:5.1f} s")
        control(described, "audience", {"kind": "mention", "text": "a mention, so the answer is long"})
        for name, session in (("deadline + cap", capped), ("plain requests", requests.Session())):
            fault(described, drip_ms=args.drip_ms)
            started = time.monotonic()
            box: list[str] = []

            def drip_read(session: requests.Session = session, box: list[str] = box) -> None:
                box.append(read(session, url, token, args.timeout))

            reader = threading.Thread(target=drip_read, daemon=True)
            reader.start()
            reader.join(timeout=3 * args.timeout)
            took = time.monotonic() - started
            outcome = box[0] if box else f"still reading after {took:.0f} s"
            print(f"drip ({args.drip_ms} ms/byte) {name:15} {outcome:28} {took:5.1f} s")
    finally:
        sandbox.stop()


if __name__ == "__main__":
    main()
