"""Per-account limits (config `limits: {posts_per_day, min_gap}`), across every queue.

Pure: the ledger supplies the account's last post and its count over the last 24 hours.
`posts_per_day` is a rolling 24 hours, counting each part of a thread (as the platforms
count posts); `min_gap` separates the start of one post from the last part of the previous one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.campaign.durations import format_duration
from bot.campaign.model import AccountLimits, Config, Queue
from bot.errors import Problem
from bot.planning.planner import plan, targets_of
from bot.render.textrules import render_post

# Without the times of the posts, a full day frees up as they age out; look again this often.
RECHECK = timedelta(minutes=5)
DAY = timedelta(days=1)
LOOKAHEAD = timedelta(days=14)  # as far as `check` looks: two weeks show a weekly pinned post


def next_allowed(
    limits: AccountLimits, now: datetime, *, last_post: datetime | None, posts_last_day: int
) -> datetime | None:
    """When the account may post next, or None if it may post now."""
    waits: list[datetime] = []
    if limits.min_gap is not None and last_post is not None and now < last_post + limits.min_gap:
        waits.append(last_post + limits.min_gap)
    if limits.posts_per_day is not None and posts_last_day >= limits.posts_per_day:
        waits.append(now + RECHECK)
    return max(waits) if waits else None


@dataclass
class AccountClock:
    """One account's posts under its limits, replayed ahead of time: `preview` and `check` ask
    `next_allowed` exactly as the daemon does before each post, so they show when it really goes.

    `posted` holds the times of its posts (each thread part), oldest first, from the ledger.
    """

    limits: AccountLimits
    posted: list[datetime] = field(default_factory=list)

    def send_at(self, due: datetime, parts: int = 1) -> datetime:
        """When a post due at `due` goes out (the daemon looks again when told to wait)."""
        go = due
        while True:
            last = self.posted[-1] if self.posted else None
            day = sum(1 for t in self.posted if t >= go - DAY)
            wait = next_allowed(self.limits, go, last_post=last, posts_last_day=day)
            if wait is None:
                break
            go = wait
        self.posted.extend([go] * parts)
        return go


def limit_collisions(config: Config, queues: Sequence[Queue], now: datetime) -> list[Problem]:
    """A warning per limited account whose next two weeks of slots its own limits would delay."""
    limited = {
        (a.platform, a.name)
        for p in config.enabled_platforms()
        for a in config.accounts(p)
        if a.limits.min_gap is not None or a.limits.posts_per_day is not None
    }
    due: dict[tuple[str, str], list[tuple[datetime, int, str]]] = {}
    for queue in queues:
        targets = {(p, name) for p, names in targets_of(queue, config).items() for name in names}
        if not targets & limited:
            continue  # planning a fast queue's two weeks is costly: only where a limit applies
        for planned in plan(queue, now, now + LOOKAHEAD):
            if planned.post is None:
                continue
            for platform, names in targets_of(queue, config).items():
                for name in names:
                    parts = len(render_post(queue, planned.post, platform, name).parts)
                    due.setdefault((platform, name), []).append((planned.slot.fire_at, parts, queue.name))
    problems = []
    for platform in config.enabled_platforms():
        for account in config.accounts(platform):
            if account.limits.min_gap is None and account.limits.posts_per_day is None:
                continue
            clock = AccountClock(account.limits)
            posts = sorted(due.get((platform, account.name), []))
            late = [
                (go - when, when, queue)
                for when, parts, queue in posts
                if (go := clock.send_at(when, parts)) > when
            ]
            if not late:
                continue
            worst, first = max(late)[0], min(late, key=lambda item: item[1])[1]
            queues_named = ", ".join(sorted({queue for _, _, queue in late}))
            message = (
                f"{platform}/{account.name}: its limits ({_describe_limits(account.limits)}) delay "
                f"{len(late)} of {len(posts)} posts in the next {LOOKAHEAD.days} days, "
                f"by up to {format_duration(worst)} "
                f"(first at {first:%Y-%m-%d %H:%M} UTC; queues {queues_named}); "
                "`preview` shows when each goes out"
            )
            problems.append(Problem(str(config.path), account.line or 1, message, "warning"))
    return problems


def _describe_limits(limits: AccountLimits) -> str:
    said = [f"min_gap {format_duration(limits.min_gap)}"] if limits.min_gap is not None else []
    said += [f"posts_per_day {limits.posts_per_day}"] if limits.posts_per_day is not None else []
    return ", ".join(said)
