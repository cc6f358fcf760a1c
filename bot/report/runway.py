"""Each queue's runway: posts left in its current cycle, and when its schedule sends the last one.

The planner's own answer (`plan` from the ledger's progress), so the report, `preview` and the
daemon agree. A queue that repeats starts its next cycle then; one that stops runs dry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.campaign.model import Post, Queue
from bot.planning.planner import Progress, plan
from bot.planning.slots import next_slots

HORIZON = timedelta(days=400)


@dataclass(frozen=True)
class Runway:
    queue: str
    cycle: int
    left: int  # posts of this cycle not sent yet (expired ones not counted)
    last_at: datetime | None  # when the last of them goes out; None: never at this schedule
    state: str  # "runs dry", "repeats", "exhausted", "expired", "no slot ahead"


def queue_runway(queue: Queue, progress: Progress, now: datetime) -> Runway:
    if queue.expires is not None and now >= queue.expires:
        return Runway(queue.name, progress.cycle, 0, None, "expired")
    # Posts added during the cycle join its end (`cycle_order`): every regular post not sent yet.
    left = sum(1 for p in queue.posts if p.at is None and p.id not in progress.sent and _alive(p, now))
    then = "repeats" if queue.when_exhausted == "repeat" else "runs dry"
    if left == 0:
        return Runway(queue.name, progress.cycle, 0, None, "repeats" if then == "repeats" else "exhausted")
    last = _last_of_cycle(queue, progress, now, left)
    return Runway(queue.name, progress.cycle, left, last, then if last is not None else "no slot ahead")


def _alive(post: Post, now: datetime) -> bool:
    return post.expires is None or now < post.expires


def _last_of_cycle(queue: Queue, progress: Progress, now: datetime, left: int) -> datetime | None:
    """The slot that sends this cycle's last post: plan just far enough ahead, widening as needed
    (slots send nothing while a post's `start` is ahead)."""
    count = left + sum(1 for p in queue.posts if p.at is not None)
    for _ in range(8):
        ahead = next_slots(queue, now, count, HORIZON)
        if not ahead:
            return None
        planned = plan(queue, now, ahead[-1].fire_at + timedelta(microseconds=1), progress)
        regular = [p for p in planned if p.slot.pinned is None and p.post is not None]
        this_cycle = [p for p in regular if p.cycle == progress.cycle]
        if len(this_cycle) >= left or len(regular) > len(this_cycle) or len(ahead) < count:
            return this_cycle[-1].slot.fire_at if this_cycle else None
        count *= 4
    return None


def runways(queues: Sequence[Queue], progress: dict[str, Progress], now: datetime) -> list[Runway]:
    return [queue_runway(q, progress.get(q.name, Progress()), now) for q in queues]
