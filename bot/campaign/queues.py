"""Loading the content queues: every `*.yaml` in the content folder, one queue each.

The format and its checks are in docs/design.md, "Content format and slot rules".

`load_queues` reads them all and returns the valid queues with every problem found (errors and
warnings, each `FILE:LINE: message`); a file with any error yields no queue, so a daemon can keep
the last good version of it. `load_queue` reads one file, for live reloads. Both take `measure`,
the checks of the layers above (each text's length per platform): every command calls them through
`bot.planning.content`, so what `check` refuses is never sent.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Literal, cast
from zoneinfo import ZoneInfo

from bot.campaign.configshape import check_timezone
from bot.campaign.cron import CronError, parse_cron
from bot.campaign.durations import parse_duration
from bot.campaign.findings import Findings, did_you_mean, display_path
from bot.campaign.model import PLATFORMS, Config, Platform, PlatformOptions, Post, Queue, Schedule
from bot.campaign.moments import parse_moment, zone_hint
from bot.campaign.posts import PostReader
from bot.campaign.yamlsource import YamlPath, read_yaml
from bot.errors import InputError, Problem

QUEUE_KEYS = (
    "queue",
    "schedule",
    "start",
    "expires",
    "order",
    "when_exhausted",
    "platforms",
    "accounts",
    "hashtags",
    "language",
    "x",
    "bluesky",
    "mastodon",
    "facebook",
    "instagram",
    "posts",
)
SCHEDULE_KEYS = ("cron", "every", "at", "timezone", "jitter", "quiet_hours")
_SCHEDULE_KINDS = ("cron", "every", "at")
_QUEUE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_QUIET_HOURS = re.compile(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})")
_PLATFORM_ALIASES = {
    "twitter": "x",
    "bsky": "bluesky",
    "masto": "mastodon",
    "fediverse": "mastodon",
    "fb": "facebook",
    "meta": "facebook",
    "ig": "instagram",
    "insta": "instagram",
}


def content_folder_problem(config: Config) -> Problem | None:
    """Why the content folder cannot be read (missing, not a folder, unreadable), at its config line."""
    folder = config.content_dir
    if not folder.exists():
        message = f"content folder {display_path(folder)} does not exist"
    elif not folder.is_dir():
        message = f"content folder {display_path(folder)} is not a folder"
    else:
        try:
            with os.scandir(folder):
                return None
        except OSError as exc:
            message = f"cannot read the content folder {display_path(folder)}: {exc.strerror}"
    try:
        line = read_yaml(config.path, display_path(config.path)).line(("content",))
    except InputError:
        line = 1
    return Problem(display_path(config.path), line, message)


Measure = Callable[[Queue], list[Problem]]


def load_queues(config: Config, *, measure: Measure) -> tuple[list[Queue], list[Problem]]:
    """Every queue of the content folder that has no error, and every problem found in any."""
    folder = config.content_dir
    unreadable = content_folder_problem(config)
    if unreadable is not None:
        return [], [unreadable]
    problems: list[Problem] = []
    for stray in sorted(folder.glob("*.yml")):
        problems.append(Problem(display_path(stray), 1, "ignored: queue files must end in .yaml", "warning"))
    for nested in sorted({*folder.glob("*/**/*.yaml"), *folder.glob("*/**/*.yml")}):
        if not any(part.startswith(".") for part in nested.relative_to(folder).parts):
            message = f"ignored: queue files must be in {display_path(folder)} itself, not in a sub-folder"
            problems.append(Problem(display_path(nested), 1, message, "warning"))
    files = sorted(folder.glob("*.yaml"))
    if not files:
        problems.append(Problem(display_path(folder), 1, "no queue files (*.yaml) here", "warning"))
    loaded: list[Queue] = []
    for file in files:
        queue, found = load_queue(file, config, measure=measure)
        problems.extend(found)
        if queue is not None:
            loaded.append(queue)
    queues: list[Queue] = []
    owner: dict[str, Path] = {}
    for queue in sorted(loaded, key=clash_order):
        if queue.name in owner:
            problems.append(name_clash(queue, owner[queue.name]))
            continue
        owner[queue.name] = queue.file
        queues.append(queue)
    queues.sort(key=lambda q: q.file)
    problems.extend(warn_identical_x_text(queues, config))
    problems.extend(warn_repeated_x_text(queues, config))
    problems.extend(warn_misspelt_hashtags(queues, config))
    return queues, problems


def clash_order(queue: Queue) -> tuple[bool, Path]:
    """Who keeps a name two files claim: the file named after it, else the first by path.

    So a new file that says `queue: explainer` is the one told, never content/explainer.yaml.
    """
    return (queue.file.stem != queue.name, queue.file)


def name_clash(queue: Queue, owner: Path) -> Problem:
    """The error for the file that loses a queue name, at its `queue:` line."""
    try:
        lines = queue.file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        lines = []
    line = next((n for n, text in enumerate(lines, 1) if text.startswith("queue:")), 1)
    return Problem(
        display_path(queue.file),
        line,
        f"queue name {queue.name!r} is already used by {display_path(owner)}: "
        "give this file another `queue:` name",
    )


def load_queue(path: Path, config: Config, *, measure: Measure) -> tuple[Queue | None, list[Problem]]:
    """One queue file: the queue (None when it has any error) and its problems.

    The posts read without an error are measured even when others have one, so every problem
    shows at once.
    """
    try:
        doc = read_yaml(path, display_path(path))
    except InputError as exc:
        return None, exc.problems
    findings = Findings(doc)
    if doc.data is None:
        findings.error((), "the file is empty (or only comments): a queue needs schedule: and posts:")
        return None, findings.problems
    if not isinstance(doc.data, dict):
        findings.error((), "a queue file should be a mapping with schedule: and posts: (key: value lines)")
        return None, findings.problems
    queue = _QueueReader(config, path, findings, doc.data).read()
    findings.problems.extend(measure(queue))
    # The same message at the same line once (five copies of one image on one line).
    problems = sorted(dict.fromkeys(findings.problems), key=lambda p: p.line)
    return (None if findings.has_errors else queue), problems


class _QueueReader:
    def __init__(self, config: Config, path: Path, findings: Findings, data: dict[str, object]) -> None:
        self.config = config
        self.path = path
        self.findings = findings
        self.data = data

    def read(self) -> Queue:
        data, findings = self.data, self.findings
        findings.check_keys((), data, QUEUE_KEYS)
        name = self._name()
        schedule = self._schedule(data.get("schedule"))
        zone = ZoneInfo(schedule.timezone)
        platforms = self._platforms()
        reader = PostReader(findings, self.config.content_dir, zone, platforms)
        start = reader.read_moment(data, (), "start")
        expires = reader.read_moment(data, (), "expires")
        reader.check_window((), start, expires)
        defaults: dict[Platform, PlatformOptions] = {}
        for platform in PLATFORMS:
            if platform in data:
                options = reader.read_options(platform, data[platform], (platform,), None)
                if options is not None:
                    defaults[platform] = options
        posts = reader.read_posts(data.get("posts"))
        if data.get("posts") == []:
            findings.warning(("posts",), "posts: the queue has no posts")
        if data.get("when_exhausted") == "repeat" and "x" in platforms:
            others = ", ".join(p for p in platforms if p != "x") or "no other platform"
            findings.warning(
                ("when_exhausted",),
                "when_exhausted: repeat: X refuses a text an account already posted, so rounds after "
                f"the first go to {others} only (to send a post to X again, give it a new id and text)",
            )
        return Queue(
            name=name,
            file=self.path.absolute(),
            schedule=schedule,
            posts=posts,
            platforms=platforms,
            accounts=self._accounts(platforms),
            hashtags=self._hashtags(),
            language=reader.read_language(data, ()),
            defaults=defaults,
            start=start,
            expires=expires,
            order=cast(Literal["sequential", "shuffle"], self._choice("order", ("sequential", "shuffle"))),
            when_exhausted=cast(
                Literal["stop", "repeat"], self._choice("when_exhausted", ("stop", "repeat"))
            ),
        )

    def _name(self) -> str:
        name = self.data.get("queue", self.path.stem)
        if not isinstance(name, str) or not _QUEUE_NAME.fullmatch(name):
            where = ("queue",) if "queue" in self.data else ()
            self.findings.error(
                where, f"queue name {name!r} should be a word of letters, digits, '.', '_' or '-'"
            )
            return self.path.stem
        return name

    # --- schedule -------------------------------------------------------------------------

    def _schedule(self, value: object) -> Schedule:
        path: YamlPath = ("schedule",)
        fallback = Schedule(kind="every", timezone=self._timezone(None), every=timedelta(days=1))
        if value is None:
            self.findings.error(path, "missing schedule: give one of cron, every or at")
            return fallback
        if not isinstance(value, dict):
            self.findings.error(path, "schedule: should be a mapping with one of cron, every or at")
            return fallback
        self.findings.check_keys(path, value, SCHEDULE_KEYS)
        timezone = self._timezone(value.get("timezone"))
        kinds = [kind for kind in _SCHEDULE_KINDS if kind in value]
        if not kinds:
            self.findings.error(path, "schedule: give one of cron, every or at")
            return fallback
        if len(kinds) > 1:
            self.findings.error(
                (*path, kinds[1]),
                f"schedule: has both {kinds[0]} and {kinds[1]}; give exactly one of cron, every or at",
            )
        kind = cast(Literal["cron", "every", "at"], kinds[0])
        raw = value[kind]
        cron: str | None = None
        every: timedelta | None = None
        at: tuple[datetime, ...] = ()
        if kind == "cron":
            cron = self._cron(raw, (*path, "cron"))
        elif kind == "every":
            every = self._duration(raw, (*path, "every"), positive=True)
            if every is not None and every < timedelta(minutes=1):
                per_day = int(timedelta(days=1) / every)
                self.findings.warning(
                    (*path, "every"),
                    f"schedule.every: {raw} fires {per_day:,} times a day; the platforms refuse "
                    "most of that (did you mean minutes or hours, such as 1m or 1h?)",
                )
        else:
            at = self._at_list(raw, (*path, "at"), ZoneInfo(timezone))
        jitter = self._duration(value.get("jitter", "0s"), (*path, "jitter"), positive=False)
        return Schedule(
            kind=kind,
            timezone=timezone,
            cron=cron,
            every=every,
            at=at,
            jitter=jitter or timedelta(0),
            quiet_hours=self._quiet_hours(value.get("quiet_hours"), (*path, "quiet_hours")),
        )

    def _timezone(self, value: object) -> str:
        if value is None:
            return self.config.timezone
        if not isinstance(value, str) or (problem := check_timezone(value)):
            problem = (
                "should be an IANA name such as America/New_York" if not isinstance(value, str) else problem
            )
            self.findings.error(("schedule", "timezone"), f"schedule.timezone: {problem}")
            return self.config.timezone
        if hint := zone_hint(value):
            self.findings.warning(("schedule", "timezone"), f"schedule.timezone: {hint}")
        return value

    def _cron(self, value: object, path: YamlPath) -> str | None:
        if not isinstance(value, str):
            self.findings.error(path, 'schedule.cron: should be text in quotes, such as "0 9 * * 1-5"')
            return None
        try:
            parse_cron(value)
        except CronError as exc:
            self.findings.error(path, f"schedule.cron: invalid: {exc}")
            return None
        return value

    def _duration(self, value: object, path: YamlPath, *, positive: bool) -> timedelta | None:
        name = ".".join(str(p) for p in path)
        try:
            if not isinstance(value, str):
                raise ValueError("should be a duration such as 30s, 5m, 2h or 1d")
            duration = parse_duration(value)
        except ValueError as exc:
            self.findings.error(path, f"{name}: {exc}")
            return None
        if positive and duration <= timedelta(0):
            self.findings.error(path, f"{name}: should be longer than zero")
            return None
        return duration

    def _at_list(self, value: object, path: YamlPath, zone: ZoneInfo) -> tuple[datetime, ...]:
        items = value if isinstance(value, list) else [value]
        if not items:
            self.findings.error(path, "schedule.at: list at least one date and time")
        moments = []
        for i, item in enumerate(items):
            item_path = (*path, i) if isinstance(value, list) else path
            try:
                moments.append(parse_moment(item, zone, "at"))
            except ValueError as exc:
                self.findings.error(item_path, f"schedule.at: {exc}")
        return tuple(sorted(moments))

    def _quiet_hours(self, value: object, path: YamlPath) -> tuple[time, time] | None:
        if value is None:
            return None
        match = _QUIET_HOURS.fullmatch(value.strip()) if isinstance(value, str) else None
        bounds = None
        if match:
            h1, m1, h2, m2 = (int(g) for g in match.groups())
            if max(h1, h2) < 24 and max(m1, m2) < 60:
                bounds = (time(h1, m1), time(h2, m2))
        if bounds is None:
            self.findings.error(
                path, f'schedule.quiet_hours: {value!r} should be "HH:MM-HH:MM", such as "22:00-07:00"'
            )
            return None
        if bounds[0] == bounds[1]:
            self.findings.error(path, "schedule.quiet_hours: start and end are the same time")
            return None
        return bounds

    # --- targets --------------------------------------------------------------------------

    def _platforms(self) -> tuple[Platform, ...]:
        enabled = self.config.enabled_platforms()
        value = self.data.get("platforms")
        if value is None:
            return enabled
        if not isinstance(value, list):
            self.findings.error(
                ("platforms",),
                "platforms: should be a list, such as [x, bluesky, mastodon, facebook, instagram]",
            )
            return enabled
        chosen: list[Platform] = []
        for i, item in enumerate(value):
            path = ("platforms", i)
            if item not in PLATFORMS:
                alias = _PLATFORM_ALIASES.get(str(item).lower())
                hint = f" (did you mean {alias!r}?)" if alias else did_you_mean(str(item), PLATFORMS)
                self.findings.error(
                    path,
                    f"platforms: unknown platform {item!r}{hint}; "
                    "use x, bluesky, mastodon, facebook or instagram",
                )
                continue
            platform = cast(Platform, item)
            if platform not in enabled:
                self.findings.warning(
                    path, f"platforms: {platform} is not enabled in config.yaml, so this queue skips it"
                )
                continue
            if platform not in chosen:
                chosen.append(platform)
        return tuple(chosen)

    def _accounts(self, platforms: tuple[Platform, ...]) -> tuple[str, ...] | None:
        value = self.data.get("accounts")
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.findings.error(("accounts",), "accounts: should be a list of account names, such as [main]")
            return None
        known = {p: {a.name for a in self.config.accounts(p)} for p in platforms}
        every_name = sorted(set().union(*known.values())) if known else []
        for i, name in enumerate(value):
            if name not in every_name:
                where = ", ".join(platforms) or "the enabled platforms"
                self.findings.error(
                    ("accounts", i),
                    f"accounts: unknown account {name!r}{did_you_mean(name, every_name)}; "
                    f"accounts on {where}: {', '.join(every_name) or 'none'}",
                )
        for platform in platforms:
            if not known[platform] & set(value):
                self.findings.warning(
                    ("accounts",),
                    f"accounts: none of {', '.join(value)} is on {platform}, so nothing goes there",
                )
        return tuple(value)

    def _hashtags(self) -> tuple[str, ...]:
        value = self.data.get("hashtags")
        if value is None:
            return self.config.hashtags[:1]
        if not isinstance(value, list):
            self.findings.error(("hashtags",), 'hashtags: should be a list, such as ["#NoTechForICE"]')
            return ()
        for i, tag in enumerate(value):
            if not isinstance(tag, str) or not re.fullmatch(r"#\w+", tag):
                self.findings.error(
                    ("hashtags", i), f"hashtags: {tag!r} should be # followed by letters or digits"
                )
        return tuple(str(tag) for tag in value)

    def _choice(self, key: str, choices: tuple[str, ...]) -> str:
        value = self.data.get(key, choices[0])
        if value not in choices:
            hint = did_you_mean(str(value), choices)
            self.findings.error((key,), f"{key}: {value!r} should be {' or '.join(choices)}{hint}")
            return choices[0]
        return str(value)


_HASHTAG = re.compile(r"#\w+")


def warn_misspelt_hashtags(queues: list[Queue], config: Config) -> list[Problem]:
    """A warning per tag in a text that looks like a campaign hashtag but is not it (`#NoTechFroICE`).

    Close means difflib's ratio of at least 0.8, case ignored (another case is the same tag); a
    tag that starts with the campaign's (`#NoTechForICE2026`) is taken as meant.
    """
    problems = []
    for queue in queues:
        ours = {tag.casefold(): tag for tag in (*config.hashtags, *queue.hashtags)}
        for post in queue.posts:
            bodies = [post.parts, *(o.parts for o in post.overrides.values() if o.parts)]
            texts = [part.text for parts in bodies for part in parts]
            for tag in dict.fromkeys(t for text in texts for t in _HASHTAG.findall(text)):
                folded = tag.casefold()
                if folded in ours or any(folded.startswith(known) for known in ours):
                    continue
                close = difflib.get_close_matches(folded, ours, n=1, cutoff=0.8)
                if close:
                    line = post.text_lines.get("") or post.line
                    message = f"post {post.id!r}: {tag!r} looks like the campaign's {ours[close[0]]}"
                    problems.append(Problem(display_path(queue.file), line, message, "warning"))
    return problems


# --- across queues --------------------------------------------------------------------------

X_AUTOMATION_RULE = (
    "X's automation rules forbid posting identical or substantially similar content across multiple accounts"
)


def x_accounts_of(queue: Queue, config: Config) -> tuple[str, ...]:
    """The X accounts a queue posts from."""
    if "x" not in queue.platforms:
        return ()
    names = [a.name for a in config.accounts("x")]
    return tuple(n for n in names if queue.accounts is None or n in queue.accounts)


def _x_text(post: Post) -> str:
    options = post.overrides.get("x")
    parts = options.parts if options is not None and options.parts else post.parts
    # "Substantially similar": compare ignoring case and spacing.
    return "\n".join(" ".join(part.text.casefold().split()) for part in parts)


def warn_identical_x_text(queues: list[Queue], config: Config) -> list[Problem]:
    """One warning per queue whose posts send the same text to more than one X account."""
    accounts_by_text: dict[str, set[str]] = {}
    for queue in queues:
        for post in queue.posts:
            accounts_by_text.setdefault(_x_text(post), set()).update(x_accounts_of(queue, config))
    problems = []
    for queue in queues:
        if not x_accounts_of(queue, config):
            continue
        shared = [p for p in queue.posts if len(accounts_by_text[_x_text(p)]) > 1]
        if not shared:
            continue
        names = sorted(set().union(*(accounts_by_text[_x_text(p)] for p in shared)))
        count = f"{len(shared)} post{'s' if len(shared) > 1 else ''}"
        problems.append(
            Problem(
                display_path(queue.file),
                shared[0].line,
                f"{count} of queue {queue.name!r} (first: {shared[0].id!r}) send the same text to "
                f"several X accounts ({', '.join(names)}): {X_AUTOMATION_RULE}; "
                "give each X account its own text or its own queue",
                "warning",
            )
        )
    return problems


def warn_repeated_x_text(queues: list[Queue], config: Config) -> list[Problem]:
    """A warning per post whose text an earlier post already sends to the same X account: X
    refuses a text the account has posted, so only the first of them goes out there."""
    first: dict[tuple[str, str], tuple[str, str]] = {}  # (account, text) -> (queue, post id)
    problems = []
    for queue in queues:
        for post in queue.posts:
            this = (queue.name, post.id)
            earlier = [first.setdefault((a, _x_text(post)), this) for a in x_accounts_of(queue, config)]
            repeated = next((post_id for q, post_id in earlier if (q, post_id) != this), None)
            if repeated is not None:
                problems.append(
                    Problem(
                        display_path(queue.file),
                        post.line,
                        f"post {post.id!r} sends X the same text as post {repeated!r}: X refuses a "
                        "text the account already posted, so it will not go out there; change a word",
                        "warning",
                    )
                )
    return problems
