"""What organizers read: the log line and the mentions log (docs/design.md: output, retention).

    hashtag bluesky @alice.example "We stand with the workers #NoTechForICE" https://bsky.app/...

and one JSON object per line in `logging.mentions_log` with exactly the keys of `RECORD_KEYS`.
The file is rotated daily (the day's file is renamed `mentions.jsonl.YYYY-MM-DD` when the first
record of a new day comes) and rotated files older than `retention_days` are deleted. Files are
created owner-only: they hold other people's posts.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import functools
import json
import os
import re
import sys
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TextIO

from bot.escaping import json_line_safe, log_field, spreadsheet_cell
from bot.ledger.database import make_private_folders
from bot.ledger.mentions import MentionRecord, MonitorStore
from bot.monitoring.classification import Sighting, campaign_spelling, spell_tags

RECORD_KEYS = (
    "ts",
    "kind",
    "platform",
    "account",
    "id",
    "url",
    "author",
    "text",
    "hashtags",
    "in_reply_to",
    "created_at",
)
# The log line shows this many characters of the text at most; the JSON line has it whole.
LINE_TEXT_MAX = 100
FOLLOW_EVERY = 2.0  # seconds between looks at the ledger for `mentions --follow`
_SPACES = re.compile(r"\s+")
# What one_line drops: control characters (Unicode category Cc, which is exactly C0, DEL and
# C1) but newline and tab, which become spaces; and embeddings, overrides and isolates, which
# can make a line read backwards in a terminal. One regex, not a category look-up per
# character: that was a third of the time of ingesting mentions (bench/ingest.py).
_DROPPED = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_ROTATED = re.compile(r"\.(\d{4}-\d{2}-\d{2})$")


# Cached: every record of a batch carries the same `ts` (the time it was seen), and strftime and
# fromisoformat on each were a tenth of ingesting mentions (bench/ingest.py).
@functools.lru_cache(maxsize=64)
def format_time(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    # isoformat is several times cheaper than strftime; same text for years 1000-9999.
    return moment.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def one_line(text: str, limit: int = LINE_TEXT_MAX) -> str:
    """The text on one line: whitespace runs become one space, control and bidi-override
    characters are dropped (someone else's text must not forge or garble log lines), `"` and `\\`
    are escaped, and the result is cut to `limit` characters with an ellipsis."""
    flat = _SPACES.sub(" ", _DROPPED.sub("", text)).strip()
    if len(flat) > limit:
        flat = flat[: limit - 1].rstrip() + "…"
    return flat.replace("\\", "\\\\").replace('"', '\\"')


def log_line(sighting: Sighting) -> str:
    """`hashtag bluesky @alice.example "text…" https://…`: kind first."""
    post = sighting.post
    return text_line(sighting.kind, sighting.platform, post.author, post.text, post.url)


def text_line(kind: str, platform: str, author: str, text: str, url: str | None) -> str:
    # The author's name and the URL come from strangers and servers too: escaped, not trusted.
    return f'{kind} {platform} @{log_field(author)} "{one_line(text)}" {log_field(url or "")}'.rstrip()


def record_of(sighting: Sighting, seen_at: datetime) -> dict[str, Any]:
    """The mentions-log object: exactly RECORD_KEYS, in that order."""
    post = sighting.post
    return {
        "ts": format_time(seen_at),
        "kind": sighting.kind,
        "platform": sighting.platform,
        "account": sighting.account,
        "id": post.id,
        "url": post.url,
        "author": post.author,
        "text": post.text,
        "hashtags": list(sighting.hashtags),
        "in_reply_to": sighting.in_reply_to,
        "created_at": format_time(post.created_at),
    }


def json_line(record: Mapping[str, Any]) -> str:
    return json_line_safe(json.dumps(record, ensure_ascii=False, separators=(", ", ": ")))


@dataclass
class MentionsLog:
    """Appends JSON lines to `path` (None: stdout), rotating daily by the records' `ts` (UTC).

    Each write opens and closes the file, so several daemons appending to one file, or one
    rotating it under another, never leave a writer holding a renamed file. Rotating and
    appending happen under an exclusive lock on `<path>.lock`: without it, one daemon could copy
    the file aside while another appends to it, and lose that line.
    """

    path: Path | None
    retention_days: int = 30
    stream: TextIO | None = None  # stdout when path is None (injectable for tests)

    def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        if not records:
            return
        if self.path is None:
            out = self.stream or sys.stdout
            out.write("".join(json_line(r) + "\n" for r in records))
            out.flush()
            return
        with self._locked():  # other people's posts: the folder owner only
            for day, group in _by_day(records):
                self._rotate(day)
                self._append(group)
                self._delete_expired(day)

    def rotated_files(self) -> list[tuple[date, Path]]:
        assert self.path is not None
        found = []
        for candidate in self.path.parent.glob(self.path.name + ".*"):
            match = _ROTATED.search(candidate.name)
            if match and candidate.name == f"{self.path.name}.{match.group(1)}":
                found.append((date.fromisoformat(match.group(1)), candidate))
        return sorted(found)

    def delete_expired(self, today: date) -> list[Path]:
        """Delete rotated files whose day is more than `retention_days` before `today`; the
        current file is rotated first when it holds an earlier day, so that a log nobody writes
        to any more expires as well."""
        if self.path is None or not self.path.parent.is_dir():
            return []  # nothing written yet: no folder, no lock file, made just to look
        with self._locked():
            self._rotate(today)
            return self._delete_expired(today)

    def forget_authors(self, handles: Collection[str]) -> int:
        """Remove every line by these handles (lower-case, without '@') from the current and the
        rotated files; returns how many lines went."""
        if self.path is None or not handles or not self.path.parent.is_dir():
            return 0
        removed = 0
        with self._locked():
            for path in [self.path, *(p for _, p in self.rotated_files())]:
                removed += _drop_lines(path, lambda r: str(r.get("author", "")).lower() in handles)
        return removed

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        assert self.path is not None
        make_private_folders(self.path.parent)
        lock = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield
        finally:
            os.close(lock)  # closing releases the lock

    def _delete_expired(self, today: date) -> list[Path]:
        assert self.path is not None
        oldest_kept = today - timedelta(days=self.retention_days)
        deleted = []
        for day, path in self.rotated_files():
            if day < oldest_kept:
                path.unlink(missing_ok=True)
                deleted.append(path)
        return deleted

    def _rotate(self, day: date) -> None:
        assert self.path is not None
        current = _first_day(self.path)
        if current is None or current >= day:
            return
        target = self.path.with_name(f"{self.path.name}.{current.isoformat()}")
        if target.exists():
            # Another daemon rotated this day already and a late line landed: keep both.
            with target.open("a", encoding="utf-8") as out:
                out.write(self.path.read_text(encoding="utf-8"))
            self.path.unlink()
        else:
            os.replace(self.path, target)

    def _append(self, records: Iterable[Mapping[str, Any]]) -> None:
        assert self.path is not None
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as out:
            out.write("".join(json_line(r) + "\n" for r in records))


def _drop_lines(path: Path, drop: Callable[[Mapping[str, Any]], bool]) -> int:
    """Rewrite `path` (owner-only) without the JSON lines `drop` picks; returns how many."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    except FileNotFoundError:
        return 0
    kept = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            kept.append(line)
            continue
        if not (isinstance(record, dict) and drop(record)):
            kept.append(line)
    if len(kept) == len(lines):
        return 0
    fresh = path.with_name(path.name + ".new")
    fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write("".join(kept))
    os.replace(fresh, path)
    return len(lines) - len(kept)


def _day_of(record: Mapping[str, Any]) -> date:
    return _day_of_ts(str(record["ts"]))


@functools.lru_cache(maxsize=64)
def _day_of_ts(ts: str) -> date:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).date()


