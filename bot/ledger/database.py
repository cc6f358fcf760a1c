"""The database engine: one SQLAlchemy engine for SQLite or PostgreSQL, set up for several workers.

`connect(url)` accepts what config.yaml's `database` holds (docs/design.md, config.yaml):

    sqlite:///state/bot.sqlite3           a file (its folder and the file created owner-only)
    postgresql+psycopg://user@host/db     PostgreSQL through psycopg 3
    postgres://user:pw@host/db            as Heroku sets DATABASE_URL; read as the line above

Nothing here knows the tables; `bot.ledger.schema` creates them and `bot.ledger.deliveries` uses them.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, DateTime, Engine, Table, create_engine, event, select, text
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator

from bot.errors import DatabaseUnavailable

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql, sqlite

# How long a SQLite writer waits for another's lock before giving up. Claims and batches are
# short, so a wait this long only happens when something is badly wrong.
SQLITE_BUSY_TIMEOUT_S = 30.0

# Most bodies a shared SQLite transaction takes before it commits even with writers queued.
GROUP_COMMIT_MAX = 64


def normalise_url(url: str) -> URL:
    """Parse a database URL; `postgres://` and a bare `postgresql://` mean psycopg 3."""
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername not in ("sqlite", "sqlite+pysqlite", "postgresql+psycopg"):
        raise ValueError(
            f"unsupported database {parsed.drivername!r}: use sqlite:/// or postgresql+psycopg://"
        )
    return parsed


def database_exists(url: str) -> bool:
    """False for a SQLite file not created yet (a read-only command need not create it)."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() != "sqlite":
        return True
    return bool(parsed.database) and Path(parsed.database or "").exists()


