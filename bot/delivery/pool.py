"""The daemon's delivery jobs: one thread per (post, account), pending work, account limits.

`DeliveryPool` hands each job to its own thread from a shared pool, so one slow or dead platform
or account never holds another; remembers what runs, so a job is never started twice in one
worker; holds a job back while an account limit says wait (as a released claim, not a blocked
thread); and resumes the ledger's unconfirmed claims (a crash, a pause, a stop, a limit).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from datetime import datetime, timedelta
from typing import Protocol

from bot.campaign.model import Account, Config, Queue
from bot.delivery.courier import Courier, Job, Result
from bot.delivery.jobs import build_job, targets
from bot.errors import AuthFailed, PlatformError
from bot.ledger.deliveries import DELIVERY_LEASE, Delivery, Ledger
from bot.planning.limits import next_allowed
from bot.platforms import PlatformClient
from bot.platforms.tid import make_tid

log = logging.getLogger("bot.scheduler")

# A delivery not reached within a day (a long pause, an account limit that never frees up) is
# recorded failed rather than sent late: a call to action from last week is worse than none.
PENDING_MAX_AGE = timedelta(days=1)

JobId = tuple[str, str, int, str, str]  # queue, post, cycle, platform, account

# Delivery threads: enough for one post to every target of a large campaign (3 networks x 20
# accounts) at once. They wait on the network almost all the time, and the pool starts them
# only as jobs come, so an idle daemon has none. With 16, 60 targets took 4 rounds of the
# networks' latency (bench/fanout.py).
DELIVERY_THREADS = 64

# How soon a job held back because another worker is posting to the same limited account
# looks again (the other worker's post then counts in the limit).
ACCOUNT_BUSY_RETRY = timedelta(seconds=5)


class Clients(Protocol):
    def account(self, platform: str, name: str) -> Account: ...
    def __call__(self, platform: str, name: str) -> PlatformClient: ...


class Host(Protocol):
    """What the pool reads of the daemon's runtime, which reloads config and queues under it."""

    @property
    def config(self) -> Config: ...
    @property
    def ledger(self) -> Ledger: ...
    @property
    def clients(self) -> Clients: ...
    def now(self) -> datetime: ...
    def queue(self, name: str) -> Queue | None: ...


RESULTS_KEPT = 1000


def _account_lease(job: Job) -> str:
    return f"account:{job.platform}/{job.account}"


