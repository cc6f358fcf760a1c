"""Monitoring: poll each stream when due, classify what is new, report it once, amplify allies.

Each stream (`bot.monitoring.streams`: one thing polled with one cursor) is polled by one worker at a
time (a ledger lease: several daemons may share a PostgreSQL database), at its pace
(`bot.monitoring.pacing`), from its cursor in the ledger (so a restart neither repeats nor skips; the
first poll looks back `monitor.backfill`). The cursor row also keeps when the stream may poll
next, so a restart does not spend X's one search per 15 minutes twice. Each platform is polled
in its own thread: one platform's trouble never delays another. What a poll finds is
classified (`bot.monitoring.classification`), deduplicated by the ledger (a post seen by two streams or
two workers is reported once), logged, written to the mentions log, and amplified when an ally
posted it.

Where a Mastodon instance offers streaming, the worker polling a tag's timeline also holds
the tag's live stream open (`bot.monitoring.livestreams`): streamed posts go through the same reporting
at once, and the poll slows down to a fallback.

The daemon builds one `DaemonMonitor` and runs a pass on every tick; `Monitor.run_pass` does the work.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import Engine
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, SQLAlchemyError, StatementError

from bot.campaign.model import Config, Platform
from bot.errors import PlatformError, RateLimited, Transient
from bot.escaping import log_field
from bot.ledger.leases import Leases
from bot.ledger.mentions import MentionRecord, MonitorStore
from bot.ledger.ourposts import OurPosts
from bot.ledger.workers import new_worker_id
from bot.monitoring.amplification import Amplifier
from bot.monitoring.classification import Ours, Sighting, Thread, classify, normalize_handle
from bot.monitoring.livestreams import LiveStreams, streams_live
from bot.monitoring.mentionlog import MentionsLog, record_of
from bot.monitoring.pacing import MAX_PAGES_PER_POLL, RequestWindow, backoff
from bot.monitoring.retention import enforce_retention, ignored_handles
from bot.monitoring.streams import Stream, StreamState, plan_streams
from bot.platforms import MALFORMED, Batch, Mention, PlatformClient

log = logging.getLogger("bot.monitor")

Clock = Callable[[], datetime]
ClientFor = Callable[[str, str], PlatformClient]

# A stream's lease outlives a few daemon ticks, so the worker polling it keeps it; a worker that
# dies hands it on after this long.
STREAM_LEASE = timedelta(minutes=5)
PURGE_EVERY = timedelta(hours=1)
# X recent search covers the last 7 days: older conversations cannot be searched.
X_RECENT = timedelta(days=7)


@dataclass
class Fetched:
    """One stream's poll: what it read and the state to store once that is reported."""

    stream: Stream
    posts: list[Mention]
    state: StreamState