def connect(url: str) -> Engine:
    """An engine for `url`, with the SQLite file prepared owner-only; no tables are touched."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _connect_sqlite(parsed)
    # pre_ping: a daemon lives for weeks and hosted PostgreSQL drops idle connections.
    # hide_parameters: a statement's values (a session's tokens) never enter an error's text.
    return create_engine(parsed, pool_pre_ping=True, pool_size=5, max_overflow=10, hide_parameters=True)


def _connect_sqlite(url: URL) -> Engine:
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        # An in-memory database lives in one connection, and pysqlite crashes when threads
        # share one; several workers could not share it either. A file in a temporary folder
        # costs the same in a test.
        raise ValueError("the ledger needs a SQLite file: sqlite:///path/to/bot.sqlite3")
    path = Path(database)
    _create_owner_only(path)
    engine = create_engine(
        url,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
        hide_parameters=True,  # a statement's values (a session's tokens) never enter an error's text
    )
    _WRITERS[engine] = _SharedWrites()

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # Take BEGIN out of pysqlite's hands (it would only begin before writes) so that we
        # choose the kind of transaction below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL: readers never block the writer; several processes share the file. Switching a
        # new file to WAL needs an exclusive lock that SQLite does not wait for (it answers
        # "database is locked" at once), so workers opening a new file at the same moment take
        # turns through an flock on the folder. Not on the file itself: closing any descriptor
        # of the database file drops every POSIX lock this process holds on it, SQLite's too.
        # Once the file is in WAL (it stays so), the pragma is a no-op.
        folder = os.open(path.absolute().parent, os.O_RDONLY)
        try:
            fcntl.flock(folder, fcntl.LOCK_EX)
            cursor.execute("PRAGMA journal_mode=WAL")
        finally:
            os.close(folder)  # releases the flock
        # FULL: a claim committed before a network call must survive a power cut too.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock at BEGIN, so a read-then-write transaction waits on
        # busy_timeout instead of failing with SQLITE_BUSY when another process wrote first.
        # Pure reads ask for a deferred BEGIN through the `ledger_read` execution option.
        read_only = conn.get_execution_options().get("ledger_read", False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def make_private_folders(folder: Path) -> None:
    """Create `folder` and its missing parents readable by the owner only; existing ones stay as they are."""
    missing = [p for p in reversed([folder, *folder.parents]) if not p.exists()]
    for created in missing:
        created.mkdir(mode=0o700, exist_ok=True)
        os.chmod(created, 0o700)  # mkdir's mode is filtered by the umask


def _create_owner_only(path: Path) -> None:
    """Create the database file and any missing folders readable by the owner only (docs/design.md).

    SQLite gives its -wal and -shm files the main file's mode, so they follow. Existing folders
    are left as they are: tightening someone's /tmp or home would be worse than the problem.
    """
    folder = path.absolute().parent
    try:
        make_private_folders(folder)
    except OSError as exc:
        raise DatabaseUnavailable(f"cannot create folder {folder}: {exc.strerror or exc}") from None
    if not path.exists():
        try:
            fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        except OSError as exc:
            raise DatabaseUnavailable(f"cannot create {path}: {exc.strerror or exc}") from None
        os.close(fd)
        os.chmod(path, 0o600)


def describe_database_error(exc: Exception) -> str:
    """A database failure in one line without secrets: the driver's own words (host, port, reason)
    when it could not connect, else the error's type alone, as a failed statement's text may
    quote its values (a session blob). Never the URL with its password."""
    from sqlalchemy.exc import InterfaceError, OperationalError

    if isinstance(exc, DatabaseUnavailable | ValueError):
        return str(exc)
    reason = type(getattr(exc, "orig", None) or exc).__name__
    if isinstance(exc, OperationalError | InterfaceError):
        reason = (str(getattr(exc, "orig", None) or "").strip().splitlines() or [reason])[0]
    return reason


def shown_url(url: str) -> str:
    """`url` as a message may show it: the password replaced by ***."""
    return make_url(url).render_as_string(hide_password=True)


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on both engines.

    SQLite has no time zones: it stores naive UTC text that sorts in time order. PostgreSQL
    stores timestamptz and psycopg hands back the session's zone, converted here to UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("the ledger takes aware datetimes only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class DatabaseClock(FunctionElement[datetime]):
    """The database server's clock in SQL, plus `seconds` (a bound parameter) when given.

    Every worker sharing the database reads the same clock here, whatever its own says: lease
    and claim expiries are set and compared with this, never with a worker's time (a worker whose
    clock runs fast would take over a claim still held). SQLite: `'now'` (one value per statement,
    milliseconds) in the stored text format of `UtcDateTime`, so it compares with stored times as
    text. PostgreSQL: `clock_timestamp()`, the moment the row is looked at, not `now()`, which is
    when the transaction began (before any wait for a row lock).
    """

    type = UtcDateTime()
    inherit_cache = True


@compiles(DatabaseClock, "sqlite")
def _sqlite_clock(element: DatabaseClock, compiler: SQLCompiler, **kw: Any) -> str:
    arguments = ["'%Y-%m-%d %H:%M:%f'", "'now'"]
    arguments += [f"{compiler.process(arg, **kw)} || ' seconds'" for arg in element.clauses]
    # %f gives milliseconds; UtcDateTime stores microseconds (six digits): text order is time order.
    return f"(strftime({', '.join(arguments)}) || '000')"


@compiles(DatabaseClock, "postgresql")
def _postgresql_clock(element: DatabaseClock, compiler: SQLCompiler, **kw: Any) -> str:
    offset = "".join(f" + make_interval(secs => {compiler.process(arg, **kw)})" for arg in element.clauses)
    return f"(clock_timestamp(){offset})"


def database_now(engine: Engine) -> datetime:
    """The database server's clock (UTC): the one clock every worker sharing it can read."""
    with reading(engine) as conn:
        moment: datetime = conn.execute(select(DatabaseClock())).scalar_one()
        return moment