def _by_day(records: Sequence[Mapping[str, Any]]) -> list[tuple[date, list[Mapping[str, Any]]]]:
    groups: list[tuple[date, list[Mapping[str, Any]]]] = []
    for record in records:
        day = _day_of(record)
        if groups and groups[-1][0] == day:
            groups[-1][1].append(record)
        else:
            groups.append((day, [record]))
    return groups


def _first_day(path: Path) -> date | None:
    """The day of the file's first record: the day the file holds (None if empty or absent)."""
    try:
        with path.open(encoding="utf-8") as lines:
            first = lines.readline()
    except FileNotFoundError:
        return None
    try:
        return _day_of(json.loads(first))
    except (ValueError, KeyError, TypeError):
        return None


# -- `python -m bot mentions` -----------------------------------------------------------------


def stored_record(mention: MentionRecord, spelling: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A mention from the ledger as the mentions log shows it (`ts` is when we saw it), its
    tracked hashtags in the campaign's current spelling when `spelling` is given."""
    return {
        "ts": format_time(mention.seen_at),
        "kind": mention.kind,
        "platform": mention.platform,
        "account": mention.account,
        "id": mention.remote_id,
        "url": mention.url,
        "author": mention.author,
        "text": mention.text,
        "hashtags": list(spell_tags(mention.hashtags, spelling) if spelling else mention.hashtags),
        "in_reply_to": mention.in_reply_to,
        "created_at": format_time(mention.created_at),
    }


Format = Literal["text", "json", "csv"]


def write_listing(
    mentions: Iterable[MentionRecord],
    fmt: Format,
    out: TextIO,
    header: bool,
    spelling: Mapping[str, str] | None = None,
) -> None:
    """Text: the log line after the time it was written (seen, if unknown); JSON: the mentions-log
    line; CSV: its keys as columns (hashtags space-separated), with a header row when `header`,
    every cell made safe for a spreadsheet (a stranger's `=HYPERLINK(…)` stays text). Tags are
    written in the campaign's `spelling`."""
    records = [stored_record(m, spelling) for m in mentions]
    if fmt == "json":
        out.write("".join(json_line(r) + "\n" for r in records))
    elif fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        if header:
            writer.writerow(RECORD_KEYS)
        for r in records:
            writer.writerow(spreadsheet_cell(" ".join(v) if k == "hashtags" else v) for k, v in r.items())
    else:
        for r in records:
            line = text_line(r["kind"], r["platform"], r["author"], r["text"], r["url"])
            out.write(f"{r['created_at'] or r['ts']} {line}\n")  # when it was written, not seen
    out.flush()


def show_mentions(
    store: MonitorStore,
    out: TextIO,
    *,
    fmt: Format = "text",
    since: datetime | None = None,
    follow: bool = False,
    wait: Callable[[float], bool] = lambda seconds: False,
    keep: Callable[[MentionRecord], bool] = lambda mention: True,
    hashtags: Iterable[str] = (),
) -> int:
    """List stored mentions (those `keep` keeps), oldest written first; with `follow`, keep
    listing new ones every 2 s, as they are seen, until `wait` says stop (`wait(seconds)` sleeps
    and returns True to go on). Returns how many were listed."""
    spelling = campaign_spelling(hashtags)
    mentions = store.list_mentions(since=since)
    # Stored as seen (a late poll sees an old reply); a reader wants them as written.
    shown = sorted((m for m in mentions if keep(m)), key=lambda m: m.created_at or m.seen_at)
    write_listing(shown, fmt, out, header=True, spelling=spelling)
    last = mentions[-1].seq if mentions else 0
    while follow and wait(FOLLOW_EVERY):
        mentions = store.list_mentions(since=since, after_seq=last)
        if mentions:
            fresh = [m for m in mentions if keep(m)]
            write_listing(fresh, fmt, out, header=False, spelling=spelling)
            shown += fresh
            last = mentions[-1].seq
    return len(shown)