class Monitor:
    """Monitoring for one process. Thread-safe: `run_pass` may be called from any thread."""

    def __init__(
        self,
        *,
        config: Config,
        store: MonitorStore,
        posts: OurPosts,
        clients: ClientFor,
        now: Clock,
        worker: str,
        mentions_log: MentionsLog | None = None,
        live_streams: bool = False,
    ) -> None:
        """`live_streams`: hold Mastodon's hashtag streams open (the daemon does; tests of the
        polls alone leave them closed, so that each pass returns everything new)."""
        self.store = store
        self.leases = Leases(store.engine)
        self.posts = posts
        self.clients = clients
        self.now = now
        self.worker = worker
        self._lock = threading.Lock()
        self._windows: dict[str, RequestWindow] = {}
        self._identities: dict[tuple[str, str], str] = {}
        self._running: dict[str, Future[list[Sighting]]] = {}
        self._leases: set[str] = set()
        self._pool = ThreadPoolExecutor(max_workers=3, thread_name_prefix="monitor")
        self._last_purge: datetime | None = None
        self._ignored_purged: frozenset[str] | None = None  # the ignore list last enforced
        # Posts a pass could not read or store, each skipped alone (logged, never blocking a stream).
        self.skipped = 0
        # Polls and live streams report from several threads: one at a time keeps the log in order.
        self._reporting = threading.Lock()
        self.live = LiveStreams(self._report_streamed) if live_streams else None
        self.config = config
        self.streams = plan_streams(config)
        self.mentions_log = mentions_log or MentionsLog(
            config.logging.mentions_log, config.monitor.retention_days
        )
        self.amplifier = Amplifier(config.amplify, store, now)

    def reconfigure(self, config: Config) -> None:
        """Take a reloaded config: streams, pace, hashtags, ignore list, allies."""
        with self._lock:
            self.config = config
            self.streams = plan_streams(config)
            self.mentions_log = MentionsLog(config.logging.mentions_log, config.monitor.retention_days)
            self.amplifier = Amplifier(config.amplify, self.store, self.now)
            self._identities.clear()
        if self.live is not None:
            self.live.drop_all()  # reopened by the next pass, with the new accounts and tags

    def close_live_streams(self) -> None:
        """Close the live streams for good (a stop): never waits on the network. Idempotent."""
        if self.live is not None:
            self.live.close()

    def close(self) -> None:
        """Let passes in flight end, then hand every stream lease on (a clean stop). Idempotent."""
        self.close_live_streams()
        self._pool.shutdown(wait=True)
        for lease in sorted(self._leases):
            self.leases.release_lease(lease, self.worker)
        self._leases.clear()

    # -- passes ---------------------------------------------------------------------------

    def run_pass(self, wait: bool = True) -> list[Sighting]:
        """Poll every due stream, each platform in its own thread; return what was new.

        With `wait=False` (the daemon's ticks) a platform still busy with its last pass is
        left to finish, and the others go on: one slow platform delays no other.
        """
        self.purge_expired()
        with self._lock:
            by_platform: dict[Platform, list[Stream]] = {}
            for stream in self.streams:
                by_platform.setdefault(stream.platform, []).append(stream)
            futures = []
            for platform, streams in by_platform.items():
                running = self._running.get(platform)
                if running is not None and not running.done():
                    continue
                future = self._pool.submit(self.poll_platform, platform, streams)
                self._running[platform] = future
                futures.append(future)
        if not wait:
            return []
        return [s for f in futures for s in f.result()]

    def poll_platform(self, platform: Platform, streams: Sequence[Stream]) -> list[Sighting]:
        """Poll the platform's due streams, then report what they found, oldest first."""
        try:
            ours = self.ours(platform)
            fetched = [f for f in (self.fetch(stream) for stream in streams) if f is not None]
            new = self.report(platform, fetched, ours)
            for item in fetched:
                self.store.set_cursor(item.stream.key, item.state.dump(), self.now())
            return new
        except Exception:  # a bug in one platform's pass must not stop the others or the daemon
            log.exception("monitoring %s failed", platform)
            return []

    def ours(self, platform: Platform) -> Ours:
        """Our accounts' identities (asked once per account), tags and ignore list."""
        identities: dict[str, str] = {}
        for account in self.config.accounts(platform):
            key = (platform, account.name)
            if key not in self._identities:
                try:
                    self._identities[key] = self.clients(platform, account.name).identity()
                except PlatformError as exc:
                    log.warning(
                        "monitor %s/%s: cannot tell this account's identity: %s", platform, account.name, exc
                    )
                    continue
            identities[self._identities[key]] = account.name
        return Ours.build(identities, self.config.hashtags, self.config.monitor.ignore)

    # -- one stream -----------------------------------------------------------------------

    def fetch(self, stream: Stream) -> Fetched | None:
        """Read the stream from its cursor, page after page while the budget allows.

        None when the stream is not due or another worker holds it. A failure keeps what the
        pages before it returned and backs the stream off.
        """
        lease = f"monitor:{stream.key}"
        if not self.leases.acquire_lease(lease, self.worker, STREAM_LEASE):
            self._leases.discard(lease)
            if self.live is not None:
                self.live.drop(stream.key)  # the live stream goes with the lease
            return None
        self._leases.add(lease)
        now = self.now()
        state = StreamState.load(self.store.get_cursor(stream.key))
        due = state.next_at
        if self.live is not None and streams_live(stream):
            try:
                self.live.keep_open(stream, self.clients(stream.platform, stream.account), now)
            except PlatformError as exc:
                log.warning("monitor %s: no client for the live stream: %s", stream.key, exc)
            due = self.live.poll_due_at(stream, state)
        if due is not None and now < due:
            return None
        if self.live is not None:
            self.live.polling(stream)
        window = self._windows.setdefault(stream.key, RequestWindow(stream.budget))
        start = now - self.config.monitor.backfill
        conversations = self._conversations(stream, now)
        posts: list[Mention] = []
        cursor = state.cursor
        error: PlatformError | None = None
        try:
            client = self.clients(stream.platform, stream.account)
            for _ in range(MAX_PAGES_PER_POLL):
                if not window.take(self.now()):
                    break  # the rest of a long gap waits for the next poll
                batch = self._read(client, stream, cursor, start, conversations)
                posts.extend(batch.posts)
                self._skip(stream.key, batch.skipped)
                cursor = batch.cursor
                if not batch.more:
                    break
                self.leases.acquire_lease(lease, self.worker, STREAM_LEASE)
        except PlatformError as exc:
            error = exc
        except MALFORMED as exc:  # an answer the adapter could not read: as a server error
            error = Transient(f"{stream.platform}: malformed answer ({type(exc).__name__})")
        finished = self.now()
        if error is None:
            return Fetched(stream, posts, StreamState(cursor, finished + stream.interval, 0))
        failures = state.failures + 1
        retry_after = error.retry_after if isinstance(error, RateLimited) else None
        delay = backoff(stream.interval, failures, retry_after)
        log.warning(
            "monitor %s (%s): %s; next poll in %ds", stream.key, stream.account, error, delay.total_seconds()
        )
        return Fetched(stream, posts, StreamState(cursor, finished + delay, failures))

    def _conversations(self, stream: Stream, now: datetime) -> list[str]:
        if stream.platform != "x" or stream.kind != "hashtags":
            return []
        return self.posts.recent_roots("x", now - X_RECENT)

    @staticmethod
    def _read(
        client: PlatformClient, stream: Stream, cursor: str | None, start: datetime, conversations: list[str]
    ) -> Batch:
        if stream.kind == "hashtags":
            return client.read_hashtags(stream.tags, cursor, start, conversations)
        return client.read_notifications(cursor, start)

    # -- reporting ------------------------------------------------------------------------

    def _report_streamed(self, stream: Stream, post: Mention) -> None:
        """A post from a live stream (Mastodon.py's thread): reported as a poll would report it."""
        try:
            self.report(stream.platform, [Fetched(stream, [post], StreamState())], self.ours(stream.platform))
        except Exception:  # the stream thread must live on; the next poll reads the post again
            log.exception("monitor %s: reporting a streamed post failed", stream.key)

    def report(self, platform: Platform, fetched: Iterable[Fetched], ours: Ours) -> list[Sighting]:
        """Classify, store (the ledger says which are new), log, write and amplify, oldest first."""
        with self._reporting:
            return self._report(platform, fetched, ours)

    def _report(self, platform: Platform, fetched: Iterable[Fetched], ours: Ours) -> list[Sighting]:
        seen_at = self.now()
        found: dict[str, tuple[Mention, Stream]] = {}
        for item in fetched:
            for post in item.posts:
                if post.created_at is None:  # no usable time from the network: the time we saw it
                    post = dataclasses.replace(post, created_at=seen_at)
                found.setdefault(post.id, (post, item.stream))
        if not found:
            return []
        lookup = set(found) | {p.in_reply_to for p, _ in found.values() if p.in_reply_to}
        answered = self.posts.find(platform, lookup)
        sightings: list[tuple[Sighting, Stream]] = []
        in_order = sorted(found.values(), key=lambda pair: (pair[0].created_at or seen_at, pair[0].id))
        # Replies to us already reported that a post here answers: a self-reply thread goes on.
        parents = {
            p.in_reply_to for p, _ in found.values() if p.in_reply_to and p.in_reply_to not in answered
        }
        threads = {
            remote_id: Thread(normalize_handle(r.author), r.account, r.in_reply_to)
            for remote_id, r in self.store.replies(platform, parents).items()
        }
        for post, stream in in_order:
            if post.id in answered:
                continue  # one of our own posts, whatever its author field says
            polled_by = stream.account if stream.kind == "notifications" else None
            try:
                sighting = classify(post, platform, ours, answered, polled_by, threads)
            except MALFORMED as exc:
                self._skip(f"{platform} {post.id}", 1, exc)
                continue
            if sighting is not None:
                sightings.append((sighting, stream))
                if sighting.kind == "reply":  # its own next part may come in this same batch
                    threads[post.id] = Thread(
                        normalize_handle(post.author), sighting.account, sighting.in_reply_to
                    )
        stored = self._store([_stored(s, seen_at) for s, _ in sightings], platform)
        is_new = {m.remote_id for m in stored}
        new = [(s, stream) for s, stream in sightings if s.post.id in is_new]
        for sighting, _ in new:
            # Never the author's words here: this log has no retention (the mentions log has).
            edited = " (edited)" if sighting.post.edited else ""
            log.info("%s %s %s%s", sighting.kind, sighting.platform, log_field(sighting.post.url), edited)
        try:
            self.mentions_log.write([record_of(s, seen_at) for s, _ in new])
        except OSError as exc:
            log.error("mentions log %s: %s", self.mentions_log.path, exc)
        for sighting, stream in new:
            self.amplifier.amplify([sighting], self.clients(platform, stream.account))
        return [s for s, _ in new]

    def _store(self, records: list[MentionRecord], platform: Platform) -> list[MentionRecord]:
        """Store the batch in one transaction; should the database refuse it, post by post, so
        that one post it cannot hold is skipped alone instead of failing every pass after."""
        try:
            return self.store.record_mentions(records)
        except (SQLAlchemyError, *MALFORMED) as exc:
            if not _a_posts_fault(exc):
                raise  # the database is away, busy or broken: the pass fails and is read again
        stored = []
        for record in records:  # find which post it was
            try:
                stored += self.store.record_mentions([record])
            except (SQLAlchemyError, *MALFORMED) as exc:
                if not _a_posts_fault(exc):
                    raise
                self._skip(f"{platform} {record.remote_id}", 1, exc)
        return stored

    def _skip(self, where: str, count: int, exc: BaseException | None = None) -> None:
        if not count:
            return
        with self._lock:
            self.skipped += count
        # The error's type only: its text may quote the post or the statement's values.
        reason = f" ({type(exc).__name__})" if exc is not None else ""
        log.warning("monitor %s: skipped %d post(s) that could not be read or stored%s", where, count, reason)

    def purge_expired(self) -> None:
        """Forget other people's posts after `retention_days` (docs/monitoring.md), at most hourly,
        and those by handles newly in `monitor.ignore`."""
        now = self.now()
        ignored = ignored_handles(self.config)
        if (
            self._last_purge is not None
            and now - self._last_purge < PURGE_EVERY
            and ignored == self._ignored_purged
        ):
            return
        self._last_purge = now
        enforce_retention(
            self.config, self.store, self.mentions_log, now, ignored=ignored != self._ignored_purged
        )
        self._ignored_purged = ignored


