"""Log lines: one line per event, as text or as JSON (config `logging.format`).

Text: `2026-12-01T14:00:03Z INFO posted x/main calls/petition https://...`. JSON: one object
per line with `ts`, `level`, `logger`, `message` and any `extra` fields the caller attached,
for log shippers. Messages are built by the callers from names, ids, URLs and the platforms'
own error messages; a credential never reaches them. A traceback keeps its frames, but a
database error in it is shown by its type alone: the driver's text can quote a statement's
values (a session's tokens, someone's post).
"""

from __future__ import annotations

import functools
import json
import logging
import sqlite3
import sys
import traceback
from datetime import UTC, datetime
from types import TracebackType
from typing import TextIO

from sqlalchemy.exc import SQLAlchemyError

from bot.campaign.model import LoggingConfig
from bot.escaping import json_line_safe, log_field

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def _timestamp(record: logging.LogRecord) -> str:
    return _second(int(record.created))


# Lines come in bursts (a monitoring pass logs one per post seen): format each second once.
@functools.lru_cache(maxsize=4)
def _second(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def holds_values(exc: BaseException) -> bool:
    """A database error: its text may quote the values of the statement that failed."""
    if isinstance(exc, SQLAlchemyError | sqlite3.Error):
        return True
    return type(exc).__module__.split(".")[0] == "psycopg"


def safe_traceback(exc_info: ExcInfo) -> str:
    """The traceback with its frames, each database error in the chain shown by its type alone."""
    if exc_info[1] is None:
        return ""
    report = traceback.TracebackException(*exc_info)
    seen: set[int] = set()
    pending: list[tuple[traceback.TracebackException, BaseException | None]] = [(report, exc_info[1])]
    while pending:
        item, exc = pending.pop()
        if exc is None or id(exc) in seen:
            continue
        seen.add(id(exc))
        if holds_values(exc):
            # The standard library keeps the message in `_str` (3.11-3.13); replacing it is the
            # one way to keep the frames and drop the text.
            item._str = "(text withheld: a database error may quote the statement's values)"  # type: ignore[attr-defined]
        if item.__cause__ is not None:
            pending.append((item.__cause__, exc.__cause__))
        if item.__context__ is not None:
            pending.append((item.__context__, exc.__context__))
    return "".join(report.format()).rstrip("\n")


class TextFormatter(logging.Formatter):
    def formatException(self, ei: ExcInfo) -> str:
        return safe_traceback(ei)

    def format(self, record: logging.LogRecord) -> str:
        # One event, one line: a server's message or a stranger's name cannot start another.
        line = f"{_timestamp(record)} {record.levelname} {log_field(record.getMessage())}"
        if record.exc_info:
            # Only for bugs: a traceback is several lines, but losing it would be worse.
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    def formatException(self, ei: ExcInfo) -> str:
        return safe_traceback(ei)

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        data.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json_line_safe(json.dumps(data, ensure_ascii=False, default=str))


class _Stderr:
    """Whatever sys.stderr is at the time of writing (a test's capture, or a redirected stream)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def setup_logging(config: LoggingConfig, stream: TextIO | None = None) -> None:
    """Send the `bot` loggers to `stream` (default stderr) in the configured format."""
    handler = logging.StreamHandler(stream or _Stderr())
    handler.setFormatter(JsonFormatter() if config.format == "json" else TextFormatter())
    root = logging.getLogger("bot")
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(config.level.upper())
    # APScheduler logs every job run at INFO; our own lines say what matters.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
