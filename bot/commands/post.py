"""`post` and `retract`: a person asks for one post now, or for one post to be taken back.

`post QUEUE` is an extra slot now: the queue's next post goes out and the queue advances, as
if a slot had fired (the slot is recorded as `manual:<time>`). `post QUEUE ITEM_ID` sends that
post to every target it has not reached yet, failed ones included. Both ignore quiet hours and
account limits (a person asked) but not a pause. `retract` deletes every copy we published,
thread parts last-first, and records each in the ledger.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import TextIO

from bot.campaign.findings import did_you_mean
from bot.campaign.model import Post, Queue
from bot.commands.preview import payload_lines
from bot.daemon.runtime import Runtime
from bot.delivery.courier import Courier, expire_dead_workers, fan_out
from bot.delivery.gate import LiveGate
from bot.delivery.jobs import (
    build_job,
    build_jobs,
    describe_post,
    held_targets,
    missing_line,
    owed_targets,
)
from bot.errors import PlatformError, RateLimited, Transient
from bot.ledger.deliveries import CALL_IN_FLIGHT, Delivery
from bot.ledger.workers import new_worker_id
from bot.planning.planner import (
    PINNED_CYCLE,
    choose_post,
    progress_from_history,
    refuses_repeats,
    targets_of,
)
from bot.platforms import Outgoing, Published
from bot.platforms.tid import make_tid
from bot.render.textrules import render_post
from bot.retry import RetryPolicy

# A deletion is tried three times within two minutes: a person is waiting at the terminal.
RETRACT_RETRIES = RetryPolicy(max_attempts=3, max_delay=60.0, max_wait=120.0)

# A queue or post id that does not exist is a usage error (2), as `preview --queue` has it: the
# command line named it, while the config and the content are valid.
EXIT_OK, EXIT_INPUT, EXIT_USAGE, EXIT_RUNTIME = 0, 1, 2, 3


@dataclass(frozen=True)
class Refusal:
    message: str
    code: int


def _find_queue(rt: Runtime, name: str) -> Queue | Refusal:
    queue = rt.queue(name)
    unreadable = rt.content_problem()
    if queue is None and unreadable is not None:
        return Refusal(str(unreadable), EXIT_INPUT)
    invalid = [p for p in rt.load_problems if p.severity == "error" and Path(p.file).stem == name]
    if queue is None and invalid:  # the file is there, but `check` refuses it: so does `post`
        first = f"{invalid[0].file}:{invalid[0].line}"  # each is logged above in full
        count = f"{len(invalid)} error{'s' * (len(invalid) != 1)}"
        why = f"refused: queue {name} has {count}, the first at {first}: fix them (`python -m bot check`)"
        return Refusal(why, EXIT_INPUT)
    if queue is None:
        names = [q.name for q in rt.queues()]
        hint = did_you_mean(name, names)
        return Refusal(f"no queue named {name!r}{hint} (queues: {', '.join(names) or 'none'})", EXIT_USAGE)
    return queue


def _choose(rt: Runtime, queue: Queue, item_id: str | None) -> tuple[Post, int] | Refusal:
    sent = rt.ledger.slots.sent_posts(queue.name)
    if item_id is None:
        choice = choose_post(queue, progress_from_history(sent), rt.now())
        if choice.post is None:
            why = "every post has been sent (exhausted)" if choice.exhausted else "no post is sendable now"
            return Refusal(f"{queue.name}: nothing to send: {why}", EXIT_RUNTIME)
        return choice.post, choice.cycle
    post = next((p for p in queue.posts if p.id == item_id), None)
    if post is None:
        hint = did_you_mean(item_id, [p.id for p in queue.posts])
        return Refusal(
            f"no post with id {item_id!r}{hint} in queue {queue.name} ({queue.file.name})", EXIT_USAGE
        )
    if post.at is not None:
        return post, PINNED_CYCLE
    cycles = [cycle for cycle, post_id in sent if post_id == post.id]
    return post, (max(cycles) if cycles else progress_from_history(sent).cycle)


def post_now(
    rt: Runtime,
    queue_name: str,
    item_id: str | None,
    platforms: Collection[str] | None,
    *,
    dry_run: bool,
    out: TextIO,
    err: TextIO,
    as_json: bool = False,
) -> int:
    """Send (or with `dry_run`, show) one post; one line per delivery on `out`, refusals on `err`.

    Exit 3 if any delivery failed.
    """
    queue = _find_queue(rt, queue_name)
    if isinstance(queue, Refusal):
        print(queue.message, file=err)
        return queue.code
    pause = rt.ledger.shared.pause_state()
    if pause.paused:
        reason = f" ({pause.reason})" if pause.reason else ""
        if not dry_run:
            print(f"refused: posting is paused{reason}; `resume` first", file=err)
            return EXIT_RUNTIME
        print(f"note: posting is paused{reason}: this would be refused until `resume` (exit 3)", file=err)
    chosen = _choose(rt, queue, item_id)
    if isinstance(chosen, Refusal):
        print(chosen.message, file=err)
        return chosen.code
    post, cycle = chosen
    if item_id is not None and any(
        row.state == "retracted" and (not platforms or row.key.platform in platforms)
        for row in rt.ledger.deliveries_for_post(queue.name, post.id, cycle)
    ):
        # Sending it again would undo the retraction: a person must mean it, with a new id.
        print(
            f"refused: {queue.name}/{post.id} was retracted; to send it again, give it a new id",
            file=err,
        )
        return EXIT_INPUT
    if dry_run:
        # Every target, held ones marked as `preview` marks them; the exit is the real post's.
        accounts = [
            a for a in owed_targets(rt.config, queue, platforms) if not refuses_repeats(a.platform, cycle)
        ]
        if as_json:
            for payload in describe_post(rt.config, queue, post, accounts):
                print(json.dumps(payload, ensure_ascii=False), file=out)
        else:  # as `preview` shows a slot: per target, the text, its length, images and options
            print(f"{queue.name}  post {post.id} (cycle {cycle}): would send now", file=out)
            for account in accounts:
                rendered = render_post(queue, post, account.platform, account.name)
                print("\n".join(payload_lines(rendered, account.missing)), file=out)
        if pause.paused:  # the real post's exit: refused
            return EXIT_RUNTIME
        if any(not a.missing for a in accounts):
            return EXIT_OK
        print(_cannot_post(rt, queue, platforms), file=err)
        return EXIT_RUNTIME
    jobs = build_jobs(rt.config, queue, post, cycle, platforms)
    if not jobs:
        # Nothing is spent: the post stays the queue's next one.
        print(_cannot_post(rt, queue, platforms), file=err)
        return EXIT_RUNTIME
    now = rt.now()
    expire_dead_workers(rt.ledger, now)  # a `post` killed mid-call: reconcile it now, not in 90 s
    worker = new_worker_id()
    already = any(post_id == post.id and c == cycle for c, post_id in rt.ledger.slots.sent_posts(queue.name))
    # Targets whose secrets are unset are owed the post too: the daemon sends it once they are set.
    held = [
        build_job(rt.config, queue, post, cycle, account)
        for account in held_targets(rt.config, queue, platforms)
        if not refuses_repeats(account.platform, cycle)
    ]
    if item_id is None or not already:
        left_out = sorted(set(targets_of(queue, rt.config)) - set(platforms or targets_of(queue, rt.config)))
        if left_out:  # the post counts as this cycle's, so its slot will not send it there
            print(
                f"note: {queue.name}/{post.id} now counts as sent this round, so no slot sends it to "
                f"{', '.join(left_out)}; `post {queue.name} {post.id}` sends it there",
                file=err,
            )
        for job in held:
            print(
                f"held {job.platform}/{job.account}: secrets not set; `run` sends it once they are", file=err
            )
        # Counts as a slot of the queue, so the schedule does not send this post again this cycle.
        # Its deliveries are recorded with it, so a crash from here on leaves them to resume.
        rt.ledger.slots.claim_slot(
            queue.name,
            f"manual:{now.isoformat()}",
            cycle=cycle,
            post_id=post.id,
            worker=worker,
            now=now,
            owed=[job.key(0) for job in [*jobs, *held]],
            nonce_factory=lambda: make_tid(rt.now()),
        )
    courier = Courier(
        ledger=rt.ledger,
        now=rt.now,
        gate=LiveGate(rt.ledger),
        worker=worker,
        alert=rt.alert,
        retry_failed=item_id is not None,
    )
    results = fan_out(courier, jobs, rt.clients)
    for result in results:
        print(result.line(), file=out)
    return EXIT_OK if all(r.ok for r in results) else EXIT_RUNTIME


def _cannot_post(rt: Runtime, queue: Queue, platforms: Collection[str] | None) -> str:
    why = missing_line(held_targets(rt.config, queue, platforms)) or "platforms or accounts"
    return f"{queue.name}: no target can post now ({why})"


# --- retract ----------------------------------------------------------------------------------


def retract_post(
    rt: Runtime,
    queue_name: str,
    item_id: str,
    platforms: Collection[str] | None,
    *,
    out: TextIO,
    err: TextIO,
    dry_run: bool = False,
) -> int:
    """Delete every copy of a post we published (all cycles), last part first; exit 3 if any failed.

    `dry_run`: say what would be deleted, touch nothing."""
    rows = [
        row
        for row in rt.ledger.deliveries_for_post(queue_name, item_id)
        if not platforms or row.key.platform in platforms
    ]
    if not rows:
        # A post left the content but was published: still retractable (the rows name it). With no
        # rows, an id no queue has is a typo, and says so; a known post never sent is no error.
        queue = _find_queue(rt, queue_name)
        if isinstance(queue, Refusal):
            print(queue.message, file=err)
            return queue.code
        if not any(p.id == item_id for p in queue.posts):
            hint = did_you_mean(item_id, [p.id for p in queue.posts])
            print(f"no post with id {item_id!r}{hint} in queue {queue.name} ({queue.file.name})", file=err)
            return EXIT_USAGE
        print(f"{queue_name}/{item_id}: nothing to retract (never posted)", file=out)
        return EXIT_OK
    by_target: dict[tuple[str, str], list[Delivery]] = {}
    for row in rows:
        by_target.setdefault((row.key.platform, row.key.account), []).append(row)
    # Never sent (held for unset secrets, pending, failed before a call): cancelled in the ledger,
    # so no worker sends them later. The rest may be out there: deleted on the platform.
    unsent = {t: [r for r in rs if _unsent(r)] for t, rs in by_target.items()}
    if dry_run:
        return _retract_dry_run(queue_name, item_id, by_target, unsent, out)
    now = rt.now()
    cancelled = sorted({t for t, rs in unsent.items() for r in rs if rt.ledger.cancel_unsent(r.key, now)})
    if cancelled:
        where = ", ".join(f"{p}/{a}" for p, a in cancelled)
        print(f"{queue_name}/{item_id}: cancelled before sending on {where}", file=out)
    gate = LiveGate(rt.ledger)
    lock = threading.Lock()
    failed = False

    def retract_target(target: tuple[str, str], target_rows: list[Delivery]) -> list[str]:
        lines = []
        for row in sorted(target_rows, key=lambda r: (r.key.cycle, r.key.part), reverse=True):
            if row in unsent[target]:
                continue
            line = _retract_one(rt, gate, row)
            if line is not None:
                lines.append(line)
        if not lines and target not in cancelled and all(r.state == "retracted" for r in target_rows):
            lines.append(f"{target[0]}/{target[1]} {queue_name}/{item_id}: already retracted")
        return lines

    with ThreadPoolExecutor(max_workers=max(1, len(by_target))) as pool:
        futures = [pool.submit(retract_target, t, r) for t, r in by_target.items()]
        for future in futures:
            for line in future.result():
                with lock:
                    print(line, file=out)
                    failed = failed or " failed: " in line
    return EXIT_RUNTIME if failed else EXIT_OK


def _unsent(row: Delivery) -> bool:
    return row.state in ("claimed", "failed") and row.attempts == 0


def _retract_dry_run(
    queue_name: str,
    item_id: str,
    by_target: dict[tuple[str, str], list[Delivery]],
    unsent: dict[tuple[str, str], list[Delivery]],
    out: TextIO,
) -> int:
    cancel = [f"{p}/{a}" for (p, a), rs in sorted(unsent.items()) if rs]
    if cancel:
        print(f"{queue_name}/{item_id}: would cancel before sending on {', '.join(cancel)}", file=out)
    for (platform, account), target_rows in sorted(by_target.items()):
        if all(r.state == "retracted" for r in target_rows):
            print(f"{platform}/{account} {queue_name}/{item_id}: already retracted", file=out)
            continue
        for row in sorted(target_rows, key=lambda r: (-r.key.cycle, -r.key.part)):
            k = row.key
            label = f"{k.platform}/{k.account} {k.queue}/{k.post_id} part {k.part + 1} (cycle {k.cycle})"
            if row.state == "posted":
                print(f"would retract {label}: {row.url}", file=out)
            elif not _unsent(row) and row.state in ("claimed", "failed"):
                print(f"would look for {label} (sent, never confirmed) and retract it if found", file=out)
    return EXIT_OK


def _retract_one(rt: Runtime, gate: LiveGate, row: Delivery) -> str | None:
    k = row.key
    label = f"{k.platform}/{k.account} {k.queue}/{k.post_id} part {k.part + 1} (cycle {k.cycle})"
    try:
        client = rt.clients(k.platform, k.account)
        published = _published(row)
        if published is None and row.state in ("claimed", "failed") and row.attempts and row.text:
            # Claimed but never confirmed (a crash, a lost answer): it may be out there all the same.
            published = client.find_published(Outgoing(text=row.text, nonce=row.nonce), since=row.claimed_at)
            owner = rt.ledger.owner_of(k.platform, k.account, published.id) if published else None
            if owner not in (None, k):
                published = None  # another post's copy (the same text): never this one's to delete
            if published is not None:
                rt.ledger.confirm_delivery(k, published.id, published.url, rt.now(), cid=published.cid)
        if row.state == "retracted":
            return None
        if published is None:
            # A claim (not a failure, whose call was answered) attempted moments ago: the call of
            # a worker that died may still land.
            recent = row.state == "claimed" and row.attempted_at is not None
            landing = row.attempted_at + CALL_IN_FLIGHT if recent and row.attempted_at else None
            if landing is not None and rt.now() < landing:
                when = landing.astimezone(UTC).strftime("%H:%M:%S UTC")
                return f"{label} failed: its last call may still land until {when}; retract again then"
            # Never resumed after this: a worker that would send it again finds it retracted.
            if not rt.ledger.cancel_unfound(k, row.attempts, rt.now()):
                return f"{label} failed: a worker is sending it now; run retract again in a minute"
            return f"{label}: not found on {k.platform} (sent, never confirmed): cancelled, nothing to delete"
        failures, waited = 0, 0.0
        while True:
            try:
                client.delete(published)
                break
            except (Transient, RateLimited) as exc:
                failures += 1
                delay = RETRACT_RETRIES.delay(
                    failures, exc.retry_after if isinstance(exc, RateLimited) else None
                )
                if RETRACT_RETRIES.gives_up(failures, waited, delay) or not gate.wait(delay):
                    raise
                waited += delay
        rt.ledger.mark_retracted(k, rt.now())
        return f"{label} retracted: {published.url}"
    except PlatformError as exc:
        return f"{label} failed: {exc}"


def _published(row: Delivery) -> Published | None:
    if row.state not in ("posted", "retracted") or not row.remote_id:
        return None
    return Published(row.remote_id, row.url or "", row.remote_cid)
