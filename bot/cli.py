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
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bot.campaign.model import PLATFORMS
from bot.errors import DatabaseUnavailable, InputError

if TYPE_CHECKING:
    from datetime import datetime

    from bot.campaign.model import Config, Queue
    from bot.daemon.runtime import Runtime
    from bot.ledger.deliveries import Ledger
    from bot.planning.planner import Progress

EXIT_OK, EXIT_INPUT, EXIT_USAGE, EXIT_RUNTIME = 0, 1, 2, 3
PLATFORM_CHOICES = list(PLATFORMS)


Command = Callable[[argparse.Namespace], int]


def cmd_check(args: argparse.Namespace) -> int:
    """Validate config.yaml and every content queue; print a summary per queue."""
    from datetime import UTC, datetime

    from bot.commands.check import check_campaign, describe_queue

    report = check_campaign(args.config, os.environ, datetime.now(UTC))
    for problem in report.problems:
        print(problem, file=sys.stderr)
    failed_accounts, checked_accounts, unset_accounts = 0, 0, 0
    failed_database = False
    if args.online and report.config is not None:
        from bot.commands.check import verify_accounts, verify_database

        for result in verify_accounts(report.config):
            if result.detail.startswith("not checked"):
                # Its unset variables are already one warning above: not said twice, not a failure.
                how = result.detail.partition(" not set ")[2]  # the `connect` that sets them, if any
                print(f"{result.platform} {result.account}: not checked (secrets not set) {how}".rstrip())
                unset_accounts += 1
                continue
            failed_accounts += not result.ok
            checked_accounts += 1
            mark = "ok" if result.ok else "FAILED"
            print(f"{result.platform} {result.account}: {mark} {result.detail}")
        database_ok, detail = verify_database(report.config)
        print(f"database: {'ok' if database_ok else 'FAILED'} {detail}")
        failed_database = not database_ok
    if report.config is not None:
        for queue in report.queues:
            print("\n".join(describe_queue(report.config, queue, report.next_slots[queue.name])))
    errors, warnings = len(report.errors), len(report.warnings)
    posts = sum(len(queue.posts) for queue in report.queues)
    online = (
        f", {failed_accounts} account{'s' * (failed_accounts != 1)} failed online" if failed_accounts else ""
    ) + (", the database failed online" if failed_database else "")
    print(
        f"{len(report.queues)} queues, {posts} posts: "
        f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}{online}"
    )
    if errors:
        return EXIT_INPUT
    if args.online and report.config is not None and not checked_accounts:
        # Asked to look online and looked at nothing: not a success to build on.
        why = "none has its secrets set" if unset_accounts else "no enabled platform has an account"
        print(f"check --online: no account was checked: {why}", file=sys.stderr)
        return EXIT_RUNTIME
    return EXIT_RUNTIME if failed_accounts or failed_database else EXIT_OK


def cmd_preview(args: argparse.Namespace) -> int:
    """Show the coming slots with the exact payload per platform and account.

    Reads the ledger, when there is one, so each slot shows the post it will really send next.
    """
    import json
    from datetime import UTC, datetime

    from bot.campaign.config import load_config
    from bot.commands.preview import build_preview, format_preview, preview_records
    from bot.planning.content import load_queues

    config, _ = load_config(args.config, os.environ)  # missing secrets do not matter here
    if args.sandbox:
        config = _sandbox_config(config)
    queues, problems = load_queues(config)
    errors = [p for p in problems if p.severity == "error"]
    for problem in errors:  # queues with errors are left out; the others are still shown
        print(problem, file=sys.stderr)
    if args.queue is not None and args.queue not in {q.name for q in queues}:
        from bot.campaign.findings import did_you_mean

        names = sorted(q.name for q in queues)
        hint = did_you_mean(args.queue, names)
        why = "; a queue with errors is left out: `python -m bot check` lists them" if errors else ""
        print(
            f"preview: no valid queue named {args.queue!r}{hint} (queues: {', '.join(names) or 'none'}){why}",
            file=sys.stderr,
        )
        return EXIT_INPUT if errors else EXIT_USAGE
    now = datetime.now(UTC)
    progress, posted = _ledger_progress(config, queues, now) or (None, None)
    entries = build_preview(
        config,
        queues,
        now,
        args.days,
        queue_name=args.queue,
        platform=args.platform,
        progress=progress,
        posted=posted,
    )
    if args.json:
        print(json.dumps(preview_records(entries), ensure_ascii=False, indent=1))
        return EXIT_INPUT if errors else EXIT_OK
    for line in _held_lines(config):  # what already waits, before what is to come
        print(line)
    if entries:
        print(format_preview(entries))
    else:
        print(f"preview: no slot in the next {args.days} day{'s' * (args.days != 1)}", file=sys.stderr)
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
            rt,
            args.queue,
            args.item_id,
            args.platform,
            dry_run=args.dry_run or args.json,
            out=sys.stdout,
            err=sys.stderr,
            as_json=args.json,
        )


