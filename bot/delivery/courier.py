"""Deliver one post to one account exactly once, and one post to all its accounts at once.

The rules (docs/design.md, exactly once), per part of the post, in order:

1. Claim the part in the ledger before any network call. The nonce (a TID: Bluesky's record
   key, Mastodon's Idempotency-Key) is chosen by the first claim and kept by every later one.
2. If an earlier attempt may have reached the platform (a crash, a lost answer, a 5xx), ask
   the platform first (`find_published`): a copy found is confirmed, never sent again. A
   two-step publish (Instagram) records what its first step made (`checkpoint`) before the
   final call, and the lookup asks about that.
3. Send; confirm with the remote id and URL.
4. Timeouts, connection errors and 5xx (`Transient`) and 429s (`RateLimited`) are retried with
   exponential backoff that honours the platform's reset time, up to a bound, re-asking the
   platform before each retry after a `Transient` (the write may have been applied).
   `Rejected` fails at once with the platform's message; `AuthFailed` marks the account
   unhealthy, raises one alert and holds the delivery until a probe finds the account healthy.

A thread stops at its first failed part; the next delivery of the same post resumes at the
first part not posted, replying to the part already posted. Waiting goes through a `Gate`, so
a pause or a shutdown cuts a backoff short: the claim is then released unconfirmed, and the
next claimer reconciles it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal, Protocol

from bot.delivery.keeper import keeping
from bot.errors import AuthFailed, Duplicate, PlatformError, RateLimited, Rejected, Transient
from bot.ledger.deliveries import CALL_IN_FLIGHT, DELIVERY_LEASE, INTERRUPTED, Delivery, Ledger
from bot.ledger.schema import DeliveryKey
from bot.ledger.workers import died_here
from bot.platforms import Outgoing, PlatformClient, Published
from bot.platforms.tid import make_tid
from bot.retry import RetryPolicy

log = logging.getLogger("bot.delivery")

Clock = Callable[[], datetime]
Alert = Callable[[str, str], None]  # (kind, message): never a secret in either


class Gate(Protocol):
    """Where a delivery asks whether to go on, and waits."""

    def halted(self) -> str | None:
        """Why no new call may start ("paused", "stopping"), or None to go on."""
        ...

    def wait(self, seconds: float) -> bool:
        """Wait; False when cut short because the work must halt."""
        ...


@dataclass(frozen=True)
class Job:
    """One post to one account: the parts as rendered, their nonces and reply refs still unset."""

    queue: str
    post_id: str
    cycle: int
    platform: str
    account: str
    parts: tuple[Outgoing, ...]

    @property
    def target(self) -> str:
        return f"{self.platform}/{self.account}"

    def key(self, part: int) -> DeliveryKey:
        return DeliveryKey(self.queue, self.post_id, self.cycle, part, self.platform, self.account)


Outcome = Literal["posted", "done", "failed", "deferred", "skipped"]


@dataclass(frozen=True)
class Result:
    """What became of one job: `posted` now, `done` before, `failed`, `deferred` (later), `skipped`."""

    job: Job
    outcome: Outcome
    urls: tuple[str, ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome in ("posted", "done")

    def line(self) -> str:
        """One line per delivery, as `post` prints it."""
        head = f"{self.job.target} {self.job.queue}/{self.job.post_id}"
        if self.ok:
            return f"{head} {self.outcome}: {' '.join(self.urls)}"
        return f"{head} {self.outcome}: {self.error}"


@dataclass
class _Part:
    """One claimed part of a job on its way out, and what was last sent for it."""

    job: Job
    index: int
    key: DeliveryKey
    claim: Delivery
    message: Outgoing  # what to send now: the current text, the claim's nonce, its reply refs
    held: dict[DeliveryKey, Delivery]  # where the next part's claim is kept, taken before confirming
    attempted: Outgoing = field(init=False)  # what the last call carried, for looking it up

    def __post_init__(self) -> None:
        # Look for the text an earlier call carried (the ledger keeps it): the post may have
        # been edited since, and its new text was never sent.
        claim = self.claim
        self.attempted = (
            replace(self.message, text=claim.text) if claim.attempted and claim.text else self.message
        )

    @property
    def label(self) -> str:
        parts = len(self.job.parts)
        suffix = f" part {self.index + 1}/{parts}" if parts > 1 else ""
        return f"{self.job.target} {self.job.queue}/{self.job.post_id}{suffix}"


@dataclass
class Courier:
    """Everything a delivery needs besides the job: the ledger, time, waiting, and who we are."""

    ledger: Ledger
    now: Clock
    gate: Gate
    worker: str
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    alert: Alert = lambda kind, message: None
    retry_failed: bool = False  # `post QUEUE ITEM_ID`: a person asks again for failed targets
    lease: timedelta = DELIVERY_LEASE
    # While a publish runs, its claim is renewed this often, for at most `call_deadline`: every
    # HTTP request ends within its own deadline (`bot.platforms.deadline`), but one publish may
    # make several (images, then the post), and another worker must not take the claim over
    # and send again meanwhile. A call still running after `call_deadline` is a bug: let go.
    renew_every: float = 30.0
    call_deadline: float = 600.0

    def deliver(self, job: Job, client: PlatformClient, owed: Delivery | None = None) -> Result:
        """Send every part of `job` not yet posted, in order, each exactly once.

        `owed`: part 0's claim as its slot made it (`Ledger.claim_slot_owing`): given back, in
        this worker's name, never attempted. The attempt before the call takes it back, or finds
        another worker took it meanwhile (then nothing is sent)."""
        urls: list[str] = []
        root: Published | None = None
        previous: Published | None = None
        fresh = False
        held: dict[DeliveryKey, Delivery] = {}  # the next part, claimed before this one is confirmed
        if (
            owed is not None
            and owed.key == job.key(0)
            and owed.claimed_by == self.worker
            and not owed.attempted
        ):
            held[owed.key] = owed
        for index, template in enumerate(job.parts):
            step = self._deliver_part(job, index, template, client, held, reply_to=previous, root=root)
            if isinstance(step, Result):
                return step
            published, sent_now = step
            fresh = fresh or sent_now
            urls.append(published.url)
            previous = published
            root = root or published
        return Result(job, "posted" if fresh else "done", tuple(urls))

    # --- one part -------------------------------------------------------------------------

    def _deliver_part(
        self,
        job: Job,
        index: int,
        template: Outgoing,
        client: PlatformClient,
        held: dict[DeliveryKey, Delivery],
        *,
        reply_to: Published | None,
        root: Published | None,
    ) -> tuple[Published, bool] | Result:
        """One part: halt, hold its claim, then send it (or find it sent) until it is settled."""
        key = job.key(index)
        claim = held.pop(key, None)
        halted = self.gate.halted()
        if halted:
            if claim is not None:
                self._release(key)
            return Result(job, "deferred", error=halted)
        recorded = False
        if claim is None:
            # Claim and record the attempt in one commit: nothing comes between them but the
            # message, whose text is the template's.
            claim, recorded = self.ledger.claim_to_send(
                key,
                self.worker,
                self.now(),
                self.lease,
                lambda: make_tid(self.now()),
                template.text,
                retry_failed=self.retry_failed,
            )
        if claim is None:
            return self._not_ours(job, key)
        message = replace(
            template, nonce=claim.nonce, reply_to=reply_to, root=root, checkpoint=claim.checkpoint
        )
        part = _Part(job, index, key, claim, message, held)
        part.message = replace(message, on_checkpoint=lambda ref: self._checkpoint(part, ref))
        return self._settle(part, client, recorded)

    def _checkpoint(self, part: _Part, ref: str) -> bool:
        """Record what a two-step publish made (an Instagram container) before its final call;
        later attempts and lookups carry it. False: the claim is gone, the call is not made."""
        if not self.ledger.record_checkpoint(part.key, self.worker, ref, self.now()):
            return False
        part.message = replace(part.message, checkpoint=ref)
        part.attempted = replace(part.attempted, checkpoint=ref)
        return True

    def _settle(
        self, part: _Part, client: PlatformClient, recorded: bool = False
    ) -> tuple[Published, bool] | Result:
        """Look, send and retry one claimed part until it is posted, failed or deferred.

        `recorded`: the claim already counts this first call (`Ledger.claim_to_send`)."""
        # A call may have reached the platform before: ask it first, whatever else happens.
        must_look = part.claim.attempted
        failures = 0
        sent = False  # whether this worker has called publish for the part yet
        waited = 0.0
        while True:
            try:
                if must_look:
                    must_look = False
                    looked = self._look_first(part, client, sent)
                    if looked is not None:
                        return looked
                if recorded:
                    recorded = False
                elif not self.ledger.record_attempt(
                    part.key, self.worker, part.message.text, self.now(), self.lease
                ):
                    return Result(part.job, "deferred", error="claim taken over by another worker")
                part.attempted = part.message
                sent = True
                with keeping(self._renewer(part.key), self.renew_every, self.call_deadline):
                    published = client.publish(part.message)
            except AuthFailed as exc:
                return self._refused(part, exc)
            except Rejected as exc:
                return self._rejected(part, client, exc, failures)
            except (Transient, RateLimited) as exc:
                failures += 1
                must_look = must_look or isinstance(exc, Transient)  # the write may have been applied
                retry_after = exc.retry_after if isinstance(exc, RateLimited) else None
                delay = self.policy.delay(failures, retry_after)
                if self.policy.gives_up(failures, waited, delay):
                    return self._give_up(part, client, exc, failures, must_look)
                waited += delay
                halted = self._wait_to_retry(part, exc, failures, delay)
                if halted is not None:
                    return halted
            except PlatformError as exc:  # the tree is closed; this is a bug in an adapter
                self.ledger.fail_delivery(part.key, str(exc), self.now(), worker=self.worker)
                return Result(part.job, "failed", error=str(exc))
            except Exception as exc:  # a bug (an adapter let a ValueError out): never leave the claim held
                error = f"internal error: {type(exc).__name__}"
                log.exception(
                    "failed %s: %s", part.label, error, extra=_event("failed", part.job, error=error)
                )
                self.ledger.fail_delivery(part.key, error, self.now(), worker=self.worker)
                return Result(part.job, "failed", error=error)
            else:
                self._confirm_part(part, published)
                log.info(
                    "posted %s %s", part.label, published.url, extra=_event("posted", part.job, published.url)
                )
                return published, True

    def _look_first(
        self, part: _Part, client: PlatformClient, sent: bool
    ) -> tuple[Published, bool] | Result | None:
        """Before sending again: the copy an earlier call left, a wait while a dead worker's call
        may still land, or None to send."""
        found = self._own_copy(part.key, client.find_published(part.attempted, since=part.claim.claimed_at))
        if found is not None:
            return self._reconciled(part, found)
        # Until this worker sends, the dead worker's call is the only one that may land; a look
        # that failed (a dropped connection) is no reason to stop waiting for it.
        landing = self._may_still_land(part.claim) if not sent else None
        if landing is None:
            return None
        # The call of a worker that died mid-call, not on the platform yet, may still be in the
        # server, which applies it even though nobody reads the answer: sending now could make
        # two copies where the platform has no idempotency key (X, GoToSocial). Look again once
        # it could have landed.
        self.ledger.renew_delivery(part.key, self.worker, self.now(), landing - self.now())
        why = f"an interrupted call may still land until {landing.isoformat(timespec='seconds')}"
        log.info("waiting %s: %s", part.label, why, extra=_event("deferred", part.job, error=why))
        return Result(part.job, "deferred", error=why)

    def _refused(self, part: _Part, exc: AuthFailed) -> Result:
        """The account cannot post (a revoked token, a read-only X app): the delivery is held, a
        released claim sent once a probe finds the account healthy, never failed (nothing spent)."""
        self.mark_unhealthy(part.job, str(exc))
        log.error(
            "held %s: authentication refused: %s",
            part.label,
            exc,
            extra=_event("held", part.job, error=str(exc)),
        )
        self._release(part.key)
        return Result(part.job, "deferred", error=f"held: authentication refused: {exc}")

    def _rejected(
        self, part: _Part, client: PlatformClient, exc: Rejected, failures: int
    ) -> tuple[Published, bool] | Result:
        if failures or part.claim.attempted or isinstance(exc, Duplicate):
            # An earlier call may have landed (X answers a repeat with a 403 "duplicate
            # content"): a rejection is a reason to look, not proof.
            found = self._look_quietly(part.key, client, part.attempted, part.claim.claimed_at)
            if found is not None:
                return self._reconciled(part, found)
        log.error("rejected %s: %s", part.label, exc, extra=_event("rejected", part.job, error=str(exc)))
        self.ledger.fail_delivery(part.key, str(exc), self.now(), worker=self.worker)
        self.alert("rejected", f"{part.label} rejected by {part.job.platform}: {exc}")
        return Result(part.job, "failed", error=f"rejected: {exc}")

    def _give_up(
        self, part: _Part, client: PlatformClient, exc: PlatformError, failures: int, must_look: bool
    ) -> tuple[Published, bool] | Result:
        # The last call may have landed (a 503 after the write, a lost answer): one last look,
        # so the ledger does not call failed a post that is out there.
        found = (
            self._look_quietly(part.key, client, part.attempted, part.claim.claimed_at) if must_look else None
        )
        if found is not None:
            return self._reconciled(part, found)
        error = f"gave up after {failures} attempts: {exc}"
        log.error("failed %s: %s", part.label, error, extra=_event("failed", part.job, error=error))
        self.ledger.fail_delivery(part.key, error, self.now(), worker=self.worker)
        return Result(part.job, "failed", error=error)

    def _wait_to_retry(self, part: _Part, exc: PlatformError, failures: int, delay: float) -> Result | None:
        """Wait out `delay` holding the claim; a Result when a pause or a stop cuts the wait short."""
        log.warning(
            "retry %s in %.0fs (attempt %d): %s",
            part.label,
            delay,
            failures,
            exc,
            extra=_event("retry", part.job, error=str(exc)),
        )
        self.ledger.renew_delivery(part.key, self.worker, self.now(), self.lease + timedelta(seconds=delay))
        if self.gate.wait(delay):
            return None
        reason = self.gate.halted() or "stopping"
        self._release(part.key)
        log.info("deferred %s: %s", part.label, reason, extra=_event("deferred", part.job, error=reason))
        return Result(part.job, "deferred", error=reason)

    def _reconciled(self, part: _Part, found: Published) -> tuple[Published, bool]:
        log.info(
            "reconciled %s: already posted %s",
            part.label,
            found.url,
            extra=_event("reconciled", part.job, found.url),
        )
        self._confirm_part(part, found)
        return found, True

    def _confirm_part(self, part: _Part, published: Published) -> None:
        # Claim the next part before confirming this one: a crash in between then leaves a
        # claim to recover, never a thread that silently stops halfway.
        if part.index + 1 < len(part.job.parts):
            next_key = part.job.key(part.index + 1)
            following = self._claim(next_key)
            if following is not None:
                part.held[next_key] = following
        self._confirm(part.key, published)

    def _claim(self, key: DeliveryKey) -> Delivery | None:
        return self.ledger.claim_delivery(
            key,
            self.worker,
            self.now(),
            self.lease,
            lambda: make_tid(self.now()),
            retry_failed=self.retry_failed,
        )

    def _renewer(self, key: DeliveryKey) -> Callable[[], bool]:
        """The claim's renewal while a publish runs (`bot.delivery.keeper`: one thread for all)."""
        return lambda: self.ledger.renew_delivery(key, self.worker, self.now(), self.lease)

    def _may_still_land(self, claim: Delivery) -> datetime | None:
        """Until when a dead worker's last call may still reach the platform, if that is ahead.

        Only a claim taken from a worker that died mid-call (`INTERRUPTED`): a claim given back
        cleanly (a pause, a stop) or failed had its call answered, or timed out, first.
        """
        if claim.last_error != INTERRUPTED or claim.attempted_at is None:
            return None
        landing = claim.attempted_at + CALL_IN_FLIGHT
        return landing if landing > self.now() else None

    def _not_ours(self, job: Job, key: DeliveryKey) -> tuple[Published, bool] | Result:
        """The claim was refused: the part is done, failed before, or another worker holds it."""
        row = self.ledger.get_delivery(key)
        if row is not None and row.state in ("posted", "retracted") and row.remote_id:
            return Published(row.remote_id, row.url or "", row.remote_cid), False
        if row is not None and row.state == "failed":
            return Result(job, "failed", error=row.last_error or "failed earlier")
        return Result(job, "deferred", error="in progress in another worker")

    def _look_quietly(
        self, key: DeliveryKey, client: PlatformClient, message: Outgoing, since: datetime
    ) -> Published | None:
        try:
            return self._own_copy(key, client.find_published(message, since=since))
        except PlatformError as exc:
            log.warning("lookup failed on %s/%s: %s", client.platform, client.account, exc)
            return None

    def _own_copy(self, key: DeliveryKey, found: Published | None) -> Published | None:
        """`found`, unless the ledger has it as another post's copy (the same text twice): adopting
        it would report this post sent, and a retract of this one would delete the other."""
        if found is None:
            return None
        owner = self.ledger.owner_of(key.platform, key.account, found.id)
        if owner is None or owner == key:
            return found
        log.warning(
            "%s/%s %s/%s: the copy found is %s/%s's (the same text), not this post's",
            key.platform,
            key.account,
            key.queue,
            key.post_id,
            owner.queue,
            owner.post_id,
        )
        return None

    def _confirm(self, key: DeliveryKey, published: Published) -> None:
        self.ledger.confirm_delivery(key, published.id, published.url, self.now(), cid=published.cid)

    def _release(self, key: DeliveryKey) -> None:
        """Leave the claim unconfirmed for the next claimer, who will reconcile it first."""
        self.ledger.renew_delivery(key, self.worker, self.now(), timedelta(0))

    def mark_unhealthy(self, job: Job, error: str) -> None:
        was_healthy = all(
            h.healthy
            for h in self.ledger.shared.account_health()
            if (h.platform, h.account) == (job.platform, job.account)
        )
        self.ledger.shared.set_account_health(
            job.platform, job.account, healthy=False, error=error, now=self.now()
        )
        if was_healthy:
            log.error(
                "ACCOUNT UNHEALTHY %s: credentials refused (%s); its posts are held until a probe succeeds",
                job.target,
                error,
            )
            self.alert("account_unhealthy", f"{job.target}: credentials refused, posts held: {error}")