def _a_posts_fault(exc: BaseException) -> bool:
    """A value the database refuses (a NUL, a date out of range), not a database that cannot work."""
    if isinstance(exc, (DataError, IntegrityError, *MALFORMED)):
        return True
    return isinstance(exc, StatementError) and not isinstance(exc, DBAPIError)  # failed binding a value


def _stored(sighting: Sighting, seen_at: datetime) -> MentionRecord:
    post = sighting.post
    return MentionRecord(
        platform=sighting.platform,
        remote_id=post.id,
        kind=sighting.kind,
        account=sighting.account,
        url=post.url,
        author=post.author,
        text=post.text,
        hashtags=sighting.hashtags,
        in_reply_to=sighting.in_reply_to,
        created_at=post.created_at,
        seen_at=seen_at,
    )


# -- the daemon's entry points ----------------------------------------------------------------


class _Ledger(Protocol):
    @property
    def engine(self) -> Engine: ...


class Host(Protocol):
    """What monitoring takes from the daemon's runtime (`bot.daemon.runtime.Runtime`)."""

    @property
    def config(self) -> Config: ...
    @property
    def now(self) -> Clock: ...
    @property
    def clients(self) -> ClientFor: ...
    @property
    def ledger(self) -> _Ledger: ...


def open_monitor(runtime: Host, worker: str | None = None) -> Monitor:
    """The monitoring of `runtime`'s config, ledger and clients."""
    engine = runtime.ledger.engine
    return Monitor(
        config=runtime.config,
        store=MonitorStore(engine),
        posts=OurPosts(engine),
        clients=runtime.clients,
        now=runtime.now,
        worker=worker or new_worker_id(),
        live_streams=True,
    )


class DaemonMonitor:
    """The daemon's monitoring: one Monitor for the process, opened at the first pass.

    Cheap when nothing is due. It follows the runtime's config when that is reloaded. The run
    command hands it to the daemon and closes it itself.
    """

    def __init__(self, runtime: Host) -> None:
        self.runtime = runtime
        self._monitor: Monitor | None = None
        self._lock = threading.Lock()

    def __call__(self, wait: bool = True) -> list[Sighting]:
        """One pass over every due stream. A daemon tick passes `wait=False`, so a platform
        still busy from the last pass delays nothing."""
        with self._lock:
            if self._monitor is None:
                self._monitor = open_monitor(self.runtime)
            monitor = self._monitor
        if monitor.config is not self.runtime.config:
            monitor.reconfigure(self.runtime.config)
        return monitor.run_pass(wait=wait)

    def close_live_streams(self) -> None:
        """Close the live streams now, before the clients and ledger they report through.
        Never waits on the network, so SIGTERM's bound holds."""
        if self._monitor is not None:
            self._monitor.close_live_streams()

    def close(self) -> None:
        """A clean stop: passes in flight end and the stream leases pass on at once, so the next
        process (a restart) need not wait for them to run out."""
        if self._monitor is not None:
            self._monitor.close()