def cmd_retract(args: argparse.Namespace) -> int:
    """Delete every copy of a post that we published."""
    from bot.commands.post import retract_post

    with _runtime(args) as rt:
        return retract_post(
            rt, args.queue, args.item_id, args.platform, out=sys.stdout, err=sys.stderr, dry_run=args.dry_run
        )


def cmd_status(args: argparse.Namespace) -> int:
    """Per queue and per account: what was posted, what is next, what is wrong."""
    import json

    from bot.commands.status import build_status, format_status

    with _runtime(args, sandbox=args.sandbox) as rt:
        status = build_status(rt)
        unreadable = rt.content_problem()
        invalid = any(p.severity == "error" for p in rt.load_problems)
    print(json.dumps(status, ensure_ascii=False, indent=2) if args.json else format_status(status))
    if unreadable is not None:  # the ledger's part is still worth showing
        print(unreadable, file=sys.stderr)
        return EXIT_INPUT
    return EXIT_INPUT if invalid else EXIT_OK


def cmd_mentions(args: argparse.Namespace) -> int:
    """Replies, mentions and hashtag posts tracked so far, each at the time it was written."""
    import signal
    import threading
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from bot.campaign.config import load_config
    from bot.campaign.moments import parse_since
    from bot.ledger.deliveries import open_ledger
    from bot.monitoring.mentionfilter import MentionFilter
    from bot.monitoring.mentionlog import Format, show_mentions
    from bot.monitoring.retention import forget_expired

    config, _ = load_config(args.config, os.environ)
    try:
        since = parse_since(args.since, datetime.now(UTC), ZoneInfo(config.timezone)) if args.since else None
    except ValueError as exc:
        print(f"mentions: --since: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.sandbox:
        config = _sandbox_config(config)
    wanted = MentionFilter(
        since=since, kinds=args.kind or (), platforms=args.platform or (), author=args.author, grep=args.grep
    )
    ledger = open_ledger(config.database_url)
    forget_expired(config, ledger.engine)  # retention holds here too, daemon or not
    if args.summary:
        return _mentions_summary(args, config, ledger, since)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):  # the ways to end `--follow`: exit 0
        signal.signal(signum, lambda signum, frame: stop.set())
    try:
        fmt: Format = "json" if args.json else "csv" if args.csv else "text"
        # The ledger keeps by when a post was seen, which is never before it was written.
        shown = show_mentions(
            ledger.mentions,
            sys.stdout,
            fmt=fmt,
            since=since,
            follow=args.follow,
            wait=lambda seconds: not stop.wait(seconds),
            keep=wanted.keep,
            hashtags=config.hashtags,  # stored posts' tags shown in the campaign's spelling
        )
    finally:
        ledger.close()
    if not shown:
        filtered = args.since or args.kind or args.platform or args.author or args.grep
        print("mentions: none" + (" match" if filtered else " tracked yet"), file=sys.stderr)
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    """Write one self-contained HTML page of the campaign (charts, figures, runway) for a period."""
    from datetime import UTC, datetime

    from bot.commands.report import write_report

    return write_report(
        args.config,
        os.environ,
        datetime.now(UTC),
        since=args.since,
        until=args.until,
        out=args.out,
        sandbox=args.sandbox,
        stdout=sys.stdout,
        stderr=sys.stderr,
    )


