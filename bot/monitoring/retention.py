"""Other people's posts are kept no longer than `monitor.retention_days`, and never by a handle in
`monitor.ignore`, wherever the bot keeps them: the ledger and the mentions log (docs/design.md,
retention). The operational log never holds their words (the monitor logs kind, platform, URL).

Enforced when a daemon starts and hourly while it runs (`Monitor.purge_expired`), and by the
`mentions` command before it lists anything, so that no command shows what retention dropped.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from bot.campaign.model import Config
from bot.ledger.mentions import MonitorStore
from bot.monitoring.classification import normalize_handle
from bot.monitoring.mentionlog import MentionsLog

log = logging.getLogger("bot.monitor")


def forget_expired(config: Config, engine: Engine) -> None:
    """`enforce_retention` on the config's ledger and mentions log, now."""
    mentions_log = MentionsLog(config.logging.mentions_log, config.monitor.retention_days)
    enforce_retention(config, MonitorStore(engine), mentions_log, datetime.now(UTC))


def ignored_handles(config: Config) -> frozenset[str]:
    return frozenset(normalize_handle(h) for h in config.monitor.ignore)


def enforce_retention(
    config: Config, store: MonitorStore, mentions_log: MentionsLog, now: datetime, *, ignored: bool = True
) -> None:
    """Forget posts past retention, and (`ignored`) every post by an ignored handle."""
    keep = timedelta(days=config.monitor.retention_days)
    purged = store.purge_mentions(now - keep)
    if purged:
        log.info("monitor: forgot %d posts older than %d days", purged, keep.days)
    try:
        mentions_log.delete_expired(now.date())
    except OSError as exc:
        log.error("mentions log %s: %s", mentions_log.path, exc)
    handles = ignored_handles(config) if ignored else frozenset()
    if not handles:
        return
    forgotten = store.forget_authors(handles)
    try:
        forgotten += mentions_log.forget_authors(handles)
    except OSError as exc:
        log.error("mentions log %s: %s", mentions_log.path, exc)
    if forgotten:
        log.info("monitor: forgot %d posts by ignored handles", forgotten)
