"""Whether the schedules fit each X account's posting budget, for `check`'s warnings.

X counts every `POST /2/tweets` against a per-user window (docs.x.com rate limits): Free 17 and Basic 100
per 24 hours; Pro and pay-per-use 100 per 15 minutes. Every queue that targets an account adds
to the same window, and each part of a thread is a post of its own. The bot does not post past
the budget (the platform refuses with 429), so an over-full schedule means slots that silently
slip: `check` warns, naming the busiest window. An account's own `limits.posts_per_day` is
checked the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.campaign.model import Config, Queue
from bot.errors import Problem
from bot.planning.planner import plan, targets_of
from bot.render.textrules import render_post

# (posts, window) per user, by tier.
X_TIER_LIMITS: dict[str, tuple[int, timedelta]] = {
    "free": (17, timedelta(hours=24)),
    "basic": (100, timedelta(hours=24)),
    "pro": (100, timedelta(minutes=15)),
    "pay-per-use": (100, timedelta(minutes=15)),
}
LOOKAHEAD = timedelta(days=7)


@dataclass(frozen=True)
class Busiest:
    posts: int
    start: datetime  # the first post of the busiest window


def busiest_window(events: Sequence[tuple[datetime, int]], window: timedelta) -> Busiest | None:
    """The most posts sent within any `window`, from (time, posts) events."""
    ordered = sorted(events)
    best: Busiest | None = None
    total, left = 0, 0
    for when, count in ordered:
        total += count
        while ordered[left][0] <= when - window:
            total -= ordered[left][1]
            left += 1
        if best is None or total > best.posts:
            best = Busiest(total, ordered[left][0])
    return best


def x_budget_problems(config: Config, queues: Sequence[Queue], now: datetime) -> list[Problem]:
    """A warning per X account whose next week of slots exceeds its tier's or its own limit."""
    platform = config.platforms.get("x")
    if platform is None or not platform.enabled:
        return []
    events: dict[str, list[tuple[datetime, int]]] = {}
    for queue in queues:
        accounts = targets_of(queue, config).get("x", ())
        if not accounts:
            continue
        for planned in plan(queue, now, now + LOOKAHEAD):
            if planned.post is None:
                continue
            parts = len(render_post(queue, planned.post, "x", accounts[0]).parts)
            for account in accounts:
                events.setdefault(account, []).append((planned.slot.fire_at, parts))
    problems: list[Problem] = []
    for x_account in config.accounts("x"):
        sent = events.get(x_account.name, [])
        limits = []
        if platform.tier in X_TIER_LIMITS:
            posts, window = X_TIER_LIMITS[platform.tier]
            limits.append((posts, window, f"the {platform.tier} tier allows {posts}"))
        if x_account.limits.posts_per_day is not None:
            own = x_account.limits.posts_per_day
            limits.append((own, timedelta(hours=24), f"its limits.posts_per_day is {own}"))
        for posts, window, allowance in limits:
            busiest = busiest_window(sent, window)
            if busiest is None or busiest.posts <= posts:
                continue
            message = (
                f"x account {x_account.name!r}: the schedules send up to {busiest.posts} posts in "
                f"{_describe(window)} (from {busiest.start:%Y-%m-%d %H:%M} UTC, thread parts count); "
                f"{allowance}, so later slots will be refused or delayed"
            )
            problems.append(Problem(str(config.path), x_account.line or 1, message, "warning"))
    return problems


def _describe(window: timedelta) -> str:
    minutes = int(window.total_seconds() // 60)
    return f"{minutes // 60} hours" if minutes % 60 == 0 else f"{minutes} minutes"
