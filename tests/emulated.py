"""Shared by the adapter tests that run the real SDKs against the sandbox emulators."""

from __future__ import annotations

from collections.abc import Callable

from bot.platforms import Batch, Mention

MAX_PAGES = 100  # far more than any test posts: a sweep that never ends fails instead of hanging


def read_all(read: Callable[[str | None], Batch], cursor: str | None = None) -> list[Batch]:
    """Every page of one monitoring read from `cursor`, as the monitor reads a long gap."""
    batches = [read(cursor)]
    while batches[-1].more:
        assert len(batches) < MAX_PAGES, "the sweep never reached its mark"
        batches.append(read(batches[-1].cursor))
    return batches


def posts_of(batches: list[Batch]) -> list[Mention]:
    """The posts of every page, oldest first (ids of one platform sort as (length, text))."""
    posts = [p for b in batches for p in b.posts]
    return sorted(posts, key=lambda p: (p.created_at, len(p.id), p.id))