class DeliveryPool:
    def __init__(self, runtime: Host, courier: Courier, *, max_workers: int = DELIVERY_THREADS) -> None:
        self.rt = runtime
        self.courier = courier
        self.pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="deliver")
        self.in_flight: dict[JobId, Future[Result]] = {}  # pruned of finished jobs on each dispatch
        # The latest outcomes (`run --once` and tests read them); a daemon runs for weeks.
        self.results: deque[Result] = deque(maxlen=RESULTS_KEPT)
        self._lock = threading.Lock()
        self._account_locks: dict[tuple[str, str], threading.Lock] = {}
        self._waiting: dict[JobId, datetime] = {}  # held by an account limit until then
        self._leases = runtime.ledger.leases  # one poster at a time per limited account

    @property
    def worker(self) -> str:
        return self.courier.worker

    def reserve(self, job: Job) -> bool:
        """Claim part 0 and give it back at once: a released claim that `resume_pending` sees."""
        key, ledger, now = job.key(0), self.rt.ledger, self.rt.now()
        if ledger.claim_delivery(key, self.worker, now, DELIVERY_LEASE, self._nonce) is None:
            return False
        return ledger.renew_delivery(key, self.worker, now, timedelta(0))

    def dispatch(self, job: Job, owed: Delivery | None = None) -> None:
        """Hand one job to the pool unless it is already running here (`owed`: `Courier.deliver`)."""
        ident = (job.queue, job.post_id, job.cycle, job.platform, job.account)
        with self._lock:
            running = self.in_flight.get(ident)
            if running is not None and not running.done():
                return
            for done in [i for i, f in self.in_flight.items() if f.done()]:
                del self.in_flight[done]
            now = self.rt.now()
            for over in [i for i, until in self._waiting.items() if until <= now]:
                del self._waiting[over]
            future = self.pool.submit(self._run_job, job, owed)
            self.in_flight[ident] = future

    def _run_job(self, job: Job, owed: Delivery | None = None) -> Result:
        try:
            account = self.rt.clients.account(job.platform, job.account)
        except KeyError:  # gone from config.yaml since the job was made: its claim stays unsent
            error = "the account is no longer in config.yaml: not sent (fails after a day unless it returns)"
            result = Result(job, "deferred", error=error)
            self._report(result)
            return result
        limited = account.limits.posts_per_day is not None or account.limits.min_gap is not None
        lock = self._account_lock(job) if limited else None
        if lock is not None:
            lock.acquire()
        leased = False
        try:
            if limited:
                # The thread lock keeps this worker's jobs for the account apart; the lease keeps
                # other workers' apart (several `run` processes on one database), so the check
                # below and the post it allows are one step among all of them.
                leased = self._take_account(job)
                if not leased:
                    return self._hold(
                        job, self.rt.now() + ACCOUNT_BUSY_RETRY, "account busy in another worker"
                    )
                wait_until = self._limit_wait(account)
                if wait_until is not None:
                    return self._hold(job, wait_until)
            result = self.courier.deliver(job, self.rt.clients(job.platform, job.account), owed)
        except AuthFailed as exc:  # refused at sign-in: held, as the courier holds a refused post
            self.courier.mark_unhealthy(job, str(exc))
            result = Result(job, "deferred", error=f"held: authentication refused: {exc}")
        except PlatformError as exc:
            result = Result(job, "deferred", error=f"cannot reach {job.platform}: {exc}")
        except Exception as exc:
            log.exception("delivery %s %s/%s crashed", job.target, job.queue, job.post_id)
            result = Result(job, "failed", error=f"internal error: {type(exc).__name__}")
        finally:
            if leased:
                self._leases.release_lease(_account_lease(job), self.worker)
            if lock is not None:
                lock.release()
        self._report(result)
        return result

    def _take_account(self, job: Job) -> bool:
        # Long enough for one delivery with all its retries; a worker that dies holding it hands
        # it on when its lease runs out, or at once when it died on this host (the daemon's
        # dead-worker check releases every lease of a gone worker).
        ttl = timedelta(seconds=self.courier.policy.max_wait) + DELIVERY_LEASE
        return self._leases.acquire_lease(_account_lease(job), self.worker, ttl)

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

    def _hold(self, job: Job, until: datetime, why: str = "account limit") -> Result:
        """Wait for an account limit without a thread: leave a released claim for `resume_pending`."""
        with self._lock:
            self._waiting[(job.queue, job.post_id, job.cycle, job.platform, job.account)] = until
        self.reserve(job)
        log.info("waiting %s %s/%s: %s until %s", job.target, job.queue, job.post_id, why, until.isoformat())
        return Result(job, "deferred", error=f"{why}: next allowed at {until.isoformat(timespec='seconds')}")

    def resume_pending(self, now: datetime) -> None:
        """Pick up claims nobody holds: a crashed worker's, a paused or limited delivery's."""
        seen: set[tuple[str, str, int, str, str]] = set()
        refused = self.rt.ledger.shared.refused()  # held until a probe finds them healthy
        for row in self.rt.ledger.unconfirmed_deliveries():
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
                    self.rt.ledger.fail_delivery(row.key, why, now, worker=self.worker)
                    log.error("failed %s/%s %s/%s: %s", k.platform, k.account, k.queue, k.post_id, why)
                continue
            for account in targets(self.rt.config, queue):
                if (account.platform, account.name) != (k.platform, k.account):
                    continue
                if (account.platform, account.name) not in refused:
                    self.dispatch(build_job(self.rt.config, queue, post, k.cycle, account))

    def _nonce(self) -> str:
        return make_tid(self.rt.now())

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait for every job handed out so far; False if some still run after `timeout`."""
        with self._lock:
            futures = list(self.in_flight.values())
        _, pending = wait_futures(futures, timeout=timeout)
        return not pending

    def shutdown(self, wait: bool) -> None:
        self.pool.shutdown(wait=wait, cancel_futures=True)