def one_writer_at_a_time(conn: Connection, name: str) -> None:
    """Within a write transaction, decisions named `name` are made one at a time: on PostgreSQL a
    transaction-level advisory lock (a signed 64-bit number from the name); SQLite's `BEGIN
    IMMEDIATE` already admits one writer."""
    if conn.dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A transaction that may write; on SQLite it holds the write lock from its first statement.

    It returns once its writes are committed (and, on SQLite, synced), as if it had been its own
    transaction; on SQLite several threads' bodies may share that one commit (`_SharedWrites`).
    """
    shared = _WRITERS.get(engine)
    if shared is None:
        with engine.begin() as conn:
            yield conn
        return
    with shared.write(engine) as conn:
        yield conn


class _SharedWrites:
    """The writers of one SQLite engine in this process: one body at a time, bodies queued
    behind each other sharing one transaction, committed by the last in the queue.

    SQLite admits one writer, and each commit waits for its fsync (`synchronous=FULL`): about
    0.5 ms on a quiet disk, 2-10 ms on a busy one. Serialising those commits made the ledger the
    bottleneck of every fan-out (and a thread refused the lock waited in SQLite's busy handler,
    which sleeps 1, 2, 5, 10 ms... between looks). Here a thread queues on a lock instead, runs its
    body in a SAVEPOINT of the open transaction (a body that raises undoes only its own writes),
    and leaves the commit to whoever comes after it; the last one commits and wakes the others.
    Nobody returns before the commit that holds its writes is synced, so a caller learns of a
    write only once it would survive a power cut, exactly as with a transaction of its own.
    Other processes still meet `busy_timeout`.
    """

    def __init__(self) -> None:
        self._turn = threading.Lock()  # who may use the connection now
        self._settled = threading.Condition()  # guards everything below
        self._queued = 0  # threads waiting for the turn
        self._conn: Connection | None = None  # the open shared transaction, if any
        self._bodies = 0  # bodies run in it
        self._batch = 0  # the open (or last) transaction's number
        self._done = 0  # every transaction up to this number is settled
        self._errors: dict[int, BaseException] = {}  # a failed commit, by transaction number
        self._holder: int | None = None  # the thread whose body runs now

    @contextmanager
    def write(self, engine: Engine) -> Iterator[Connection]:
        if self._holder == threading.get_ident():
            raise RuntimeError("a ledger write inside another on the same thread would wait for itself")
        with self._settled:
            self._queued += 1
        try:
            self._turn.acquire()
        finally:
            with self._settled:
                self._queued -= 1
        self._holder = threading.get_ident()
        try:
            conn = self._open(engine)
        except BaseException:
            self._holder = None
            self._turn.release()
            raise
        batch = self._batch
        # The first body needs no SAVEPOINT (half the cost of a short write): if it fails, the
        # whole transaction holds nothing else and is rolled back.
        first = self._bodies == 0
        try:
            if first:
                yield conn
            else:
                with conn.begin_nested():
                    yield conn
        except BaseException:
            try:
                if first:
                    self._roll_back()
            finally:
                self._finish(batch)
            raise
        self._finish(batch)
        with self._settled:
            while self._done < batch:
                self._settled.wait()
            error = self._errors.get(batch)
        if error is not None:
            raise error

    def _roll_back(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.rollback()
            finally:
                conn.close()

    def _open(self, engine: Engine) -> Connection:
        if self._conn is None:
            conn = engine.connect()
            try:
                conn.begin()  # BEGIN IMMEDIATE: the write lock, waiting on busy_timeout
            except BaseException:
                conn.close()
                raise
            self._conn = conn
            self._bodies = 0
            with self._settled:
                self._batch += 1
        return self._conn

    def _finish(self, batch: int) -> None:
        """After a body, with the turn held: commit unless a queued writer will; give the turn up."""
        self._bodies += 1
        self._holder = None
        with self._settled:
            others = self._queued > 0
        if others and self._bodies < GROUP_COMMIT_MAX and self._conn is not None:
            self._turn.release()
            return
        conn, self._conn = self._conn, None
        error: BaseException | None = None
        try:
            if conn is not None:
                try:
                    conn.commit()
                except BaseException as exc:  # nothing of this transaction is kept: all of it fails
                    error = exc
                finally:
                    conn.close()
        finally:
            with self._settled:
                if error is not None:
                    self._errors[batch] = error
                self._errors.pop(batch - 100, None)
                self._done = batch
                self._settled.notify_all()
            self._turn.release()


# Each SQLite engine's writers in this process; keyed weakly, so a dropped engine goes too.
_WRITERS: weakref.WeakKeyDictionary[Engine, _SharedWrites] = weakref.WeakKeyDictionary()


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction: a consistent snapshot that never waits for a writer."""
    with engine.connect().execution_options(ledger_read=True) as conn, conn.begin():
        yield conn


def insert_for(conn: Connection, table: Table) -> sqlite.Insert | postgresql.Insert:
    """The dialect's INSERT, which knows ON CONFLICT (both engines spell it the same)."""
    return insert_of(conn.dialect.name, table)


def insert_of(dialect: str, table: Table) -> sqlite.Insert | postgresql.Insert:
    """`insert_for` by dialect name. PostgreSQL's dialect (2 MB, with its async drivers' modules)
    is imported only by a worker that uses it."""
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert

        return insert(table)
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    return pg_insert(table)
