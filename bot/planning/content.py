"""The queues as every command loads them: the campaign's checks, then each text measured.

`check`, `preview`, `post`, `report` and the daemon (start and live edits) all load queues here,
so a queue `check` refuses (a text too long for a platform included) is never sent or previewed
as sendable: it is left out, or its last good version kept.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path

from bot.campaign import queues as campaign
from bot.campaign.findings import display_path
from bot.campaign.model import Config, Queue
from bot.errors import Problem
from bot.planning.planner import targets_of
from bot.render.textrules import length_problems


def measure(config: Config, queue: Queue) -> list[Problem]:
    """Each text too long (or empty) for a platform once the hashtag is added, `FILE:LINE: message`."""
    found = length_problems(queue, targets_of(queue, config))
    return [replace(p, file=display_path(Path(p.file))) for p in found]


def load_queues(config: Config) -> tuple[list[Queue], list[Problem]]:
    """Every queue of the content folder without an error, and every problem of every file."""
    return campaign.load_queues(config, measure=partial(measure, config))


def load_queue(path: Path, config: Config) -> tuple[Queue | None, list[Problem]]:
    """One queue file (None when it has any error) and its problems, for live reloads."""
    return campaign.load_queue(path, config, measure=partial(measure, config))
