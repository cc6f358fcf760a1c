"""`status`: what the ledger knows, per queue and per account, as text or JSON.

Per queue: the next slot and the post it would send, posted / failed / pending posts (each
counted once, whatever its targets and thread parts), what waits for unset secrets,
exhausted or expired. Per account: the last post, health (a 401 makes it unhealthy until a
probe succeeds), posts over the last 24 hours against `posts_per_day`, when an account limit
holds its next post back, and the platform's own rate budget per endpoint as its last answer
stated it (`rate_budget`; a window whose reset has passed is shown as full again). Whether
posting is paused, and the last 24 hours' counts (posts, failures, replies, mentions, hashtag
posts, reposts; `bot.report.summary`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.daemon.runtime import Runtime
from bot.delivery.jobs import held_deliveries, held_until, held_why, missing_line, owed_targets
from bot.ledger.deliveries import DeliveryCounts
from bot.ledger.ratebudgets import StoredBudget, read_budgets
from bot.planning.limits import next_allowed
from bot.planning.planner import choose_post, progress_from_history
from bot.planning.slots import next_slots
from bot.report.summary import format_last_day, last_day_counts


def _iso(when: datetime | None, zone: ZoneInfo | None = None) -> str | None:
    if when is None:
        return None
    return (when.astimezone(zone) if zone is not None else when).isoformat(timespec="seconds")


def _budget(stored: StoredBudget, now: datetime, zone: ZoneInfo | None = None) -> dict[str, Any]:
    reset = stored.reset_at is not None and stored.reset_at <= now
    return {
        "endpoint": stored.endpoint,
        "limit": stored.limit,
        "remaining": stored.limit if reset else stored.remaining,
        "reset_at": None if reset else _iso(stored.reset_at, zone),
        "seen_at": _iso(stored.seen_at, zone),
    }


def build_status(rt: Runtime) -> dict[str, Any]:
    now = rt.now()
    ledger = rt.ledger
    zone = ZoneInfo(rt.config.timezone)  # every time shown in the campaign's own zone
    pause = ledger.shared.pause_state()
    counts = ledger.post_counts()
    held: dict[str, list[str]] = {}
    refused = ledger.shared.refused()  # unhealthy accounts hold their posts too
    for row, account in held_deliveries(rt.config, ledger.unconfirmed_deliveries(), refused):
        k, why = row.key, held_why(account, refused)
        held.setdefault(k.queue, []).append(
            f"{k.post_id} for {k.platform}/{k.account} ({why}); {held_until(account)}"
        )
    queues = []
    for queue in rt.queues():
        owed = owed_targets(rt.config, queue)
        able = [a for a in owed if not a.missing and (a.platform, a.name) not in refused]
        unreachable = owed if not able else []
        upcoming = next_slots(queue, now, 1)
        progress = progress_from_history(ledger.slots.sent_posts(queue.name))
        # A slot due but undecided (held, or about to fire) is no longer upcoming: its post is
        # the one the queue would send now.
        choice = choose_post(queue, progress, upcoming[0].fire_at if upcoming else now)
        c = counts.get(queue.name, DeliveryCounts())
        queues.append(
            {
                "queue": queue.name,
                "next_slot": _iso(upcoming[0].fire_at, zone) if upcoming else None,
                "next_post": choice.post.id if choice.post is not None else None,
                "posted": c.posted,
                "failed": c.failed,
                "pending": c.claimed,
                "retracted": c.retracted,
                "exhausted": choice.exhausted,
                "expired": queue.expires is not None and now > queue.expires,
                # Deliveries owed to accounts whose secrets are unset or credentials refused, sent
                # once they are set or the account is healthy again;
                # and, when no target can post at all, why the next slot will wait.
                "held": held.get(queue.name, []),
                "waiting_for": missing_line(unreachable, refused) or None,
            }
        )
    health = {(h.platform, h.account): h for h in ledger.shared.account_health()}
    budgets: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for stored in read_budgets(ledger.engine):
        budgets.setdefault((stored.platform, stored.account), []).append(_budget(stored, now, zone))
    last_posts = ledger.last_posts()
    accounts = []
    for platform in rt.config.enabled_platforms():
        for account in rt.config.accounts(platform):
            h = health.get((platform, account.name))
            last = last_posts.get((platform, account.name))
            day = ledger.count_posts(platform, account.name, now - timedelta(days=1))
            wait = next_allowed(account.limits, now, last_post=last, posts_last_day=day)
            accounts.append(
                {
                    "platform": platform,
                    "account": account.name,
                    "last_post": _iso(last, zone),
                    "healthy": h.healthy if h is not None else True,
                    "error": h.last_error if h is not None and not h.healthy else None,
                    "missing_credentials": list(account.missing),
                    "posts_last_24h": day,
                    "posts_per_day": account.limits.posts_per_day,
                    "waiting_until": _iso(wait, zone),
                    "rate_budget": budgets.get((platform, account.name), []),
                }
            )
    return {
        "paused": pause.paused,
        "pause_reason": pause.reason,
        "paused_since": _iso(pause.since, zone) if pause.paused else None,
        "last_24h": last_day_counts(ledger.engine, now),
        "queues": queues,
        "accounts": accounts,
    }


def format_status(status: dict[str, Any]) -> str:
    lines = []
    if status["paused"]:
        reason = f": {status['pause_reason']}" if status["pause_reason"] else ""
        lines.append(f"PAUSED since {status['paused_since']}{reason}")
    else:
        lines.append("posting: on")
    lines.append(format_last_day(status["last_24h"]))
    # Three units, each said where it is counted: copies (above), posts, and the networks' posts.
    lines.append("queues (each post counted once, whatever its accounts and thread parts):")
    for q in status["queues"]:
        state = "expired" if q["expired"] else "exhausted" if q["exhausted"] else "active"
        lines.append(
            f"  {q['queue']}: {state}; next {q['next_slot'] or '-'} -> {q['next_post'] or '-'}; "
            f"posted {q['posted']}, failed {q['failed']}, pending {q['pending']}"
        )
        if q["waiting_for"]:
            lines.append(f"    HELD: no account can post ({q['waiting_for']}); the next post waits")
        lines.extend(f"    held: {what}" for what in q["held"])
    lines.append("accounts (each thread part counts, as the networks and `posts_per_day` count):")
    for a in status["accounts"]:
        health = "healthy" if a["healthy"] else f"UNHEALTHY ({a['error']})"
        if a["missing_credentials"]:
            health = "not started: missing " + ", ".join(a["missing_credentials"])
        budget = f"{a['posts_last_24h']} posts in 24h" + (
            f" of {a['posts_per_day']}" if a["posts_per_day"] is not None else ""
        )
        wait = f"; waiting for its limit until {a['waiting_until']}" if a["waiting_until"] else ""
        last = a["last_post"] or "-"
        lines.append(f"  {a['platform']}/{a['account']}: {health}; last post {last}; {budget}{wait}")
        for b in a["rate_budget"]:
            until = f" until {b['reset_at']}" if b["reset_at"] else ""
            lines.append(f"    rate {b['endpoint']}: {b['remaining']} of {b['limit']} left{until}")
    return "\n".join(lines)