def _mentions_summary(
    args: argparse.Namespace, config: Config, ledger: Ledger, since: datetime | None
) -> int:
    """`mentions --summary`: counts by day, kind and network (text or `--json`)."""
    import json
    from zoneinfo import ZoneInfo

    from bot.report.summary import format_summary, mention_summary, summary_records

    if args.follow or args.csv:
        print("mentions: --summary goes with neither --follow nor --csv", file=sys.stderr)
        ledger.close()
        return EXIT_USAGE
    zone = ZoneInfo(config.timezone)
    try:
        counts = mention_summary(ledger.engine, zone, since)
    finally:
        ledger.close()
    print(json.dumps(summary_records(counts), indent=1) if args.json else format_summary(counts, zone))
    return EXIT_OK


def cmd_pause(args: argparse.Namespace) -> int:
    """Stop all posting (kept in the database; running daemons honour it within 5 s).

    The emergency brake: with errors in config.yaml it still pauses the database the config's
    `database` line names (else DATABASE_URL, else the default), and says which.
    """
    try:
        with _runtime(args, sandbox=args.sandbox) as rt:
            line, newly = _pause(rt.ledger, args.reason, rt.now())
            if newly:
                rt.alert("paused", "posting " + line)
    except InputError as exc:
        if args.sandbox:
            raise
        return _pause_despite(exc, args)
    print(line)
    return EXIT_OK


def _pause(ledger: Ledger, reason: str | None, now: datetime) -> tuple[str, bool]:
    """Pause, or keep a pause's first time and its reason unless a new one is given.

    Returns what to say, and whether posting was on until now.
    """
    state = ledger.shared.pause_state()
    if not state.paused:
        ledger.shared.pause(reason, now)
        return "paused" + (f": {reason}" if reason else ""), True
    reason = reason or state.reason
    if reason != state.reason:
        ledger.shared.pause(reason, state.since or now)
    since = state.since.isoformat(timespec="seconds") if state.since else "?"
    return f"already paused since {since}" + (f": {reason}" if reason else ""), False


def _pause_despite(broken: InputError, args: argparse.Namespace) -> int:
    """`pause` with a config.yaml that does not load: the ledger it names (or the default) is
    paused all the same; no alert, as the webhook cannot be trusted."""
    from datetime import UTC, datetime

    from bot.campaign.config import rescue_database_url
    from bot.ledger.database import database_exists
    from bot.ledger.deliveries import open_ledger

    for problem in broken.problems:
        print(problem, file=sys.stderr)
    url, source = rescue_database_url(args.config, os.environ)
    where = f"{_describe_database(url)}, from {source}"
    if not database_exists(url):
        print(f"pause: nothing paused: no {where}; fix the errors above", file=sys.stderr)
        return EXIT_INPUT
    print(f"pause: config.yaml has errors: pausing the {where}; no alert is sent", file=sys.stderr)
    ledger = open_ledger(url)
    try:
        print(_pause(ledger, args.reason, datetime.now(UTC))[0])
    finally:
        ledger.close()
    return EXIT_OK


def _describe_database(url: str) -> str:
    """The database for a person: a SQLite file's path, or PostgreSQL's host and name, never a password."""
    from bot.ledger.database import normalise_url

    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        return f"database {parsed.database}"
    return f"PostgreSQL database {parsed.database} on {parsed.host or 'localhost'}"


def cmd_resume(args: argparse.Namespace) -> int:
    """Lift a pause (config.yaml must be valid: posting starts again)."""
    with _runtime(args, sandbox=args.sandbox) as rt:
        if not rt.ledger.shared.pause_state().paused:
            print("not paused: posting is already on")
            return EXIT_OK
        rt.ledger.shared.resume(rt.now())
        rt.alert("resumed", "posting resumed")
    print("resumed")
    return EXIT_OK


