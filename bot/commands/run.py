"""`run`: start the daemon with its signals, its duration and, with `--sandbox`, its emulators.

SIGTERM and SIGINT set the stop event: no new slot or delivery starts, a delivery waiting on a
backoff gives its claim back at once, calls in flight end within their timeout, and the
process exits 0 within Heroku's 30 s (docs/design.md, the daemon). Whatever is left unconfirmed is reconciled
by the next start.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from bot.campaign.durations import parse_duration
from bot.campaign.model import Config, LoggingConfig
from bot.daemon.logs import setup_logging
from bot.daemon.runtime import Runtime, utc_now
from bot.daemon.scheduler import Daemon
from bot.delivery.jobs import missing_line
from bot.errors import InputError
from bot.monitoring.monitor import DaemonMonitor
from bot.sandbox import SANDBOX_PORT, SANDBOX_PORTS

log = logging.getLogger("bot.daemon")

EXIT_OK, EXIT_INPUT, EXIT_USAGE, EXIT_RUNTIME = 0, 1, 2, 3


def run_daemon(config_path: Path, *, once: bool, duration: str | None, sandbox: bool) -> int:
    setup_logging(LoggingConfig())
    try:
        seconds = parse_duration(duration).total_seconds() if duration else None
    except ValueError as exc:
        print(f"--for: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if seconds is not None and seconds <= 0:
        print("--for: the duration must be longer than 0 (30s, 5m, 2h, 1d)", file=sys.stderr)
        return EXIT_USAGE
    stop = threading.Event()

    received: list[str] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # Only note it and set the event: a handler that logs can re-enter a write the main
        # thread was in the middle of (io refuses a reentrant call), and the stop is then lost.
        received.append(signal.Signals(signum).name)
        stop.set()

    def say_received() -> None:
        stop.wait()
        if received:
            log.info("received %s", received[0])

    threading.Thread(target=say_received, name="signals", daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    emulators = None
    audience_stop = threading.Event()
    # The fixed ports, unless moved (two rehearsals, or tests, side by side).
    port_text = os.environ.get("BOT_SANDBOX_PORT") or str(SANDBOX_PORT)
    highest = 65536 - SANDBOX_PORTS  # the last emulator's port is N + SANDBOX_PORTS - 1
    if sandbox and not (port_text.isdigit() and 1 <= int(port_text) <= highest):
        print(f"BOT_SANDBOX_PORT: {port_text!r} is not a port from 1 to {highest}", file=sys.stderr)
        return EXIT_USAGE
    port = int(port_text) if port_text.isdigit() else SANDBOX_PORT
    if sandbox:
        from bot.daemon.rehearsal import (
            demo_queue,
            hold_rehearsal,
            point_at_sandbox,
            run_audience,
            sandbox_database,
            start_emulators,
        )

        try:
            emulators = start_emulators(accounts=2, port=port)
        except OSError as exc:
            ports = f"{port}-{port + SANDBOX_PORTS - 1}"
            other = port + SANDBOX_PORTS if port + 2 * SANDBOX_PORTS <= 65536 else 20000
            print(
                f"run --sandbox: cannot listen on ports {ports} ({exc.strerror or exc}; another sandbox "
                f"running?): BOT_SANDBOX_PORT=N picks ports N to N+{SANDBOX_PORTS - 1} instead, "
                f"e.g. BOT_SANDBOX_PORT={other} python -m bot run --sandbox",
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

        from bot.campaign.config import load_config

        base, _ = load_config(config_path, os.environ)
        if hold_rehearsal(base) is None:  # held (the descriptor) until this process exits
            emulators.stop()
            print(
                "run --sandbox: another rehearsal is running beside this config.yaml "
                f"({base.path.parent / 'state'}); starting would empty its database: stop it first",
                file=sys.stderr,
            )
            return EXIT_RUNTIME
        database = sandbox_database(base)
        demo = demo_queue(base, utc_now())
        # The sandbox needs none of the real secrets: their absence is no news.
        runtime = Runtime(
            config_path, os.environ, adjust=adjust, extra_queues=(demo,), config_warnings=False, stop=stop
        )
        run_audience(emulators, audience_stop)
    else:
        # Unset secrets are said below, once per account (or in one line when none can post).
        runtime = Runtime(config_path, os.environ, config_warnings=False, stop=stop)
        for warning in runtime.config_warnings:
            if "`run` will not start" not in warning.message:
                log.warning("%s", warning)
    setup_logging(runtime.config.logging)
    unreadable = runtime.content_problem()
    if unreadable is not None:
        # Running with no content would post nothing, silently, for ever: refuse (exit 1).
        audience_stop.set()
        runtime.close()
        if emulators is not None:
            emulators.stop()
        raise InputError([unreadable])
    accounts = [a for p in runtime.config.enabled_platforms() for a in runtime.config.accounts(p)]
    if accounts and all(account.missing for account in accounts):
        # Running would only hold every post: say what is missing instead (exit 1).
        audience_stop.set()
        runtime.close()
        if emulators is not None:
            emulators.stop()
        print(
            f"run: no account can post: {missing_line(accounts)} "
            f"(set them in the environment or in {config_path.parent / '.env'})",
            file=sys.stderr,
        )
        return EXIT_INPUT
    for account in accounts:
        if account.missing:
            log.error(
                "not starting %s/%s: missing %s", account.platform, account.name, ", ".join(account.missing)
            )
    monitoring = DaemonMonitor(runtime)
    daemon = Daemon(runtime, stop=stop, monitor=monitoring)
    finished = True
    try:
        if once:
            results = daemon.run_once()
            daemon.deliveries.shutdown(wait=True)
            held = daemon.held_now()
            if held:
                print(f"run --once: {held}", file=sys.stderr)
            return EXIT_RUNTIME if held or any(r.outcome == "failed" for r in results) else EXIT_OK
        if seconds is not None:
            timer = threading.Timer(seconds, stop.set)
            timer.daemon = True
            timer.start()
        finished = daemon.run()
    finally:
        # Stopping already: a second signal during the last closes (or while the interpreter
        # exits, which puts back the default handler) would end the process with 143.
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, signal.SIG_IGN)
        audience_stop.set()
        monitoring.close_live_streams()
        if finished:
            monitoring.close()
        runtime.close()
        if emulators is not None:
            emulators.stop()
    if not finished:
        # Calls still hang past the bound: leave now (exit 0, as Heroku expects); their claims
        # stay unconfirmed and the next start reconciles them.
        logging.shutdown()
        os._exit(EXIT_OK)
    return EXIT_OK
