"""The command line: `python -m bot [--config PATH] COMMAND`.

A thin layer: each command parses its arguments, calls library functions, prints, and returns
an exit code. Exit 0 success, 1 invalid input (config or content), 2 usage error, 3 runtime
failure. Heavy imports happen inside the commands, so `--help` and `check` start fast.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bot.campaign.model import PLATFORMS
from bot.errors import InputError

if TYPE_CHECKING:
    from bot.campaign.model import Config, Queue
    from bot.daemon.runtime import Runtime
    from bot.planning.planner import Progress

EXIT_OK, EXIT_INPUT, EXIT_USAGE, EXIT_RUNTIME = 0, 1, 2, 3

Command = Callable[[argparse.Namespace], int]


def cmd_check(args: argparse.Namespace) -> int:
    """Validate config.yaml and every content queue; print a summary per queue."""
    from datetime import UTC, datetime

    from bot.commands.check import check_campaign, describe_queue

    report = check_campaign(args.config, os.environ, datetime.now(UTC))
    for problem in report.problems:
        print(problem, file=sys.stderr)
    failed_accounts = 0
    if args.online and report.config is not None:
        from bot.commands.check import verify_accounts

        for result in verify_accounts(report.config):
            failed_accounts += not result.ok
            mark = "ok" if result.ok else "FAILED"
            print(f"{result.platform} {result.account}: {mark} {result.detail}")
    if report.config is not None:
        for queue in report.queues:
            print("\n".join(describe_queue(report.config, queue, report.next_slots[queue.name])))
    errors, warnings = len(report.errors), len(report.warnings)
    posts = sum(len(queue.posts) for queue in report.queues)
    print(
        f"{len(report.queues)} queues, {posts} posts: "
        f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}"
    )
    if errors:
        return EXIT_INPUT
    return EXIT_RUNTIME if failed_accounts else EXIT_OK


def cmd_preview(args: argparse.Namespace) -> int:
    """Show the coming slots with the exact payload per platform and account.

    Reads the ledger, when there is one, so each slot shows the post it will really send next.
    """
    import json
    from datetime import UTC, datetime

    from bot.campaign.config import load_config
    from bot.campaign.queues import load_queues
    from bot.commands.preview import build_preview, format_preview, preview_records

    config, _ = load_config(args.config, os.environ)  # missing secrets do not matter here
    queues, problems = load_queues(config)
    errors = [p for p in problems if p.severity == "error"]
    for problem in errors:  # queues with errors are left out; the others are still shown
        print(problem, file=sys.stderr)
    if args.queue is not None and args.queue not in {q.name for q in queues}:
        known = ", ".join(sorted(q.name for q in queues)) or "none"
        print(f"preview: no valid queue named {args.queue!r} (queues: {known})", file=sys.stderr)
        return EXIT_INPUT if errors else EXIT_USAGE
    entries = build_preview(
        config,
        queues,
        datetime.now(UTC),
        args.days,
        queue_name=args.queue,
        platform=args.platform,
        progress=_ledger_progress(config, queues),
    )
    if args.json:
        print(json.dumps(preview_records(entries), ensure_ascii=False, indent=1))
    else:
        print(format_preview(entries))
    return EXIT_INPUT if errors else EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    """Run the daemon."""
    from bot.commands.run import run_daemon

    return run_daemon(args.config, once=args.once, duration=args.duration, sandbox=args.sandbox)


def cmd_post(args: argparse.Namespace) -> int:
    """Send a queue's next post now, or one post to every target it has not reached."""
    from bot.commands.post import post_now

    with _runtime(args) as rt:
        return post_now(
            rt, args.queue, args.item_id, args.platform, dry_run=args.dry_run, out=sys.stdout, err=sys.stderr
        )


def cmd_retract(args: argparse.Namespace) -> int:
    """Delete every copy of a post that we published."""
    from bot.commands.post import retract_post

    with _runtime(args) as rt:
        return retract_post(rt, args.queue, args.item_id, args.platform, out=sys.stdout, err=sys.stderr)


