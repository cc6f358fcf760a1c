"""What every posting command opens: the config, the queues, the ledger, the platform clients.

`post`, `retract`, `status`, `pause` and `run` all start here, so they read one config the same
way and share one way of opening clients (with the Bluesky session kept in the ledger).
Content is kept per file: a file that stops loading keeps its last good version (live edits,
docs/design.md), and `reload()` says what changed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bot.campaign.config import load_config
from bot.campaign.model import Account, Config, Queue
from bot.campaign.queues import clash_order, content_folder_problem, name_clash
from bot.daemon.alerts import Alerter
from bot.errors import InputError, Problem, Transient
from bot.ledger.deliveries import Ledger, open_ledger
from bot.ledger.ratebudgets import BudgetRecorder
from bot.planning.content import load_queue
from bot.platforms import PlatformClient, open_client
from bot.platforms.weblinks import LocalLinks, local_site

log = logging.getLogger("bot.runtime")

Clock = Callable[[], datetime]

# Each HTTP call's own bound: well inside Heroku's 30 s between SIGTERM and SIGKILL, so a call
# in flight at shutdown ends (or times out, to be reconciled) before the process is killed.
CALL_TIMEOUT = 20.0


def utc_now() -> datetime:
    return datetime.now(UTC)


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime_ns / 1e9
    except OSError:
        return None


@dataclass
class Contents:
    """The queues by file, each the last version that loaded without an error."""

    by_file: dict[Path, Queue] = field(default_factory=dict)
    mtimes: dict[Path, float | None] = field(default_factory=dict)

    def queues(self) -> list[Queue]:
        return sorted(self.by_file.values(), key=lambda q: q.name)

    def queue(self, name: str) -> Queue | None:
        return next((q for q in self.by_file.values() if q.name == name), None)


class Clients:
    """One client per account, opened on first use; dropped when the config changes."""

    def __init__(
        self,
        config: Config,
        ledger: Ledger,
        now: Clock,
        budgets: BudgetRecorder | None = None,
        **options: object,
    ) -> None:
        self.config = config
        self.ledger = ledger
        self.now = now
        self.budgets = budgets
        self.options = options
        self._clients: dict[tuple[str, str], PlatformClient] = {}
        self._retired: list[PlatformClient] = []
        self._lock = threading.Lock()

    def account(self, platform: str, name: str) -> Account:
        for account in self.config.accounts(platform):  # type: ignore[arg-type]
            if account.name == name:
                return account
        raise KeyError(f"no account {platform}/{name} in the config")

    def __call__(self, platform: str, name: str) -> PlatformClient:
        with self._lock:
            client = self._clients.get((platform, name))
            if client is None:
                client = self._open(self.account(platform, name))
                self._clients[(platform, name)] = client
            return client

    def drop(self, platform: str | None = None, name: str | None = None) -> None:
        """Forget clients (all, or one account's): the next call opens a fresh one.

        A dropped client may still be in use by a delivery thread, so it is closed only at exit.
        """
        with self._lock:
            for key in list(self._clients):
                if platform is None or key == (platform, name):
                    self._retired.append(self._clients.pop(key))

    def close(self) -> None:
        self.drop()
        with self._lock:
            retired, self._retired = self._retired, []
        for client in retired:
            client.close()

    def _open(self, account: Account) -> PlatformClient:
        ledger, platform, name = self.ledger, account.platform, account.name
        client = open_client(
            account,
            timeout=CALL_TIMEOUT,
            now=self.now,
            content_dir=self.config.content_dir,
            load_session=lambda: ledger.shared.load_session(platform, name),
            save_session=lambda blob: ledger.shared.save_session(platform, name, blob, self.now()),
            on_budget=self.budgets.sink(platform, name) if self.budgets is not None else None,
            **self.options,
        )
        site = local_site(platform, account.base_url)  # the sandbox: links to the emulator's posts
        return client if site is None else LocalLinks(client, site)


def stoppable_sleep(stop: threading.Event) -> Callable[[float], None]:
    """A sleep that a stop cuts short: it then raises Transient, so the call gives up its wait
    (and its claim) within the stop's bound instead of sleeping through it."""

    def sleep(seconds: float) -> None:
        if stop.wait(seconds):
            raise Transient("stopping: the wait was cut short")

    return sleep


class Runtime:
    """The config, the content, the ledger, the clients and the alerts of one process."""

    def __init__(
        self,
        config_path: Path,
        environ: Mapping[str, str],
        *,
        now: Clock = utc_now,
        adjust: Callable[[Config], Config] = lambda config: config,
        ledger: Ledger | None = None,
        extra_queues: tuple[Queue, ...] = (),
        config_warnings: bool = True,
        content_warnings: bool = True,
        stop: threading.Event | None = None,
    ) -> None:
        self.config_path = config_path
        self.environ = environ
        self.now = now
        self._adjust = adjust
        self._extra_queues = extra_queues
        # A one-shot command (post, status...) leaves content warnings to `check` and the daemon.
        self._content_warnings = content_warnings
        config, warnings = load_config(config_path, environ)
        self.config_warnings = warnings
        for warning in warnings if config_warnings else ():
            log.warning("%s", warning)
        self.config = adjust(config)
        self._config_mtimes = self._config_files_mtimes()
        self.ledger = ledger or open_ledger(self.config.database_url)
        self.alert = Alerter(self.config.alerts_webhook, self.config.campaign, now=now)
        self.budgets = BudgetRecorder(self.ledger.engine, now)
        # A client that waits between calls (Instagram's container) stops waiting on a stop.
        waits = {"sleep": stoppable_sleep(stop)} if stop is not None else {}
        self.clients = Clients(self.config, self.ledger, now, self.budgets, **waits)
        self.contents = Contents()
        # Not logged at start: each command decides what an unreadable folder means (`run`
        # refuses, `status` warns, `pause` does not care).
        unreadable = self.content_problem()
        self._folder_trouble: str | None = str(unreadable) if unreadable else None
        # What the first load found: `status` exits 1 on an error in it.
        self.load_problems = self.reload_content(report=True)

    # --- content ---------------------------------------------------------------------------

    def queues(self) -> list[Queue]:
        return sorted([*self.contents.queues(), *self._extra_queues], key=lambda q: q.name)

    def queue(self, name: str) -> Queue | None:
        return next((q for q in self.queues() if q.name == name), None)

    def content_problem(self) -> Problem | None:
        """Why the content folder cannot be read, if it cannot (`run` refuses to start on it)."""
        return content_folder_problem(self.config)

    def _content_files(self) -> list[Path]:
        folder = self.config.content_dir
        return sorted(folder.glob("*.yaml")) if folder.is_dir() else []

    def reload_content(self, *, report: bool = False) -> list[Problem]:
        """Load every queue file whose mtime changed; a file with an error keeps its last good queue."""
        problems: list[Problem] = []
        trouble = self.content_problem()
        if trouble is not None:
            # A folder gone for a moment (a checkout swapping it) must not drop every queue:
            # the last good versions keep running, as for an invalid file.
            if str(trouble) != self._folder_trouble:
                log.error("%s", trouble)
            self._folder_trouble = str(trouble)
            return [trouble]
        self._folder_trouble = None
        files = self._content_files()
        for gone in set(self.contents.by_file) - set(files):
            log.info("queue file removed: %s", gone.name)
            del self.contents.by_file[gone]
            self.contents.mtimes.pop(gone, None)
        fresh: list[tuple[Path, Queue]] = []
        for path in files:
            mtime = _mtime(path)
            if path in self.contents.mtimes and self.contents.mtimes[path] == mtime:
                continue
            self.contents.mtimes[path] = mtime
            try:
                queue, found = load_queue(path, self.config)
            except Exception:  # a bug in reading one file must not stop the others, nor the tick
                log.exception("%s: could not be read", path.name)
                queue, found = None, [Problem(path.name, 1, "could not be read (see the log)")]
            problems.extend(found)
            for problem in found:
                if problem.severity == "error":
                    log.error("%s", problem)
                elif self._content_warnings:
                    log.warning("%s", problem)
            if queue is None or any(p.severity == "error" for p in found):
                self._keep_last_good(path)
            else:
                fresh.append((path, queue))
        # A name another file already runs under stays with that file (the edit is refused);
        # between files loaded together, `check`'s rule decides.
        for path, queue in sorted(fresh, key=lambda loaded: clash_order(loaded[1])):
            owner = next(
                (p for p, q in self.contents.by_file.items() if q.name == queue.name and p != path), None
            )
            if owner is not None:
                clash = name_clash(queue, owner)
                problems.append(clash)
                log.error("%s", clash)
                self._keep_last_good(path)
                continue
            known = path in self.contents.by_file
            self.contents.by_file[path] = queue
            if known and not report:
                log.info("reloaded %s (queue %s, %d posts)", path.name, queue.name, len(queue.posts))
        return problems

    def _keep_last_good(self, path: Path) -> None:
        if path in self.contents.by_file:
            log.error(
                "%s: keeping the last good version of queue %s", path.name, self.contents.by_file[path].name
            )

    # --- config ----------------------------------------------------------------------------

    def _config_files_mtimes(self) -> tuple[float | None, float | None]:
        return _mtime(self.config_path), _mtime(self.config_path.parent / ".env")

    def reload_config(self) -> bool:
        """Reload config.yaml (and .env) if changed; True when a new config took effect."""
        mtimes = self._config_files_mtimes()
        if mtimes == self._config_mtimes:
            return False
        self._config_mtimes = mtimes
        try:
            config, warnings = load_config(self.config_path, self.environ)
        except InputError as exc:
            for problem in exc.problems:
                log.error("%s", problem)
            log.error("%s: keeping the last good config", self.config_path.name)
            return False
        for warning in warnings:
            log.warning("%s", warning)
        self.config = self._adjust(config)
        self.clients.config = self.config
        self.clients.drop()
        # Rendering depends on the config (hashtags, platforms): every queue is read again.
        self.contents.mtimes.clear()
        log.info("reloaded %s", self.config_path.name)
        return True

    def close(self) -> None:
        self.clients.close()
        self.budgets.close()
        self.alert.close()
        self.ledger.close()
