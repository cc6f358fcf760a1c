"""`check`: validate config.yaml and every queue, and summarise each queue.

The command itself (bot.cli.cmd_check) only prints what `check_campaign` returns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.campaign.config import load_config
from bot.campaign.durations import format_duration
from bot.campaign.findings import display_path
from bot.campaign.model import Config, Queue
from bot.campaign.yamlsource import read_yaml
from bot.errors import InputError, Problem
from bot.planning.content import load_queues
from bot.planning.limits import limit_collisions
from bot.planning.slots import next_slots as upcoming_slots
from bot.planning.xbudget import x_budget_problems

CONNECTABLE = ("x", "bluesky", "mastodon")  # the networks `connect` walks a person through


NEXT_SLOTS = 3


@dataclass(frozen=True)
class CheckReport:
    """What `check` found: every problem (config first, then content) and the valid queues."""

    problems: list[Problem]
    config: Config | None = None
    queues: list[Queue] = field(default_factory=list)
    next_slots: Mapping[str, list[datetime]] = field(default_factory=dict)  # by queue name

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]


def check_campaign(config_path: Path, environ: Mapping[str, str], now: datetime) -> CheckReport:
    """Load and validate everything; never raises for bad input (it is all in the report)."""
    try:
        config, problems = load_config(config_path, environ)
    except InputError as exc:
        # Content is checked against the config (platforms, accounts), so it waits for a valid one.
        return CheckReport(problems=exc.problems)
    queues, content_problems = load_queues(config)
    slots = {queue.name: next_slots(config, queue, now, NEXT_SLOTS) for queue in queues}
    problems = [
        *problems,
        *content_problems,
        *check_schedules(config, queues, now),
        *check_past(config, queues, now, slots),
    ]
    return CheckReport(problems=problems, config=config, queues=queues, next_slots=slots)


@dataclass(frozen=True)
class AccountCheck:
    platform: str
    account: str
    ok: bool
    detail: str  # the handle on success, the platform's own message otherwise (never a secret)


def verify_accounts(config: Config, *, timeout: float = 15) -> list[AccountCheck]:
    """`check --online`: a read-only look at each account whose credentials are all set.

    Each is diagnosed (`bot.platforms.onboarding.diagnose`): who it is, and in a person's words
    what keeps it from posting (a read-only X app, a missing Mastodon scope, a revoked token, a
    Bluesky main password) and where in the network's settings to fix it. Bluesky logs in afresh
    (createSession) rather than touching the daemon's saved session: a person runs this by hand,
    far below Bluesky's 30 logins per 5 minutes.
    """
    from bot.errors import PlatformError
    from bot.platforms.onboarding import diagnose

    results = []
    seen: dict[tuple[str, str, str], str] = {}  # (platform, server, handle) -> the first account's name
    for platform in config.enabled_platforms():
        for account in config.accounts(platform):
            if account.missing:
                detail = f"not checked: {', '.join(account.missing)} not set " + (
                    f"(`python -m bot connect {platform} --account {account.name}` sets it up)"
                    if platform in CONNECTABLE
                    else ""
                )
                results.append(AccountCheck(platform, account.name, False, detail))
                continue
            try:
                found = diagnose(account, timeout=timeout, content_dir=config.content_dir)
            except PlatformError as exc:
                results.append(AccountCheck(platform, account.name, False, f"{type(exc).__name__}: {exc}"))
                continue
            detail = "; ".join(found.problems) if found.problems else str(found.handle)
            # Two entries signed in as one account (two tokens of one user) post everything twice.
            who = (platform, account.base_url.rstrip("/").lower(), str(found.handle).lower())
            if found.handle and who in seen:
                detail = (
                    f"{found.handle} is the same account as {platform}/{seen[who]}: every post would "
                    "go out twice, so remove one of them from config.yaml"
                )
                results.append(AccountCheck(platform, account.name, False, detail))
                continue
            if found.handle:
                seen[who] = account.name
            results.append(AccountCheck(platform, account.name, found.ok, detail))
    return results


def verify_database(config: Config) -> tuple[bool, str]:
    """`check --online`: open the database as `run` would (a SQLite file and its folder are
    created) without touching its tables; (ok, the URL without its password or why it failed)."""
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    from bot.errors import DatabaseUnavailable
    from bot.ledger.database import connect, describe_database_error, shown_url

    url = config.database_url
    if url.startswith("postgresql") and "connect_timeout=" not in url:
        # libpq waits for an address that drops packets as long as the OS does (minutes).
        url += ("&" if "?" in url else "?") + "connect_timeout=10"
    try:
        engine = connect(url)
        try:
            with engine.connect().execution_options(ledger_read=True) as connection:
                connection.execute(text("SELECT 1"))
        finally:
            engine.dispose()
    except (DatabaseUnavailable, SQLAlchemyError, ValueError) as exc:
        return False, f"{describe_database_error(exc)} ({shown_url(config.database_url)})"
    return True, shown_url(config.database_url)


def check_schedules(config: Config, queues: Sequence[Queue], now: datetime) -> list[Problem]:
    """Warnings about what the schedules will do: an X account's posts beyond its budget, and
    queues that collide on an account's own limits (its posts then go out late)."""
    found = [*x_budget_problems(config, queues, now), *limit_collisions(config, queues, now)]
    return [replace(p, file=display_path(Path(p.file))) for p in found]