def cmd_status(args: argparse.Namespace) -> int:
    """Per queue and per account: what was posted, what is next, what is wrong."""
    import json

    from bot.commands.status import build_status, format_status

    with _runtime(args) as rt:
        status = build_status(rt)
        unreadable = rt.content_problem()
    print(json.dumps(status, ensure_ascii=False, indent=2) if args.json else format_status(status))
    if unreadable is not None:  # the ledger's part is still worth showing
        print(unreadable, file=sys.stderr)
        return EXIT_INPUT
    return EXIT_OK


def cmd_mentions(args: argparse.Namespace) -> int:
    """Replies, mentions and hashtag posts tracked so far."""
    import signal
    import threading
    from datetime import UTC, datetime

    from bot.campaign.config import load_config
    from bot.campaign.durations import parse_duration
    from bot.ledger.deliveries import open_ledger
    from bot.monitoring.mentionlog import Format, show_mentions

    try:
        since = datetime.now(UTC) - parse_duration(args.since) if args.since else None
    except ValueError as exc:
        print(f"mentions: --since: {exc}", file=sys.stderr)
        return EXIT_USAGE
    config, _ = load_config(args.config, os.environ)
    ledger = open_ledger(config.database_url)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):  # the ways to end `--follow`: exit 0
        signal.signal(signum, lambda signum, frame: stop.set())
    try:
        fmt: Format = "json" if args.json else "csv" if args.csv else "text"
        show_mentions(
            ledger.mentions,
            sys.stdout,
            fmt=fmt,
            since=since,
            follow=args.follow,
            wait=lambda seconds: not stop.wait(seconds),
        )
    finally:
        ledger.close()
    return EXIT_OK


def cmd_pause(args: argparse.Namespace) -> int:
    """Stop all posting (kept in the database; running daemons honour it within 5 s)."""
    with _runtime(args) as rt:
        rt.ledger.shared.pause(args.reason, rt.now())
        rt.alert("paused", "posting paused" + (f": {args.reason}" if args.reason else ""))
    print("paused" + (f": {args.reason}" if args.reason else ""))
    return EXIT_OK


def cmd_resume(args: argparse.Namespace) -> int:
    """Lift a pause."""
    with _runtime(args) as rt:
        rt.ledger.shared.resume(rt.now())
        rt.alert("resumed", "posting resumed")
    print("resumed")
    return EXIT_OK