def cmd_new_queue(args: argparse.Namespace) -> int:
    """Write a commented queue file, content/NAME.yaml, to start from."""
    from bot.campaign.config import load_config
    from bot.commands.newqueue import new_queue

    config, _ = load_config(args.config, os.environ)
    path, why = new_queue(config, args.name)
    if path is None:
        print(f"new-queue: {why}", file=sys.stderr)
        return EXIT_USAGE
    print(f"wrote {path}: edit it, then `python -m bot check`")
    return EXIT_OK


def cmd_sandbox(args: argparse.Namespace) -> int:
    """Run the platform emulators; print their URLs and credentials as one JSON line."""
    import json
    import signal
    import threading

    from bot.sandbox import new_control_token, start_sandbox

    try:
        token = new_control_token()
        sandbox = start_sandbox(args.port, accounts=args.accounts, limits=args.limits, control_token=token)
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


def cmd_connect(args: argparse.Namespace) -> int:
    """Connect one account step by step; its keys are written to .env beside config.yaml.

    Interactive: it says what to click on the network's site and asks for what it shows.
    Stopped half-way, it continues where it was when run again. docs/accounts.md has the steps.
    """
    from bot.commands.connect import run_connect
    from bot.commands.dialogue import Dialogue

    dialogue = Dialogue(sys.stdin, sys.stdout, sys.stderr)
    return run_connect(args.config, args.platform, args.account, dialogue, os.environ)


def _ledger_progress(
    config: Config, queues: Sequence[Queue], now: datetime
) -> tuple[dict[str, Progress], dict[tuple[str, str], list[datetime]]] | None:
    """Each queue's progress and each account's posts of the last day, from the ledger; None
    (from the start) when there is no ledger yet."""
    from datetime import timedelta

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
        progress = {q.name: progress_from_history(ledger.slots.sent_posts(q.name)) for q in queues}
        return progress, ledger.post_times(now - timedelta(days=1))
    finally:
        ledger.close()


def _held_lines(config: Config) -> list[str]:
    """Deliveries the ledger holds for accounts that cannot post (none without a ledger)."""
    from sqlalchemy.exc import SQLAlchemyError

    from bot.delivery.jobs import held_deliveries, held_until, held_why
    from bot.ledger.database import database_exists
    from bot.ledger.deliveries import open_ledger

    if not database_exists(config.database_url):
        return []
    try:
        ledger = open_ledger(config.database_url)
        try:
            refused = ledger.shared.refused()
            held = held_deliveries(config, ledger.unconfirmed_deliveries(), refused)
        finally:
            ledger.close()
    except SQLAlchemyError:
        return []  # `preview` already said it cannot read the database

    return [
        f"HELD {row.key.queue}/{row.key.post_id} for {row.key.platform}/{row.key.account}: "
        + (
            f"sent once {', '.join(account.missing)} set"
            if account.missing
            else f"{held_why(account, refused)}; {held_until(account)}"
        )
        for row, account in held
    ] + ([""] if held else [])


class NoSandboxYet(Exception):
    """`--sandbox` before any `run --sandbox`: there is nothing to show."""


def _sandbox_config(config: Config) -> Config:
    """The config as `run --sandbox` ran it (its own database and mentions log)."""
    from bot.daemon.rehearsal import sandbox_view

    view = sandbox_view(config)
    if view is None:
        raise NoSandboxYet()
    return view


@contextlib.contextmanager
def _runtime(args: argparse.Namespace, *, sandbox: bool = False) -> Iterator[Runtime]:
    """Config, content, ledger and clients for one command; closed (alerts sent) on the way out."""

    from bot.campaign.model import LoggingConfig
    from bot.daemon.logs import setup_logging
    from bot.daemon.runtime import Runtime

    setup_logging(LoggingConfig())
    extra: tuple[Queue, ...] = ()
    if sandbox:
        from datetime import UTC, datetime

        from bot.campaign.config import load_config
        from bot.daemon.rehearsal import demo_queue

        base = load_config(args.config, os.environ)[0]
        _sandbox_config(base)  # refuses before a database is created
        extra = (demo_queue(base, datetime.now(UTC)),)  # its counts, beside the campaign's queues
    rt = Runtime(
        args.config,
        os.environ,
        adjust=_sandbox_config if sandbox else lambda config: config,
        extra_queues=extra,
        config_warnings=not sandbox,
        content_warnings=False,
    )
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