def check_past(
    config: Config, queues: Sequence[Queue], now: datetime, upcoming: Mapping[str, list[datetime]]
) -> list[Problem]:
    """Warnings for times already gone: a pinned post or an `expires` in the past, a queue
    with no slot left. Each would be accepted and then silently never posted."""
    problems: list[Problem] = []
    for queue in queues:
        file = display_path(queue.file)

        def warn(line: int, message: str) -> None:
            problems.append(Problem(file, line, message, "warning"))  # noqa: B023 (used at once)

        for post in queue.posts:
            if post.at is not None and post.at < now - config.schedule_grace:
                warn(
                    post.line, f"post {post.id}: at: {_local(post.at, queue)} is in the past: it is not sent"
                )
            elif post.expires is not None and post.expires <= now:
                warn(post.line, f"post {post.id}: expired at {_local(post.expires, queue)}: it is not sent")
        if queue.expires is not None and queue.expires <= now:
            line = read_yaml(queue.file, file).line(("expires",))
            warn(line, f"expires: the queue expired at {_local(queue.expires, queue)} and posts no more")
        elif not upcoming.get(queue.name):
            line = read_yaml(queue.file, file).line(("schedule",))
            warn(line, "no slot from now on: this queue will not post (look at schedule, start and expires)")
    return problems


def _local(when: datetime, queue: Queue) -> str:
    return when.astimezone(ZoneInfo(queue.schedule.timezone)).strftime("%Y-%m-%d %H:%M")


def next_slots(config: Config, queue: Queue, now: datetime, count: int) -> list[datetime]:
    """The queue's next `count` slot times after `now` (aware datetimes, jitter included)."""
    return [slot.fire_at for slot in upcoming_slots(queue, now, count)]


def describe_queue(config: Config, queue: Queue, slots: Sequence[datetime]) -> list[str]:
    """A queue's summary lines: posts, platforms, accounts, next slots."""
    pinned = sum(1 for post in queue.posts if post.at is not None)
    threads = sum(1 for post in queue.posts if post.is_thread)
    counts = f"{len(queue.posts)} posts"
    extras = [f"{threads} thread{'s' * (threads != 1)}"] if threads else []
    extras += [f"{pinned} pinned"] if pinned else []
    if extras:
        counts += f" ({', '.join(extras)})"
    targets = []
    for platform in queue.platforms:
        names = [
            a.name for a in config.accounts(platform) if queue.accounts is None or a.name in queue.accounts
        ]
        targets.append(f"{platform}: {', '.join(names) or 'no account'}")
    lines = [
        f"{queue.name} ({display_path(queue.file)}): {counts}",
        f"  platforms and accounts: {'; '.join(targets) or 'none'}",
        f"  schedule: {describe_schedule(queue)}",
    ]
    if slots:
        zone = ZoneInfo(queue.schedule.timezone)
        shown = ", ".join(slot.astimezone(zone).strftime("%a %Y-%m-%d %H:%M %Z") for slot in slots)
        lines.append(f"  next slots: {shown}")
    return lines


def describe_schedule(queue: Queue) -> str:
    schedule = queue.schedule
    if schedule.kind == "cron":
        text = f"cron {schedule.cron!r}"
    elif schedule.kind == "every":
        text = f"every {format_duration(schedule.every)}" if schedule.every else "every ?"
    else:
        text = f"{len(schedule.at)} fixed times"
    text += f" ({schedule.timezone})"
    if schedule.quiet_hours:
        start, end = schedule.quiet_hours
        text += f", quiet {start:%H:%M}-{end:%H:%M}"
    if schedule.jitter:
        text += f", jitter up to {format_duration(schedule.jitter)}"
    return text + f", {queue.order}, then {queue.when_exhausted}"