def cmd_sandbox(args: argparse.Namespace) -> int:
    """Run the platform emulators; print their URLs and credentials as one JSON line."""
    import json
    import signal
    import threading

    from bot.sandbox import start_sandbox

    try:
        sandbox = start_sandbox(args.port, accounts=args.accounts, limits=args.limits)
    except OSError as exc:
        print(f"sandbox: cannot listen on 127.0.0.1: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    stopped = threading.Event()
    # SIGTERM and Ctrl-C are the normal ways to stop (exit 0). Both handlers go in before the
    # line a caller waits for: a signal sent right after it must not land outside the wait.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda signum, frame: stopped.set())
    print(json.dumps(sandbox.describe()), flush=True)
    try:
        stopped.wait()
    finally:
        sandbox.stop()
    return EXIT_OK


def _ledger_progress(config: Config, queues: Sequence[Queue]) -> dict[str, Progress] | None:
    """Each queue's progress from the ledger; None (from the start) when there is no ledger yet."""
    from sqlalchemy.exc import SQLAlchemyError

    from bot.ledger.database import database_exists
    from bot.ledger.deliveries import open_ledger
    from bot.planning.planner import progress_from_history

    if not database_exists(config.database_url):
        return None  # a staff laptop before any run: nothing was sent, and nothing is created
    try:
        ledger = open_ledger(config.database_url)
    except SQLAlchemyError as exc:
        # Never the URL: it may hold the password.
        print(
            f"preview: cannot read the database ({type(exc).__name__}); as if nothing was sent",
            file=sys.stderr,
        )
        return None
    try:
        return {q.name: progress_from_history(ledger.slots.sent_posts(q.name)) for q in queues}
    finally:
        ledger.close()


@contextlib.contextmanager
def _runtime(args: argparse.Namespace) -> Iterator[Runtime]:
    """Config, content, ledger and clients for one command; closed (alerts sent) on the way out."""

    from bot.campaign.model import LoggingConfig
    from bot.daemon.logs import setup_logging
    from bot.daemon.runtime import Runtime

    setup_logging(LoggingConfig())
    rt = Runtime(args.config, os.environ)
    setup_logging(rt.config.logging)
    try:
        yield rt
    finally:
        rt.close()


def _count(text: str) -> int:
    """A whole number of at least 1; anything else is a usage error (exit 2)."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def _base_port(text: str) -> int:
    """A port N such that N to N+3 (X, Bluesky, Mastodon, Facebook) are all valid ports."""
    if not text.isdigit() or not 1 <= int(text) <= 65532:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port from 1 to 65532 (N to N+3 are used)")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="campaign-bot", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("config.yaml"), help="default: ./config.yaml")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Command) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=(func.__doc__ or "").splitlines()[0], description=func.__doc__)
        p.set_defaults(func=func)
        return p

    p = add("check", cmd_check)
    p.add_argument("--online", action="store_true", help="also verify each account with one read-only call")

    p = add("preview", cmd_preview)
    p.add_argument("--days", type=_count, default=7)
    p.add_argument("--queue")
    p.add_argument("--platform", choices=list(PLATFORMS))
    p.add_argument("--json", action="store_true")

    p = add("run", cmd_run)
    p.add_argument("--sandbox", action="store_true", help="start the emulators in-process and post to them")
    p.add_argument("--once", action="store_true", help="fire every due slot, monitor once, exit")
    p.add_argument(
        "--for",
        dest="duration",
        metavar="DURATION",
        help="run this long, then stop (30s, 5m, 2h, 1d)",
    )

    p = add("post", cmd_post)
    p.add_argument("queue")
    p.add_argument("item_id", nargs="?")
    p.add_argument("--platform", action="append", choices=list(PLATFORMS))
    p.add_argument("--dry-run", action="store_true")

    p = add("retract", cmd_retract)
    p.add_argument("queue")
    p.add_argument("item_id")
    p.add_argument("--platform", action="append", choices=list(PLATFORMS))

    p = add("status", cmd_status)
    p.add_argument("--json", action="store_true")

    p = add("mentions", cmd_mentions)
    p.add_argument("--since", metavar="DURATION")
    p.add_argument("--follow", action="store_true")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true")
    fmt.add_argument("--csv", action="store_true")

    p = add("pause", cmd_pause)
    p.add_argument("--reason")
    add("resume", cmd_resume)

    p = add("sandbox", cmd_sandbox)
    p.add_argument(
        "--port",
        type=_base_port,
        help="X on N, Bluesky on N+1, Mastodon on N+2, Facebook on N+3 (default: free ports)",
    )
    p.add_argument("--accounts", type=_count, default=2, help="accounts per platform (default 2)")
    p.add_argument("--limits", default="none", choices=["none", "free", "basic", "pro"])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except InputError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        return EXIT_RUNTIME
    except BrokenPipeError:
        # The reader left (`preview | head`): no traceback; stdout goes nowhere from here on,
        # so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except ImportError as exc:
        # Run by an interpreter without the project's dependencies (not the venv).
        print(f"campaign-bot: {exc}; install it with `pip install -e .`", file=sys.stderr)
        return EXIT_RUNTIME
    except Exception as exc:
        # A runtime failure exits 3 (Python's own 1 would read as "invalid input" here).
        from sqlalchemy.exc import SQLAlchemyError

        if isinstance(exc, SQLAlchemyError):
            # The driver's own words (host, port, reason), never the URL with its password nor
            # a statement's parameters (a session blob).
            reason = str(getattr(exc, "orig", None) or type(exc).__name__).strip().splitlines()[0]
            print(f"database: {reason}", file=sys.stderr)
        else:
            traceback.print_exc()  # a bug: its traceback is the useful report
        return EXIT_RUNTIME
    return code
