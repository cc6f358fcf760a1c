"""Log lines: one line per event, as text or as JSON (config `logging.format`).

Text: `2026-12-01T14:00:03Z INFO posted x/main calls/petition https://...`. JSON: one object
per line with `ts`, `level`, `logger`, `message` and any `extra` fields the caller attached,
for log shippers. Messages are built by the callers from names, ids, URLs and the platforms'
own error messages; a credential never reaches them.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from datetime import UTC, datetime
from typing import TextIO

from bot.campaign.model import LoggingConfig

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def _timestamp(record: logging.LogRecord) -> str:
    return _second(int(record.created))


# Lines come in bursts (a monitoring pass logs one per post seen): format each second once.
@functools.lru_cache(maxsize=4)
def _second(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record)} {record.levelname} {record.getMessage()}"
        if record.exc_info:
            # Only for bugs: a traceback is several lines, but losing it would be worse.
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
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
        return json.dumps(data, ensure_ascii=False, default=str)


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