def _days(text: str) -> int:
    """A day count for `preview`: at most a year, the horizon any campaign plans for."""
    if not text.isdigit() or not 1 <= int(text) <= 366:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days from 1 to 366")
    return int(text)


def _base_port(text: str) -> int:
    """A port N such that N to N+4 (X, Bluesky, Mastodon, Facebook, Instagram) are all valid ports."""
    if not text.isdigit() or not 1 <= int(text) <= 65531:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port from 1 to 65531 (N to N+4 are used)")
    return int(text)


def _version() -> str:
    from bot import __version__

    return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="campaign-bot", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("config.yaml"), help="default: ./config.yaml")
    parser.add_argument("--version", action="version", version=f"campaign-bot {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Command) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=(func.__doc__ or "").splitlines()[0], description=func.__doc__)
        p.set_defaults(func=func)
        return p

    p = add("check", cmd_check)
    p.add_argument("--online", action="store_true", help="also verify each account with one read-only call")

    p = add("preview", cmd_preview)
    p.add_argument("--days", type=_days, default=7, help="how many days ahead, 1-366 (default 7)")
    p.add_argument("--queue", help="only this queue (default: all)")
    p.add_argument("--platform", choices=PLATFORM_CHOICES, help="only this platform (default: all)")
    p.add_argument("--json", action="store_true", help="a JSON array, one object per slot, instead of text")
    p.add_argument(
        "--sandbox",
        action="store_true",
        help="show what the last `run --sandbox` did (its own database), not the campaign's",
    )

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
    p.add_argument("queue", help="the queue's name (see `check`)")
    p.add_argument("item_id", nargs="?", help="a post's id (default: the queue's next post)")
    p.add_argument("--platform", action="append", choices=PLATFORM_CHOICES, help="repeatable (default: all)")
    p.add_argument("--dry-run", action="store_true", help="show the payloads as `preview` does; send nothing")
    p.add_argument("--json", action="store_true", help="with --dry-run: one JSON object per target")

    p = add("retract", cmd_retract)
    p.add_argument("queue", help="the queue's name")
    p.add_argument("item_id", help="the post's id")
    p.add_argument("--platform", action="append", choices=PLATFORM_CHOICES, help="repeatable (default: all)")
    p.add_argument("--dry-run", action="store_true", help="say what would be deleted; delete nothing")

    p = add("status", cmd_status)
    p.add_argument("--json", action="store_true", help="JSON instead of text")
    p.add_argument(
        "--sandbox",
        action="store_true",
        help="show what the last `run --sandbox` did (its own database), not the campaign's",
    )

    p = add("mentions", cmd_mentions)
    p.add_argument(
        "--since",
        metavar="WHEN",
        help="written in the last 30m, 2h, 1d, 2w, or since a date (default: all kept)",
    )
    p.add_argument(
        "--kind", action="append", choices=["reply", "mention", "hashtag"], help="repeatable (default: all)"
    )
    p.add_argument("--platform", action="append", choices=PLATFORM_CHOICES, help="repeatable (default: all)")
    p.add_argument("--author", help="a handle or part of one, any case (default: everyone)")
    p.add_argument("--grep", metavar="TEXT", help="only posts whose text holds this, any case (default: all)")
    p.add_argument("--follow", action="store_true", help="keep printing new ones until Ctrl-C")
    p.add_argument("--summary", action="store_true", help="counts by day, kind and network")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="mentions-log JSON lines (default: text)")
    fmt.add_argument(
        "--csv",
        action="store_true",
        help="CSV with a header row; a cell starting with = + - @ gets a leading ' so that "
        "spreadsheets show it as text (default: text)",
    )
    p.add_argument(
        "--sandbox",
        action="store_true",
        help="show what the last `run --sandbox` did (its own database), not the campaign's",
    )

    p = add("report", cmd_report)
    p.add_argument("--since", metavar="DURATION|DATE", help="7d, or 2026-12-01 (default: the first record)")
    p.add_argument("--until", metavar="DATE", help="a date (to its end) or date and time (default: now)")
    p.add_argument("--out", type=Path, metavar="PATH", help="default: reports/report-<date>.html")
    p.add_argument("--sandbox", action="store_true", help="the last `run --sandbox` rehearsal")

    p = add("pause", cmd_pause)
    p.add_argument("--reason", help="shown by `status` and in the alert (default: none)")
    p.add_argument("--sandbox", action="store_true", help="pause the `run --sandbox` rehearsal instead")
    p = add("resume", cmd_resume)
    p.add_argument("--sandbox", action="store_true", help="resume the `run --sandbox` rehearsal instead")

    p = add("new-queue", cmd_new_queue)
    p.add_argument("name", help="the queue's name, also its file name (content/NAME.yaml)")
    p = add("connect", cmd_connect)
    p.add_argument(
        "platform", type=str.lower, choices=["x", "bluesky", "mastodon"], help="the network to connect"
    )
    p.add_argument("--account", metavar="NAME", help="the account's name in config.yaml (needed if several)")

    p = add("sandbox", cmd_sandbox)
    p.add_argument(
        "--port",
        type=_base_port,
        help="X on N, Bluesky N+1, Mastodon N+2, Facebook N+3, Instagram N+4 (default: free ports)",
    )
    p.add_argument("--accounts", type=_count, default=2, help="accounts per platform (default 2)")
    p.add_argument(
        "--limits",
        default="none",
        choices=["none", "free", "basic", "pro"],
        help="rate limits (default: none)",
    )
    return parser


