"""`run`: start the daemon with its signals, its duration and, with `--sandbox`, its emulators.

SIGTERM and SIGINT set the stop event: no new slot or delivery starts, a delivery waiting on a
backoff gives its claim back at once, calls in flight end within their timeout, and the
process exits 0 within Heroku's 30 s (DESIGN §6). Whatever is left unconfirmed is reconciled
by the next start.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from bot.durations import parse_duration
from bot.logs import setup_logging
from bot.model import Config, LoggingConfig
from bot.runtime import Runtime, utc_now
from bot.scheduler import Daemon

log = logging.getLogger("bot.daemon")

EXIT_OK, EXIT_USAGE, EXIT_RUNTIME = 0, 2, 3

# The monitoring pass, when the monitoring part is installed: `bot.monitor.monitor_pass(runtime, wait)`.
MONITOR_HOOK = "bot.monitor"


def _monitor_for(runtime: Runtime) -> Callable[[bool], object] | None:
    if importlib.util.find_spec(MONITOR_HOOK) is None:
        return None  # posting only: the monitoring part is not installed
    module = importlib.import_module(MONITOR_HOOK)
    factory = getattr(module, "monitor_pass", None)
    if not callable(factory):
        return None

    def monitor(wait: bool) -> object:
        return factory(runtime, wait=wait)

    return monitor


def _close_live_streams(runtime: Runtime) -> None:
    # The monitor's live streams (Mastodon) are closed now, before the clients and the ledger
    # they report through; the rest of the monitor closes at exit.
    close = getattr(sys.modules.get(MONITOR_HOOK), "close_live_streams", None)
    if callable(close):
        close(runtime)


def run_daemon(config_path: Path, *, once: bool, duration: str | None, sandbox: bool) -> int:
    setup_logging(LoggingConfig())
    try:
        seconds = parse_duration(duration).total_seconds() if duration else None
    except ValueError as exc:
        print(f"--for: {exc}", file=sys.stderr)
        return EXIT_USAGE
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("received %s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    emulators = None
    audience_stop = threading.Event()
    if sandbox:
        from bot.rehearsal import (
            demo_queue,
            point_at_sandbox,
            run_audience,
            sandbox_database,
            start_emulators,
        )

        try:
            emulators = start_emulators(accounts=2)
        except OSError as exc:
            print(
                f"run --sandbox: cannot listen on the sandbox ports (another sandbox running?): {exc}",
                file=sys.stderr,
            )
            return EXIT_RUNTIME
        log.info(
            "sandbox: emulators on %s",
            ", ".join(f"{name} {server.base_url}" for name, server in emulators.servers.items()),
        )

        def adjust(config: Config) -> Config:
            assert emulators is not None
            return point_at_sandbox(config, emulators, database)

        from bot.config import load_config

        base, _ = load_config(config_path, os.environ)
        database = sandbox_database(base)
        demo = demo_queue(base, utc_now())
        # The sandbox needs none of the real secrets: their absence is no news.
        runtime = Runtime(config_path, os.environ, adjust=adjust, extra_queues=(demo,), config_warnings=False)
        run_audience(emulators, audience_stop)
    else:
        runtime = Runtime(config_path, os.environ)
    setup_logging(runtime.config.logging)
    for platform in runtime.config.enabled_platforms():
        for account in runtime.config.accounts(platform):
            if account.missing:
                log.error(
                    "not starting %s/%s: missing %s", platform, account.name, ", ".join(account.missing)
                )
    monitor = _monitor_for(runtime)
    daemon = Daemon(runtime, stop=stop, monitor=monitor)
    try:
        if once:
            results = daemon.run_once()
            daemon.deliveries.shutdown(wait=True)
            return EXIT_RUNTIME if any(r.outcome == "failed" for r in results) else EXIT_OK
        if seconds is not None:
            timer = threading.Timer(seconds, stop.set)
            timer.daemon = True
            timer.start()
        finished = daemon.run()
    finally:
        audience_stop.set()
        _close_live_streams(runtime)
        runtime.close()
        if emulators is not None:
            emulators.stop()
    if not finished:
        # Calls still hang past the bound: leave now (exit 0, as Heroku expects); their claims
        # stay unconfirmed and the next start reconciles them.
        logging.shutdown()
        os._exit(EXIT_OK)
    return EXIT_OK