def _event(kind: str, job: Job, url: str | None = None, error: str | None = None) -> dict[str, object]:
    """Fields for JSON log lines (ignored by the text format, whose message says it all)."""
    fields: dict[str, object] = {"event": kind, "target": job.target, "queue": job.queue, "post": job.post_id}
    if url is not None:
        fields["url"] = url
    if error is not None:
        fields["error"] = error
    return fields


def expire_dead_workers(
    ledger: Ledger, now: datetime, *, died: Callable[[str], bool] = died_here
) -> list[str]:
    """End the claims of workers whose process is gone from this host, so they are reconciled at once.

    `died` decides (`bot.ledger.workers.died_here`: same host and pid namespace, pid gone or a zombie).
    A worker on another host, or a pid perhaps reused by another program, is left alone: its
    claims wait out their lease. Whoever takes an expired claim reconciles it before sending.
    """
    expired = []
    for worker in ledger.claim_holders():
        if died(worker) and ledger.expire_claims(worker, now):
            log.warning("worker %s is gone: its claims are resumed now", worker)
            expired.append(worker)
    return expired


ClientFactory = Callable[[str, str], PlatformClient]  # (platform, account) -> client


def fan_out(courier: Courier, jobs: Sequence[Job], client_for: ClientFactory) -> list[Result]:
    """Deliver every job at once, one thread each, so one slow or dead platform delays no other.

    Each adapter call carries its own timeout (given when the client was opened), so every
    thread ends within the retry bound. Results come back in the order of `jobs`.
    """
    if not jobs:
        return []

    def run(job: Job) -> Result:
        try:
            client = client_for(job.platform, job.account)
        except AuthFailed as exc:
            courier.mark_unhealthy(job, str(exc))
            return Result(job, "deferred", error=f"held: authentication refused: {exc}")
        except PlatformError as exc:
            return Result(job, "deferred", error=f"cannot reach {job.platform}: {exc}")
        return courier.deliver(job, client)

    with ThreadPoolExecutor(max_workers=len(jobs), thread_name_prefix="deliver") as pool:
        return list(pool.map(run, jobs))
