"""Which slot is due and which post it sends: pure, with the clock and the ledger passed in.

`bot.planning.slots` says when a queue fires; this module says what each firing sends (docs/design.md,
"Next post", "Cycles", "Grace after downtime"):

- a slot sends the first post, in the cycle's order, that no earlier slot of this cycle has sent,
  skipping expired posts, posts whose `start` is still ahead, and pinned posts;
- the order is the file's (`sequential`) or a shuffle seeded by queue name and cycle number
  (`shuffle`): each post's place is a SHA-256 of (queue, cycle, post id), so every worker and
  every preview agree, and adding or removing a post does not reshuffle the others;
- posts added to the file during a cycle join it at the end of the order: `Progress.members`
  names the posts the cycle started with (`progress_from_history` derives it from the ledger);
- when every post is sent (or expired), `stop` ends the queue (exhausted) and `repeat` starts the
  next cycle with every post of the file;
- after downtime, only the latest regular slot missed by less than the grace fires; older ones
  are reported missed. A restart never bursts.

The daemon asks `due_slots` on each tick, then `choose_post` for each due slot with
`progress_from_history(ledger.slots.sent_posts(queue))`, and claims the slot with `Choice.cycle` and
the chosen post's id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from bot.campaign.model import Config, Platform, Post, Queue
from bot.planning.slots import Slot, slots_between

PINNED_CYCLE = 0  # pinned posts go out once, outside the cycles, which count from 1
# How far back `due_slots` looks: older missed slots are not listed one by one.
MAX_LOOKBACK = timedelta(days=31)


@dataclass(frozen=True)
class Progress:
    """What the ledger says about a queue's current cycle.

    `sent`: ids of the posts the cycle's earlier slots sent. `members`: ids of the posts the
    cycle started with, so that posts added later join at the end; None means "every post now
    in the file" (right for a fresh queue, and for sequential queues whose new posts are
    appended to the file). `progress_from_history` rebuilds all three from the ledger.
    """

    cycle: int = 1
    sent: frozenset[str] = frozenset()
    members: frozenset[str] | None = None


@dataclass(frozen=True)
class Choice:
    """The post a slot sends (None: nothing to send) and the progress once it is sent."""

    post: Post | None
    progress: Progress
    exhausted: bool = False  # `when_exhausted: stop` and every post has been sent

    @property
    def cycle(self) -> int:
        return self.progress.cycle


@dataclass(frozen=True)
class PlannedSlot:
    slot: Slot
    post: Post | None
    cycle: int
    exhausted: bool = False


def targets_of(queue: Queue, config: Config) -> dict[Platform, tuple[str, ...]]:
    """The accounts each slot of the queue sends to, by platform (enabled platforms only)."""
    targets: dict[Platform, tuple[str, ...]] = {}
    for platform in queue.platforms:
        names = tuple(
            a.name for a in config.accounts(platform) if queue.accounts is None or a.name in queue.accounts
        )
        if names:
            targets[platform] = names
    return targets


def refuses_repeats(platform: str, cycle: int) -> bool:
    """Whether a post of this cycle skips the platform: X refuses a text the account already
    posted ("duplicate content", 403), so a repeating queue's later rounds leave X out."""
    return platform == "x" and cycle > 1


def progress_from_history(history: Sequence[tuple[int | None, str | None]]) -> Progress:
    """The current cycle's progress from the ledger's fired slots, (cycle, post id) in firing order.

    The members of cycle c >= 2 are what cycles c-1 and c sent: cycle c-1 ended only when every
    post it held was sent (or had expired), so a post missing from both joined during cycle c
    and belongs at its end. Cycle 1's members are not known (None: every post in the file).
    """
    sent_by_cycle: dict[int, set[str]] = {}
    for cycle, post_id in history:
        if cycle is None or post_id is None or cycle == PINNED_CYCLE:
            continue
        sent_by_cycle.setdefault(cycle, set()).add(post_id)
    if not sent_by_cycle:
        return Progress()
    current = max(sent_by_cycle)
    sent = frozenset(sent_by_cycle[current])
    previous = sent_by_cycle.get(current - 1)
    members = sent | previous if previous is not None else None
    return Progress(cycle=current, sent=sent, members=members)


