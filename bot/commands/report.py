"""`report`: one self-contained HTML page of the campaign for a period, to open, print or share.

Reads the ledger (never creates it: no database yet is an empty report) and the content queues,
counts with `bot.report.figures`, draws with `bot.report.charts` (matplotlib, the `report` extra)
and writes the page atomically. The period defaults to everything the ledger holds.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo

from bot.campaign.config import load_config
from bot.campaign.durations import parse_duration
from bot.campaign.model import Config, Queue
from bot.campaign.moments import parse_moment
from bot.campaign.queues import load_queues
from bot.ledger.database import database_exists
from bot.ledger.deliveries import open_ledger
from bot.monitoring.retention import forget_expired
from bot.planning.planner import Progress, progress_from_history
from bot.report.figures import Account, Figures, activity_span, read_figures
from bot.report.page import render_page
from bot.report.period import Period
from bot.report.runway import runways

EXIT_OK, EXIT_USAGE, EXIT_RUNTIME = 0, 2, 3
INSTALL_CHARTS = "report: the charts need matplotlib; add it with: pip install -e '.[report]'"
DEFAULT_SPAN = timedelta(days=1)  # an empty ledger's report covers the last day
REHEARSAL_MARGIN = timedelta(seconds=10)


class UsageError(ValueError):
    """A bad --since/--until: one line, exit 2."""


def parse_since(text: str, zone: ZoneInfo, now: datetime) -> datetime:
    """`7d` (that long before now) or a date/time in the campaign's timezone (a date: its midnight)."""
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        return parse_moment(text, zone, "start")
    except ValueError:
        raise UsageError(
            f"--since: {text!r} is neither a duration (7d, 12h) nor a date (2026-12-01)"
        ) from None


def parse_until(text: str, zone: ZoneInfo) -> datetime:
    """A date/time in the campaign's timezone; a bare date means the end of that day."""
    try:
        return parse_moment(text, zone, "expires")
    except ValueError as exc:
        raise UsageError(f"--until: {exc}") from None


def write_report(
    config_path: Path,
    environ: Mapping[str, str],
    now: datetime,
    *,
    since: str | None,
    until: str | None,
    out: Path | None,
    sandbox: bool,
    stdout: TextIO,
    stderr: TextIO,
) -> int:
    try:
        from bot.report import charts
    except ImportError:
        print(INSTALL_CHARTS, file=stderr)
        return EXIT_RUNTIME
    config, _ = load_config(config_path, environ)  # missing secrets do not matter to a report
    queues, _ = load_queues(config)
    if sandbox:
        config, queues = _sandbox_view(config, queues, now)
    zone = ZoneInfo(config.timezone)
    try:
        end = parse_until(until, zone) if until else None if sandbox else now
        start = parse_since(since, zone, now) if since else None
        figures, progress = _read_ledger(config, queues, start, end, now)
    except UsageError as exc:
        print(f"report: {exc}", file=stderr)
        return EXIT_USAGE
    accounts: list[Account] = [(p, a.name) for p in config.enabled_platforms() for a in config.accounts(p)]
    # Accounts since removed from config.yaml still had their deliveries: shown after the others.
    seen = sorted({a for (_, a, _) in figures.outcomes} | set(figures.sent) | set(figures.failed))
    accounts += [a for a in seen if a not in accounts]
    drawn = {
        "hashtag": charts.timeline_chart(figures, "hashtag", "Hashtag posts by others"),
        "reply": charts.timeline_chart(figures, "reply", "Replies to our posts"),
        "outcomes": charts.outcomes_chart(figures, accounts),
        "voices": charts.voices_chart(figures),
    }
    page = render_page(config.campaign, figures, runways(queues, progress, now), accounts, drawn, now)
    default = _default_path(config, now.astimezone(zone), sandbox)
    path = default if out is None else out / default.name if out.is_dir() else out
    try:
        _write(path, page)
    except OSError as exc:
        print(f"report: cannot write {path}: {exc.strerror or exc}", file=stderr)
        return EXIT_RUNTIME
    print(path, file=stdout)
    return EXIT_OK


def _read_ledger(
    config: Config, queues: list[Queue], start: datetime | None, end: datetime | None, now: datetime
) -> tuple[Figures, dict[str, Progress]]:
    """The period's figures and each queue's progress; nothing (and no database created) before a run.

    `end` None: up to the last record (a rehearsal's report), else up to `end`."""
    zone = ZoneInfo(config.timezone)
    if not database_exists(config.database_url):
        end = end or now
        return Figures(_period(start or end - DEFAULT_SPAN, end, zone)), {}
    ledger = open_ledger(config.database_url)
    try:
        forget_expired(config, ledger.engine)  # retention and the ignore list hold here too
        span = activity_span(ledger.engine)
        if end is None:  # a rehearsal is over: its report ends just after its last record
            end = span[1] + REHEARSAL_MARGIN if span is not None else now
        period = _period(start or (span[0] if span else end - DEFAULT_SPAN), end, zone)
        retention = timedelta(days=config.monitor.retention_days)
        figures = read_figures(ledger.engine, period, now, ignore=config.monitor.ignore, retention=retention)
        return figures, {q.name: progress_from_history(ledger.slots.sent_posts(q.name)) for q in queues}
    finally:
        ledger.close()


def _period(start: datetime, end: datetime, zone: ZoneInfo) -> Period:
    if start >= end:
        raise UsageError("--since must come before --until")
    return Period(start, end, zone)


def _sandbox_view(config: Config, queues: list[Queue], now: datetime) -> tuple[Config, list[Queue]]:
    """What `run --sandbox` ran: its own database (kept as the rehearsal left it) and demo queue."""
    from dataclasses import replace

    from bot.daemon.rehearsal import demo_queue, sandbox_database

    sandboxed = replace(config, database_url=sandbox_database(config, empty=False))
    return sandboxed, [*queues, demo_queue(config, now)]


def _default_path(config: Config, local_now: datetime, sandbox: bool) -> Path:
    name = f"{'sandbox-' if sandbox else ''}report-{local_now:%Y-%m-%d}.html"
    return config.path.parent / "reports" / name


def _write(path: Path, page: str) -> None:
    """Write the page whole or not at all: a half-written report is never left behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(page, encoding="utf-8")
    partial.replace(path)
