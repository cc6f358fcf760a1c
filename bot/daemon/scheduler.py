"""The daemon: a tick every few seconds fires the due slots, resumes pending deliveries, probes.

APScheduler 3 is only the clock and the trigger runner (docs/design.md). Slot names, jitter, quiet
hours and grace come from the planner, and every decision is a row in the ledger, so a restart
or a second worker agrees with this one:

- a due slot is claimed in the ledger (one worker wins), its post chosen from what the ledger
  says this cycle sent, and one delivery job per target goes to the delivery pool;
- slots missed by more than the grace are recorded `missed` (logged once), never fired;
- a claim left unconfirmed (a crash, a pause, a shutdown, a wait for an account limit) is
  picked up again by `resume_pending` on a later tick, reconciled first by the courier;
- live edits are read when a file's mtime changes (checked every tick);
- an account refused with a 401 is skipped, and probed every 15 minutes and on config change.

Why a BackgroundScheduler: the main thread keeps the signals and the shutdown sequence (stop
taking work, let calls in flight end, exit 0 within Heroku's 30 s), which a BlockingScheduler
would own instead.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.campaign.model import Account, Post, Queue
from bot.daemon.runtime import Runtime
from bot.delivery.courier import Courier, Gate, Job, Result, expire_dead_workers
from bot.delivery.gate import LiveGate
from bot.delivery.jobs import (
    build_job,
    held_deliveries,
    held_targets,
    held_until,
    held_why,
    missing_line,
    targets,
)
from bot.delivery.pool import DELIVERY_THREADS, DeliveryPool
from bot.errors import PlatformError
from bot.ledger.database import database_now
from bot.ledger.workers import died_here, new_worker_id
from bot.planning.planner import (
    PINNED_CYCLE,
    choose_post,
    due_slots,
    pinned_post,
    progress_from_history,
    refuses_repeats,
)
from bot.planning.slots import Slot, next_slots
from bot.platforms.tid import make_tid

# Seconds between a worker's clock and the database's beyond which its slots fire off time.
MAX_CLOCK_SKEW = 10.0
log = logging.getLogger("bot.scheduler")

TICK_SECONDS = 2.0  # live edits within 10 s, pause within 5 s: both well inside
PROBE_EVERY = timedelta(minutes=15)
MONITOR_EVERY = 10.0  # seconds between monitoring passes; the monitor decides what is due
SHUTDOWN_BOUND = 25.0  # seconds for calls in flight after SIGTERM (Heroku kills at 30)
MISSED_LINES = 3  # missed slots logged one by one per pass; the rest in one summary line
SLOT_THREADS = 8  # queues decided side by side in one tick (see `_fire_queues`)


@dataclass(frozen=True)
class Fired:
    queue: str
    slot: str
    post_id: str
    cycle: int


class Daemon:
    """The posting loop of one worker. `tick()` is one pass; `run()` ticks every few seconds."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        stop: threading.Event | None = None,
        gate: Gate | None = None,
        worker: str | None = None,
        max_workers: int = DELIVERY_THREADS,
        monitor: Callable[[bool], object] | None = None,
        died: Callable[[str], bool] = died_here,
    ) -> None:
        self.rt = runtime
        self.stop = stop or threading.Event()
        self.gate = gate or LiveGate(runtime.ledger, self.stop)
        self.worker = worker or new_worker_id()
        self.courier = Courier(
            ledger=runtime.ledger, now=runtime.now, gate=self.gate, worker=self.worker, alert=runtime.alert
        )
        self._died = died  # whether a worker id names a process gone from this host
        self.monitor = monitor  # one monitoring pass (`wait`: for its calls), plugged in by the run command
        self.deliveries = DeliveryPool(runtime, self.courier, max_workers=max_workers)
        self._was_paused: bool | None = None
        self._expired: set[str] = set()
        self._last_probe: datetime | None = None
        self._probe_now = True
        # Slots this worker saw decided (fired, missed, skipped), by queue: the planner lists the
        # last grace of slots on every tick, and the ledger need not be asked about them again.
        self._decided: dict[str, dict[str, datetime]] = {}
        # Queues whose due slot waits because none of its accounts can post (secrets unset),
        # with the post it holds; and the accounts already reported as holding deliveries.
        self.held: dict[str, str] = {}
        self._held_accounts: set[tuple[str, str]] = set()
        self.renamed: dict[str, str] = {}  # queue -> the queue whose posts it would send again
        self._slot_pool: ThreadPoolExecutor | None = None
        self._refused: dict[tuple[str, str], str] | None = None  # during a tick: as read at its start

    # --- one pass --------------------------------------------------------------------------

    def tick(self) -> list[Fired]:
        """Reload edits, fire due slots, resume pending deliveries, probe unhealthy accounts."""
        if self.stop.is_set():
            return []
        try:
            return self._tick()
        except Exception:  # a bug in one pass must not kill the scheduler's job for good
            log.exception("tick failed")
            return []

    def _tick(self) -> list[Fired]:
        if self.rt.reload_config():
            self._probe_now = True
        self.rt.reload_content()
        pause = self.rt.ledger.shared.pause_state()
        if pause.paused:
            if self._was_paused is not True:
                log.warning(
                    "paused%s: no posting until `resume`", f" ({pause.reason})" if pause.reason else ""
                )
            self._was_paused = True
            return []
        if self._was_paused:
            log.info("resumed: posting again")
        self._was_paused = False
        now = self.rt.now()
        # Account health read once for every slot of the tick, not once per slot (a read per
        # post: bench/overhead.py). An account refused during the tick is refused again.
        self._refused = self.rt.ledger.shared.refused()
        try:
            fired = [f for fires in self._fire_queues(self.rt.queues(), now) for f in fires]
        finally:
            self._refused = None
        # Every tick, not only at start-up: a worker killed next to this one (several `run`
        # processes on one machine) has its claims resumed within seconds, not after the lease.
        self.expire_dead_workers(now)
        self.deliveries.resume_pending(now)
        self.probe_accounts(now)
        return fired

    # --- slots -----------------------------------------------------------------------------

    def _close_slot_pool(self) -> None:
        # Only where no tick can be running (`run_once`); a daemon's idle slot threads end with
        # the process, or with the pool when the Daemon is dropped.
        if self._slot_pool is not None:
            self._slot_pool.shutdown(wait=True)
            self._slot_pool = None

    def _fire_queues(self, queues: Sequence[Queue], now: datetime) -> list[list[Fired]]:
        """Each queue's fired slots, in the order of `queues`.

        Queues are decided side by side: a slot's deliveries wait for its claim's synced commit,
        and side by side those commits are shared (`bot.ledger.database`) instead of paid one
        after another (bench/overhead.py: 100 due queues). Queues are independent: slots are
        decided per queue, under the ledger's per-queue rules.
        """

        def fire(queue: Queue) -> list[Fired]:
            try:
                return self.fire_due(queue, now)
            except Exception:  # one queue's trouble (a bug, a database hiccup) holds no other back
                log.exception("queue %s: tick failed", queue.name)
                return []

        if len(queues) < 2:
            return [fire(queue) for queue in queues]
        if self._slot_pool is None:  # threads start only when a tick has several queues
            self._slot_pool = ThreadPoolExecutor(max_workers=SLOT_THREADS, thread_name_prefix="slots")
        return list(self._slot_pool.map(fire, queues))

    def fire_due(self, queue: Queue, now: datetime) -> list[Fired]:
        ledger, grace = self.rt.ledger, self.rt.config.schedule_grace
        self._note_expiry(queue, now)
        last = ledger.slots.last_slot(queue.name)
        # Everything after the last decided slot is undecided; looking back a grace before it
        # re-lists decided slots too, which the ledger's unique slot names refuse again.
        since = (last.recorded_at if last is not None else now) - grace
        due, missed = due_slots(queue, since, now, grace)
        decided = self._decided.setdefault(queue.name, {})
        for name, fire_at in list(decided.items()):
            if fire_at < since:
                del decided[name]  # older than anything the planner will list again
        newly_missed = []
        for slot in missed:
            if slot.name not in decided and ledger.slots.mark_slot(queue.name, slot.name, "missed", now):
                newly_missed.append(slot)
            decided[slot.name] = slot.fire_at
        if last is None and queue.start is None:
            # A queue never decided before and without a `start` begins now: the slots its
            # schedule had before were never owed, so they are recorded but not warned about.
            self._log_not_owed(queue, newly_missed)
        else:
            self._log_missed(queue, newly_missed, now)
        fired: list[Fired] = []
        for slot in due:
            if slot.name in decided:
                continue
            fired.extend(self._fire_slot(queue, slot, now))
            decided[slot.name] = slot.fire_at  # only once the ledger has it: a crash here retries
        return fired

    def _fire_slot(self, queue: Queue, slot: Slot, now: datetime) -> list[Fired]:
        """Decide one due slot: skip it, or claim it and hand its deliveries out."""
        ledger = self.rt.ledger
        # Twice at most: the ledger refuses a post another worker's slot sent after our read
        # of the history, and the second choice reads the history again.
        for _ in range(2):
            post: Post | None
            if slot.pinned is not None:
                post, cycle = pinned_post(queue, slot), PINNED_CYCLE
                exhausted = False
            else:
                sent = ledger.slots.sent_posts(queue.name)
                choice = choose_post(queue, progress_from_history(sent), slot.fire_at)
                post, cycle, exhausted = choice.post, choice.cycle, choice.exhausted
            if post is None:
                self._skip_slot(queue, slot, now, exhausted)
                return []
            accounts, held = (
                [a for a in found(self.rt.config, queue) if not refuses_repeats(a.platform, cycle)]
                for found in (targets, held_targets)
            )
            # An account whose credentials were refused (unhealthy) holds its post like one
            # whose secrets are unset: nothing is spent until a probe finds it healthy.
            refused = self._refused if self._refused is not None else self.rt.ledger.shared.refused()
            held += [a for a in accounts if (a.platform, a.name) in refused]
            accounts = [a for a in accounts if (a.platform, a.name) not in refused]
            if not accounts and not held:  # only X, which refuses a repeat: nothing left to send
                self._skip_slot(queue, slot, now, exhausted=True)
                return []
            if not accounts:
                self._hold_slot(queue, slot, post, held, refused)
                return []
            # Rendered before the slot is claimed: a post that cannot render leaves the slot free.
            # A target whose secrets are unset or whose credentials were refused is owed its
            # delivery too: it waits, as a released claim, until the secrets are set or a probe
            # finds the account healthy (the tick after resumes it).
            jobs = [build_job(self.rt.config, queue, post, cycle, account) for account in accounts + held]
            if slot.pinned is None and not sent and self._sent_before(queue, post, jobs):
                return []
            # Every target's delivery is recorded with the slot, in one transaction, as a claim
            # given back: a pause, a stop or a crash from here on leaves each one to resume,
            # never a slot fired with targets nothing will ever send to.
            # The deliveries' claims come back (`owed`), so a delivery needs no claim of its own.
            owed = ledger.claim_slot_owing(
                queue.name,
                slot.name,
                cycle=cycle,
                post_id=post.id,
                worker=self.worker,
                now=now,
                owed=[job.key(0) for job in jobs],
                nonce_factory=lambda: make_tid(self.rt.now()),
                once_per_cycle=slot.pinned is None,
            )
            if owed is not None:
                break
            if slot.pinned is not None or ledger.slots.slot_decided(queue.name, slot.name):
                return []  # another worker decided this slot
        else:
            return []
        log.info(
            "slot fired %s %s: post %s (cycle %d)",
            queue.name,
            slot.name,
            post.id,
            cycle,
            extra={"event": "slot_fired", "queue": queue.name, "slot": slot.name, "post": post.id},
        )
        fired = Fired(queue.name, slot.name, post.id, cycle)
        if self.held.pop(queue.name, None) is not None:
            log.warning("queue %s: an account can post again; no longer holding its post", queue.name)
        self._note_held_accounts(queue, post, held, refused)
        for job in jobs[: len(accounts)]:
            self.deliveries.dispatch(job, owed.get(job.key(0)))
        return [fired]

    def _sent_before(self, queue: Queue, post: Post, jobs: list[Job]) -> bool:
        """A queue that never fired whose post already went out, word for word, under another
        queue's name: a renamed file, whose history stays with the old name. Held, said once."""
        copies = [(j.platform, j.account, post.id, j.parts[0].text) for j in jobs]
        other = self.rt.ledger.sent_by_another_queue(queue.name, copies)
        if other is None:
            return False
        if self.renamed.get(queue.name) != other:
            self.renamed[queue.name] = other
            why = (
                f"queue {queue.name}: post {post.id} already went out as {other}/{post.id}; a renamed "
                f"queue file starts afresh and would send its posts again: write `queue: {other}` in "
                f"{queue.file.name} to go on from there, or give the posts new ids to send them again"
            )
            log.error("holding %s", why, extra={"event": "slot_held", "queue": queue.name, "post": post.id})
            self.rt.alert("held", why)
        return True

    def _hold_slot(
        self, queue: Queue, slot: Slot, post: Post, held: list[Account], refused: dict[tuple[str, str], str]
    ) -> None:
        """No target can post: leave the slot undecided, so the post is not spent.

        The slot fires when a secret is set, or a probe finds a refused account healthy again,
        within the grace; past it, it is recorded missed like any slot of a stopped daemon.
        Logged and alerted once per queue and post.
        """
        if self.held.get(queue.name) == post.id:
            return
        self.held[queue.name] = post.id
        why = missing_line(held, refused) or "no enabled account"
        log.error(
            "holding %s %s: post %s waits, no account can post (%s)",
            queue.name,
            slot.name,
            post.id,
            why,
            extra={"event": "slot_held", "queue": queue.name, "slot": slot.name, "post": post.id},
        )
        self.rt.alert("held", f"queue {queue.name}: post {post.id} held, no account can post ({why})")

    def _note_held_accounts(
        self, queue: Queue, post: Post, held: list[Account], refused: dict[tuple[str, str], str]
    ) -> None:
        for account in held:
            log.warning(
                "held %s/%s %s/%s: %s; %s",
                account.platform,
                account.name,
                queue.name,
                post.id,
                held_why(account, refused),
                held_until(account),
            )
        fresh = [a for a in held if (a.platform, a.name) not in self._held_accounts]
        self._held_accounts.update((a.platform, a.name) for a in fresh)
        if fresh:
            until = "; ".join(sorted({held_until(a) for a in fresh}))
            self.rt.alert("held", f"posts held for {missing_line(fresh, refused)}: {until}")

    def held_now(self) -> str:
        """What waits for an account that cannot post (`run --once` fails on it), or ''."""
        said = [f"queue {queue} holds post {post} (no account can post)" for queue, post in self.held.items()]
        refused = self.rt.ledger.shared.refused()
        held = held_deliveries(self.rt.config, self.rt.ledger.unconfirmed_deliveries(), refused)
        if held:
            accounts = list({(a.platform, a.name): a for _, a in held}.values())
            said.append(f"{len(held)} deliveries held for {missing_line(accounts, refused)}")
        return "; ".join(said)

    def _skip_slot(self, queue: Queue, slot: Slot, now: datetime, exhausted: bool) -> None:
        previous = self.rt.ledger.slots.last_slot(queue.name)
        if self.rt.ledger.slots.mark_slot(queue.name, slot.name, "skipped", now):
            why = "queue exhausted" if exhausted else "nothing to send"
            first = previous is None or previous.state != "skipped"
            # A used-up queue says so once; each later slot it skips is only a debug line.
            (log.warning if first or not exhausted else log.debug)(
                "skip slot %s %s: %s",
                queue.name,
                slot.name,
                why,
                extra={"event": "slot_skipped", "queue": queue.name, "slot": slot.name},
            )
            if exhausted and first:
                self.rt.alert("queue_exhausted", f"queue {queue.name} has sent every post and stopped")

    def _log_missed(self, queue: Queue, missed: list[Slot], now: datetime) -> None:
        """One line per missed slot, but a first start of a fast queue does not flood the log."""
        grace = self.rt.config.schedule_grace
        for slot in missed[:MISSED_LINES]:
            late = timedelta(seconds=int((now - slot.fire_at).total_seconds()))
            # Within the grace, a slot is skipped only because a later one fires instead.
            why = f"past the grace of {grace}" if late >= grace else "a later slot fires instead"
            log.warning(
                "missed slot %s %s: %s late, %s",
                queue.name,
                slot.name,
                late,
                why,
                extra={"event": "slot_missed", "queue": queue.name, "slot": slot.name},
            )
        if len(missed) > MISSED_LINES:
            log.warning(
                "missed %d more slots of %s, up to %s",
                len(missed) - MISSED_LINES,
                queue.name,
                missed[-1].name,
                extra={"event": "slot_missed", "queue": queue.name, "count": len(missed) - MISSED_LINES},
            )

    def _log_not_owed(self, queue: Queue, earlier: list[Slot]) -> None:
        if earlier:
            log.info(
                "queue %s starts: %d earlier slot%s of its schedule not owed (up to %s)",
                queue.name,
                len(earlier),
                "s" * (len(earlier) != 1),
                earlier[-1].name,
                extra={"event": "slot_not_owed", "queue": queue.name, "count": len(earlier)},
            )

    def _note_expiry(self, queue: Queue, now: datetime) -> None:
        if queue.expires is None or now <= queue.expires or queue.name in self._expired:
            return
        self._expired.add(queue.name)
        log.warning("queue %s expired at %s", queue.name, queue.expires.isoformat())
        self.rt.alert("queue_expired", f"queue {queue.name} expired at {queue.expires.isoformat()}")

    # --- deliveries ------------------------------------------------------------------------

    # --- account health --------------------------------------------------------------------

    def probe_accounts(self, now: datetime) -> list[Future[None]]:
        """Re-check every unhealthy account every 15 minutes and after each config change."""
        if not self._probe_now and self._last_probe is not None and now - self._last_probe < PROBE_EVERY:
            return []
        self._probe_now = False
        self._last_probe = now
        return [
            self.deliveries.pool.submit(self._probe, platform, account)
            for platform, account in self.rt.ledger.shared.refused()
        ]

    def _probe(self, platform: str, account: str) -> None:
        self.rt.clients.drop(platform, account)
        try:
            self.rt.clients.account(platform, account)
        except KeyError:
            return  # no longer in the config
        try:
            handle = self.rt.clients(platform, account).verify()  # opening may sign in, and fail
        except PlatformError as exc:
            self.rt.ledger.shared.set_account_health(
                platform, account, healthy=False, error=str(exc), now=self.rt.now()
            )
            log.warning("probe %s/%s: still refused (%s)", platform, account, exc)
            return
        except Exception as exc:  # an answer it could not read: still held, and said
            log.warning("probe %s/%s: failed (%s)", platform, account, type(exc).__name__)
            return
        self.rt.ledger.shared.set_account_health(
            platform, account, healthy=True, error=None, now=self.rt.now()
        )
        log.warning("account %s/%s healthy again (%s)", platform, account, handle)

    # --- running ---------------------------------------------------------------------------

    @property
    def results(self) -> list[Result]:
        return list(self.deliveries.results)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait for every delivery handed out so far; False if some still run after `timeout`."""
        return self.deliveries.wait_idle(timeout)

    def next_fire_within(self, horizon: timedelta) -> datetime | None:
        """When the first slot of any queue fires within `horizon` from now (jitter included)."""
        now = self.rt.now()
        times = [
            slot.fire_at for queue in self.rt.queues() for slot in next_slots(queue, now, 1, horizon=horizon)
        ]
        return min(times, default=None)

    def _monitor_quietly(self) -> None:
        if self.monitor is None or self.stop.is_set():
            return
        try:
            self.monitor(False)
        except Exception:  # monitoring trouble must never stop the posting
            log.exception("monitoring pass failed")

    def expire_dead_workers(self, now: datetime) -> None:
        """End the leases of workers gone from this host: their claims are resumed now, and
        their monitoring streams polled by the next worker that asks, not in 5 minutes."""
        expire_dead_workers(self.rt.ledger, now, died=self._died)
        streams = self.rt.ledger.leases
        for holder in streams.lease_holders():
            if self._died(holder) and streams.release_leases_of(holder):
                log.warning("worker %s is gone: its monitoring streams pass on now", holder)

    def start_up(self) -> None:
        """Free the claims of this host's dead workers (a crash): the first tick reconciles them."""
        self.check_clock()
        try:
            self.expire_dead_workers(self.rt.now())
        except Exception:
            log.exception("could not look for dead workers' claims")

    def check_clock(self) -> None:
        """Leases and claims run on the database's clock, but slots fire, limits count and lookups
        start by this worker's: one that is off the database's (which every worker shares) fires
        posts early or late and misses a lost post when it looks for it. Say so loudly."""
        try:
            skew = (self.rt.now() - database_now(self.rt.ledger.engine)).total_seconds()
        except Exception:  # the first tick will report a database that does not answer
            return
        if abs(skew) > MAX_CLOCK_SKEW:
            message = (
                f"this worker's clock is {skew:+.0f} s off the database's; slots, account limits and "
                "lookups of lost posts use this worker's clock: set the clock (NTP)"
            )
            log.error("clock: %s", message)
            self.rt.alert("clock", message)

    def run_once(self) -> list[Result]:
        """`run --once`: fire what is due, wait for those deliveries (retries included), monitor once."""
        self.start_up()
        # Unhealthy accounts are probed first: one fixed since the last run (a new token) sends
        # what it held in this run, not the next.
        wait_futures(self.probe_accounts(self.rt.now()))
        self.tick()
        self._close_slot_pool()
        self.wait_idle()
        if self.monitor is not None and not self.stop.is_set():
            self.monitor(True)
        return list(self.results)

    def run(self) -> bool:
        """Tick every few seconds until `stop` is set; then let calls in flight end. True if all did."""
        from apscheduler.executors.pool import ThreadPoolExecutor as JobExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        scheduler = BackgroundScheduler(
            # One thread: ticks never overlap, and the deliveries run in our own pool anyway.
            executors={"default": JobExecutor(max_workers=1)},
            job_defaults={
                # A tick that runs late (a stalled host) runs once, not once per missed interval:
                # the planner decides what a late slot means, not APScheduler.
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": None,
            },
            timezone="UTC",
        )
        self.start_up()

        def tick_and_wake() -> None:
            # The interval tick alone fires a slot up to TICK_SECONDS late; a one-off wake at
            # the next slot's time (same single thread, so never beside a tick) fires it on
            # time (bench/slot_accuracy.py: p99 1.2 s -> under 0.1 s).
            self.tick()
            wake = self.next_fire_within(timedelta(seconds=TICK_SECONDS))
            if wake is not None and not self.stop.is_set():
                scheduler.add_job(tick_and_wake, "date", run_date=wake, id="wake", replace_existing=True)

        scheduler.add_job(
            tick_and_wake, "interval", seconds=TICK_SECONDS, id="tick", next_run_time=self.rt.now()
        )
        if self.monitor is not None:
            # Cheap when no stream is due (the monitor paces each platform to its budget), and
            # `wait=False` so a platform still busy from the last pass holds up nothing.
            scheduler.add_job(
                self._monitor_quietly,
                "interval",
                seconds=MONITOR_EVERY,
                id="monitor",
                next_run_time=self.rt.now(),
            )
        scheduler.start()
        log.info("daemon started (worker %s); %d queues", self.worker, len(self.rt.queues()))
        try:
            self.stop.wait()
        finally:
            log.info("stopping: no new work; letting calls in flight end")
            scheduler.shutdown(wait=False)
            finished = self.wait_idle(SHUTDOWN_BOUND)
            self.deliveries.shutdown(wait=finished)
        if not finished:
            log.warning("calls still in flight after %.0fs: the next start reconciles them", SHUTDOWN_BOUND)
        log.info("stopped")
        return finished