def _shuffle_key(queue_name: str, cycle: int, post_id: str) -> bytes:
    return hashlib.sha256(f"{queue_name}\x00{cycle}\x00{post_id}".encode()).digest()


def cycle_order(queue: Queue, cycle: int, members: frozenset[str] | None = None) -> tuple[Post, ...]:
    """The cycle's posts in sending order: its members (file order or seeded shuffle), then newcomers."""
    regular = [p for p in queue.posts if p.at is None]
    if members is None:
        members = frozenset(p.id for p in regular)
    old = [p for p in regular if p.id in members]
    new = [p for p in regular if p.id not in members]
    if queue.order == "shuffle":
        old.sort(key=lambda p: _shuffle_key(queue.name, cycle, p.id))
    return (*old, *new)


def _expired(post: Post, at: datetime) -> bool:
    return post.expires is not None and at >= post.expires


def _sendable(post: Post, at: datetime) -> bool:
    return not _expired(post, at) and (post.start is None or at >= post.start)


def choose_post(queue: Queue, progress: Progress, at: datetime) -> Choice:
    """The post the slot firing at `at` sends, given what this cycle already sent."""
    members = progress.members
    if members is None:
        members = frozenset(p.id for p in queue.posts if p.at is None)
    current = replace(progress, members=members)
    order = cycle_order(queue, current.cycle, members)
    for post in order:
        if post.id not in current.sent and _sendable(post, at):
            return Choice(post, replace(current, sent=current.sent | {post.id}))
    if any(p.id not in current.sent and not _expired(p, at) for p in order):
        return Choice(None, current)  # posts remain whose `start` is still ahead
    if queue.when_exhausted == "stop":
        return Choice(None, current, exhausted=bool(order))
    fresh = Progress(cycle=current.cycle + 1, members=frozenset(p.id for p in order))
    for post in cycle_order(queue, fresh.cycle, fresh.members):
        if _sendable(post, at):
            return Choice(post, replace(fresh, sent=frozenset({post.id})))
    return Choice(None, current)  # every post expired or not yet started: nothing to repeat


def pinned_post(queue: Queue, slot: Slot) -> Post | None:
    for post in queue.posts:
        if post.id == slot.pinned and not _expired(post, slot.fire_at):
            return post
    return None


def plan(queue: Queue, lo: datetime, hi: datetime, progress: Progress | None = None) -> list[PlannedSlot]:
    """Every slot firing in [lo, hi) with the post it will send, assuming each send succeeds.

    `progress` is the ledger's state at `lo` (default: nothing sent yet). After the queue is
    exhausted its later regular slots are left out.
    """
    state = progress or Progress()
    exhausted = False
    planned: list[PlannedSlot] = []
    for slot in slots_between(queue, lo, hi):
        if slot.pinned is not None:
            # Pinned posts are outside the cycles: they go out even after the queue is exhausted.
            planned.append(PlannedSlot(slot, pinned_post(queue, slot), PINNED_CYCLE))
            continue
        if exhausted:
            continue
        choice = choose_post(queue, state, slot.fire_at)
        planned.append(PlannedSlot(slot, choice.post, choice.cycle, choice.exhausted))
        exhausted = choice.exhausted
        state = choice.progress
    return planned


def due_slots(
    queue: Queue, since: datetime, now: datetime, grace: timedelta
) -> tuple[list[Slot], list[Slot]]:
    """Slots firing in (since, now]: those to fire now, and those missed (logged and skipped).

    Of the regular slots only the latest may fire, and only if it is late by less than `grace`:
    after downtime the queue resumes with one post, never a burst. A pinned post's slot fires
    within the grace too, being a different post.
    """
    lo = max(since, now - MAX_LOOKBACK)
    window = [s for s in slots_between(queue, lo, now + timedelta(microseconds=1)) if s.fire_at > since]
    regular = [s for s in window if s.pinned is None]
    due: list[Slot] = []
    missed: list[Slot] = []
    for slot in window:
        late = now - slot.fire_at
        is_latest = slot.pinned is not None or slot is regular[-1]
        (due if is_latest and late < grace else missed).append(slot)
    return due, missed
