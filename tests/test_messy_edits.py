"""A Mastodon post edited to add the campaign tag after the bot read past it.

The tag timeline is ordered by id, which an edit keeps, so a poll from its cursor never sees the
status again; the real server streams the edit as `status.update` to the hashtags the status has
now. The monitor's live stream reports it once, as an edited hashtag post.
"""

from __future__ import annotations

import logging

import pytest
import requests

from tests.test_monitor_stream import Instance, instance  # noqa: F401  (the fixture)


def act(inst: Instance, **body: object) -> dict[str, object]:
    answer = requests.post(f"{inst.server.base_url}/_sandbox/audience", json=body, timeout=5)
    assert answer.status_code == 200, answer.text
    posts: list[dict[str, object]] = answer.json()["posts"]
    return posts[0] if posts else {}


def test_an_edit_that_adds_the_tag_is_logged_once_as_an_edited_hashtag_post(
    instance: Instance,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    monitor = instance.monitor()
    monitor.run_pass()
    assert instance.streaming(monitor)
    base = act(instance, kind="hashtag", author="alice", text="Who builds it?")
    reply = act(instance, kind="reply", author="hana", text="No idea yet", to=base["id"])
    act(instance, kind="hashtag", author="bob", text="Later post")
    assert instance.logged_soon(2) == ["Who builds it? #NoTechForICE", "Later post #NoTechForICE"]
    instance.clock.advance(minutes=30)
    monitor.run_pass()  # the poll's cursor is now bob's status, past hana's

    caplog.set_level(logging.INFO)
    act(instance, kind="edit", author="hana", text="@alice Palantir does #NoTechForICE", to=reply["id"])
    assert instance.logged_soon(3)[2] == "@alice Palantir does #NoTechForICE"
    [line] = [r.getMessage() for r in caplog.records if "(edited)" in r.getMessage()]
    assert line.startswith("hashtag mastodon ") and str(reply["id"]) in line

    # Edited again (the tag taken out), then deleted: the log keeps what was seen, once.
    act(instance, kind="edit", author="hana", text="@alice never mind", to=reply["id"])
    act(instance, kind="delete", author="hana", to=reply["id"])
    for _ in range(2):
        instance.clock.advance(minutes=30)
        monitor.run_pass()
    assert instance.logged()[2:] == ["@alice Palantir does #NoTechForICE"]


def test_without_a_stream_such_an_edit_is_not_seen_by_the_polls(instance: Instance) -> None:  # noqa: F811
    """The limit docs/monitoring.md states: a poll reads the tag timeline from its cursor."""
    instance.settings(streaming="none")
    monitor = instance.monitor()
    monitor.run_pass()
    base = act(instance, kind="hashtag", author="alice", text="Who builds it?")
    reply = act(instance, kind="reply", author="hana", text="No idea yet", to=base["id"])
    act(instance, kind="hashtag", author="bob", text="Later post")
    instance.clock.advance(minutes=30)
    monitor.run_pass()
    act(instance, kind="edit", author="hana", text="@alice Palantir does #NoTechForICE", to=reply["id"])
    instance.clock.advance(minutes=30)
    monitor.run_pass()
    assert instance.logged() == ["Who builds it? #NoTechForICE", "Later post #NoTechForICE"]
