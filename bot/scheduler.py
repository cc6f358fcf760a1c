"""The daemon: a tick every few seconds fires the due slots, resumes pending deliveries, probes.

APScheduler 3 is only the clock and the trigger runner (DESIGN §4). Slot names, jitter, quiet
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
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.delivery import Courier, Gate, Job, Result
from bot.errors import AuthFailed, PlatformError
from bot.gate import LiveGate
from bot.ledger import DELIVERY_LEASE, new_worker_id
from bot.limits import next_allowed
from bot.model import Account, Post, Queue
from bot.payloads import build_job, targets
from bot.planner import PINNED_CYCLE, choose_post, due_slots, pinned_post, progress_from_history
from bot.platforms.tid import make_tid
from bot.runtime import Runtime
from bot.workers import died_here

log = logging.getLogger("bot.scheduler")

TICK_SECONDS = 2.0  # live edits within 10 s, pause within 5 s: both well inside
PROBE_EVERY = timedelta(minutes=15)
# A delivery not reached within a day (a long pause, an account limit that never frees up) is
# recorded failed rather than sent late: a call to action from last week is worse than none.
PENDING_MAX_AGE = timedelta(days=1)
MONITOR_EVERY = 10.0  # seconds between monitoring passes; the monitor decides what is due
SHUTDOWN_BOUND = 25.0  # seconds for calls in flight after SIGTERM (Heroku kills at 30)


@dataclass(frozen=True)
class Fired:
    queue: str
    slot: str
    post_id: str
    cycle: int


class Daemon:
    """The posting loop of one worker. `tick()` is one pass; `start()` runs it every few seconds."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        stop: threading.Event | None = None,
        gate: Gate | None = None,
        worker: str | None = None,
        max_workers: int = 16,
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
        self.monitor = monitor  # one monitoring pass (`wait`: for its calls), plugged in by bot.monitor
        self.pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="deliver")
        self.in_flight: dict[tuple[str, str, int, str, str], Future[Result]] = {}
        self.results: list[Result] = []
        self._lock = threading.Lock()
        self._account_locks: dict[tuple[str, str], threading.Lock] = {}
        self._was_paused: bool | None = None
        self._expired: set[str] = set()
        self._last_probe: datetime | None = None
        self._probe_now = True
        self._waiting: dict[tuple[str, str, int, str, str], datetime] = {}  # held by an account limit

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
        pause = self.rt.ledger.pause_state()
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
        fired: list[Fired] = []
        for queue in self.rt.queues():
            fired.extend(self.fire_due(queue, now))
        self.expire_dead_workers(now)
        self.resume_pending(now)
        self.probe_accounts(now)
        return fired

    # --- slots -----------------------------------------------------------------------------

    def fire_due(self, queue: Queue, now: datetime) -> list[Fired]:
        ledger, grace = self.rt.ledger, self.rt.config.schedule_grace
        self._note_expiry(queue, now)
        last = ledger.last_slot(queue.name)
        # Everything after the last decided slot is undecided; looking back a grace before it
        # re-lists decided slots too, which the ledger's unique slot names refuse again.
        since = (last.recorded_at if last is not None else now) - grace
        due, missed = due_slots(queue, since, now, grace)
        for slot in missed:
            if ledger.mark_slot(queue.name, slot.name, "missed", now):
                log.warning(
                    "missed slot %s %s: %s late, past the grace",
                    queue.name,
                    slot.name,
                    now - slot.fire_at,
                    extra={"event": "slot_missed", "queue": queue.name, "slot": slot.name},
                )
        fired: list[Fired] = []
        for slot in due:
            post: Post | None
            if slot.pinned is not None:
                post, cycle = pinned_post(queue, slot), PINNED_CYCLE
                exhausted = False
            else:
                choice = choose_post(
                    queue, progress_from_history(ledger.sent_posts(queue.name)), slot.fire_at
                )
                post, cycle, exhausted = choice.post, choice.cycle, choice.exhausted
            if post is None:
                previous = ledger.last_slot(queue.name)
                if ledger.mark_slot(queue.name, slot.name, "skipped", now):
                    why = "queue exhausted" if exhausted else "nothing to send"
                    log.warning(
                        "skip slot %s %s: %s",
                        queue.name,
                        slot.name,
                        why,
                        extra={"event": "slot_skipped", "queue": queue.name, "slot": slot.name},
                    )
                    if exhausted and (previous is None or previous.state != "skipped"):
                        self.rt.alert(
                            "queue_exhausted", f"queue {queue.name} has sent every post and stopped"
                        )
                continue
            # Rendered before the slot is claimed: a post that cannot render leaves the slot free.
            accounts = targets(self.rt.config, queue)
            jobs = [build_job(self.rt.config, queue, post, cycle, account) for account in accounts]
            # Every target's delivery is recorded with the slot, in one transaction, as a claim
            # given back: a pause, a stop or a crash from here on leaves each one to resume,
            # never a slot fired with targets nothing will ever send to.
            if not ledger.claim_slot(
                queue.name,
                slot.name,
                cycle=cycle,
                post_id=post.id,
                worker=self.worker,
                now=now,
                owed=[job.key(0) for job in jobs],
                nonce_factory=self._nonce,
            ):
                continue
            log.info(
                "slot fired %s %s: post %s (cycle %d)",
                queue.name,
                slot.name,
                post.id,
                cycle,
                extra={"event": "slot_fired", "queue": queue.name, "slot": slot.name, "post": post.id},
            )
            fired.append(Fired(queue.name, slot.name, post.id, cycle))
            healthy = self.healthy(accounts)
            for account, job in zip(accounts, jobs, strict=True):
                if account in healthy:
                    self.dispatch(job)
                else:
                    self._skip_unhealthy(job)
        return fired

    def _reserve(self, job: Job) -> bool:
        """Claim part 0 and give it back at once: a released claim that `resume_pending` sees."""
        key, ledger, now = job.key(0), self.rt.ledger, self.rt.now()
        if ledger.claim_delivery(key, self.worker, now, DELIVERY_LEASE, self._nonce) is None:
            return False
        return ledger.renew_delivery(key, self.worker, now, timedelta(0))

    def _skip_unhealthy(self, job: Job) -> None:
        key, now = job.key(0), self.rt.now()
        if self.rt.ledger.claim_delivery(key, self.worker, now, DELIVERY_LEASE, self._nonce) is not None:
            self.rt.ledger.fail_delivery(key, "skipped: account unhealthy (credentials refused)", now)

    def _note_expiry(self, queue: Queue, now: datetime) -> None:
        if queue.expires is None or now <= queue.expires or queue.name in self._expired:
            return
        self._expired.add(queue.name)
        log.warning("queue %s expired at %s", queue.name, queue.expires.isoformat())
        self.rt.alert("queue_expired", f"queue {queue.name} expired at {queue.expires.isoformat()}")

    # --- deliveries ------------------------------------------------------------------------

    def healthy(self, accounts: list[Account]) -> list[Account]:
        unhealthy = {(h.platform, h.account) for h in self.rt.ledger.account_health() if not h.healthy}
        kept = []
        for account in accounts:
            if (account.platform, account.name) in unhealthy:
                log.warning(
                    "skip %s/%s: account unhealthy (credentials refused)", account.platform, account.name
                )
            else:
                kept.append(account)
        return kept

    def dispatch(self, job: Job) -> None:
        """Hand one job to the pool unless it is already running here."""
        ident = (job.queue, job.post_id, job.cycle, job.platform, job.account)
        with self._lock:
            running = self.in_flight.get(ident)
            if running is not None and not running.done():
                return
            future = self.pool.submit(self._run_job, job)
            self.in_flight[ident] = future

    def _run_job(self, job: Job) -> Result:
        account = self.rt.clients.account(job.platform, job.account)
        limited = account.limits.posts_per_day is not None or account.limits.min_gap is not None
        lock = self._account_lock(job) if limited else None
        if lock is not None:
            lock.acquire()
        try:
            if limited:
                wait_until = self._limit_wait(account)
                if wait_until is not None:
                    return self._hold(job, wait_until)
            result = self.courier.deliver(job, self.rt.clients(job.platform, job.account))
        except AuthFailed as exc:
            self.courier._unhealthy(job, str(exc))
            result = Result(job, "failed", error=f"authentication refused: {exc}")
        except PlatformError as exc:
            result = Result(job, "deferred", error=f"cannot reach {job.platform}: {exc}")
        except Exception as exc:
            log.exception("delivery %s %s/%s crashed", job.target, job.queue, job.post_id)
            result = Result(job, "failed", error=f"internal error: {type(exc).__name__}")
        finally:
            if lock is not None:
                lock.release()
        self._report(result)
        return result

    def _report(self, result: Result) -> None:
        with self._lock:
            self.results.append(result)
        # The courier logs each outcome as it happens; only what it never saw is logged here.
        if result.error and result.error.startswith("cannot reach"):
            log.warning("deferred %s", result.line())

    def _account_lock(self, job: Job) -> threading.Lock:
        with self._lock:
            return self._account_locks.setdefault((job.platform, job.account), threading.Lock())

    def _limit_wait(self, account: Account) -> datetime | None:
        now = self.rt.now()
        ledger = self.rt.ledger
        last = ledger.last_posts().get((account.platform, account.name))
        posted = ledger.count_posts(account.platform, account.name, now - timedelta(days=1))
        return next_allowed(account.limits, now, last_post=last, posts_last_day=posted)

    def _hold(self, job: Job, until: datetime) -> Result:
        """Wait for an account limit without a thread: leave a released claim for `resume_pending`."""
        with self._lock:
            self._waiting[(job.queue, job.post_id, job.cycle, job.platform, job.account)] = until
        self._reserve(job)
        log.info(
            "waiting %s %s/%s: account limit until %s", job.target, job.queue, job.post_id, until.isoformat()
        )
        return Result(
            job, "deferred", error=f"account limit: next allowed at {until.isoformat(timespec='seconds')}"
        )

    def expire_dead_workers(self, now: datetime) -> None:
        """End the leases of workers that died on this host, so their claims are resumed now.

        A killed worker's claims would otherwise wait out their 90 s lease. Only a worker whose
        process is provably gone is expired (`bot.workers.died_here`); the next claimer still
        reconciles each attempted claim with the platform before sending.
        """
        for holder in self.rt.ledger.claim_holders():
            if holder != self.worker and self._died(holder):
                expired = self.rt.ledger.expire_claims(holder, now)
                if expired:
                    log.warning("worker %s is gone: resuming its %d claims", holder, expired)

    def resume_pending(self, now: datetime) -> None:
        """Pick up claims nobody holds: a crashed worker's, a paused or limited delivery's."""
        seen: set[tuple[str, str, int, str, str]] = set()
        for row in self.rt.ledger.unconfirmed_deliveries(now):
            k = row.key
            ident = (k.queue, k.post_id, k.cycle, k.platform, k.account)
            if ident in seen:
                continue
            seen.add(ident)
            with self._lock:
                running = self.in_flight.get(ident)
                if running is not None and not running.done():
                    continue
                if self._waiting.get(ident, now) > now:
                    continue
            queue = self.rt.queue(k.queue)
            post = next((p for p in queue.posts if p.id == k.post_id), None) if queue is not None else None
            if now - row.claimed_at > PENDING_MAX_AGE or queue is None or post is None:
                why = "not delivered within a day" if post is not None else "post no longer in the content"
                if self.rt.ledger.claim_delivery(row.key, self.worker, now, DELIVERY_LEASE, self._nonce):
                    self.rt.ledger.fail_delivery(row.key, why, now)
                    log.error("failed %s/%s %s/%s: %s", k.platform, k.account, k.queue, k.post_id, why)
                continue
            for account in targets(self.rt.config, queue):
                if (account.platform, account.name) != (k.platform, k.account):
                    continue
                job = build_job(self.rt.config, queue, post, k.cycle, account)
                if self.healthy([account]):
                    self.dispatch(job)
                else:
                    self._skip_unhealthy(job)

    def _nonce(self) -> str:
        return make_tid(self.rt.now())

    # --- account health --------------------------------------------------------------------

    def probe_accounts(self, now: datetime) -> None:
        """Re-check every unhealthy account every 15 minutes and after each config change."""
        if not self._probe_now and self._last_probe is not None and now - self._last_probe < PROBE_EVERY:
            return
        self._probe_now = False
        self._last_probe = now
        for health in self.rt.ledger.account_health():
            if health.healthy:
                continue
            self.pool.submit(self._probe, health.platform, health.account)

    def _probe(self, platform: str, account: str) -> None:
        self.rt.clients.drop(platform, account)
        try:
            handle = self.rt.clients(platform, account).verify()
        except KeyError:
            return  # no longer in the config
        except PlatformError as exc:
            self.rt.ledger.set_account_health(
                platform, account, healthy=False, error=str(exc), now=self.rt.now()
            )
            log.warning("probe %s/%s: still refused (%s)", platform, account, exc)
            return
        self.rt.ledger.set_account_health(platform, account, healthy=True, error=None, now=self.rt.now())
        log.warning("account %s/%s healthy again (%s)", platform, account, handle)

    # --- running ---------------------------------------------------------------------------

    def _monitor_quietly(self) -> None:
        if self.monitor is None or self.stop.is_set():
            return
        try:
            self.monitor(False)
        except Exception:  # monitoring trouble must never stop the posting
            log.exception("monitoring pass failed")

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait for every job handed out so far; False if some still run after `timeout`."""
        with self._lock:
            futures = list(self.in_flight.values())
        _, pending = wait_futures(futures, timeout=timeout)
        return not pending

    def run_once(self) -> list[Result]:
        """`run --once`: fire what is due, wait for those deliveries (retries included), monitor once."""
        self.tick()
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
        scheduler.add_job(self.tick, "interval", seconds=TICK_SECONDS, id="tick", next_run_time=self.rt.now())
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
            self.pool.shutdown(wait=finished, cancel_futures=True)
        if not finished:
            log.warning("calls still in flight after %.0fs: the next start reconciles them", SHUTDOWN_BOUND)
        log.info("stopped")
        return finished