def _database_line(args: argparse.Namespace) -> str:
    """`config.yaml:LINE: ` of config.yaml's `database` key, or "" (a rehearsal's own database)."""
    from bot.campaign.findings import display_path
    from bot.campaign.yamlsource import read_yaml

    if getattr(args, "sandbox", False):
        return ""
    shown = display_path(args.config)
    try:
        doc = read_yaml(args.config, shown)
    except InputError:
        return ""
    if not isinstance(doc.data, dict) or "database" not in doc.data:
        return ""
    return f"{shown}:{doc.line(('database',))}: "


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except InputError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_INPUT
    except NoSandboxYet:
        print("--sandbox: nothing to show yet: start one with `python -m bot run --sandbox`", file=sys.stderr)
        return EXIT_RUNTIME
    except KeyboardInterrupt:
        return EXIT_RUNTIME
    except BrokenPipeError:
        # The reader left (`preview | head`): no traceback; stdout goes nowhere from here on,
        # so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except ImportError as exc:
        # Run by an interpreter without the project's dependencies (not the venv).
        print(
            f"campaign-bot: {exc}: this Python ({sys.executable}) lacks the project's dependencies; "
            "run the bot with the virtualenv's (.venv/bin/python -m bot ...), made as the README's "
            "first command makes it, or `pip install -e .` into this one",
            file=sys.stderr,
        )
        return EXIT_RUNTIME
    except DatabaseUnavailable as exc:
        print(f"{_database_line(args)}database: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    except Exception as exc:
        # A runtime failure exits 3 (Python's own 1 would read as "invalid input" here).
        from sqlalchemy.exc import SQLAlchemyError

        if isinstance(exc, SQLAlchemyError):
            from bot.ledger.database import describe_database_error

            print(f"database: {describe_database_error(exc)}", file=sys.stderr)
        else:
            from bot.daemon.logs import safe_traceback

            # A bug: its traceback is the useful report, with any database error in its chain
            # shown by type alone (a statement's text can quote a session's tokens).
            print(safe_traceback(sys.exc_info()), file=sys.stderr, end="")
        return EXIT_RUNTIME
    return code
