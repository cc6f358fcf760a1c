"""Which tags a text carries, by each network's own rule (bot/render/hashtags.py), and how a
post's tags reach the mentions log: from its structure or its text, in the campaign's spelling."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.campaign.model import Platform
from bot.monitoring.classification import Ours, classify
from bot.platforms import Mention
from bot.render.facets import detect_facets
from bot.render.hashtags import hashtags_in_text

OURS = Ours.build({"100": "main"}, ["#NoTechForICE", "#DropICE"])


@pytest.mark.parametrize(
    ("platform", "text", "tags"),
    [
        ("bluesky", "We stand #NoTechForICE!", ("NoTechForICE",)),
        ("bluesky", "no#tag here, #123 neither", ()),
        ("bluesky", "full width ＃NoTechForICE and #ümlaut", ("NoTechForICE", "ümlaut")),
        ("mastodon", "#NoTechForICE, and #notechforice", ("NoTechForICE", "notechforice")),
        ("mastodon", "https://example.org/#anchor (#tag) x#y", ()),
        ("mastodon", "日本語 #抗議 #a·b", ("抗議", "a·b")),
        ("x", "Stop it #NoTechForICE.", ("NoTechForICE",)),
        ("x", "AT&#T and #1 and #tag#tag and #https://x.org", ()),
        ("x", "see https://example.org/#frag and (#paren)", ("paren",)),
        ("x", "#abc✨ #كلمة", ("abc", "كلمة")),
    ],
)
def test_each_network_reads_tags_from_text_by_its_own_rule(
    platform: Platform, text: str, tags: tuple[str, ...]
) -> None:
    assert hashtags_in_text(platform, text) == tags


@pytest.mark.parametrize(
    "text", ["#NoTechForICE", "a #b, c (#d) #e… #123 #x1 ＃full #" + "t" * 70, "emoji #🙂 #tag️"]
)
def test_bluesky_reads_exactly_the_tags_the_bot_makes_facets_of(text: str) -> None:
    faceted = tuple(f.value for f in detect_facets(text) if f.kind == "tag")
    assert hashtags_in_text("bluesky", text) == tuple(dict.fromkeys(faceted))


def _post(text: str, hashtags: tuple[str, ...] = ()) -> Mention:
    return Mention("1", "https://example/1", "alice", text, datetime(2026, 1, 1, tzinfo=UTC), hashtags)


@pytest.mark.parametrize("platform", ["x", "bluesky", "mastodon"])
def test_a_tag_only_in_the_text_makes_a_hashtag_post_in_the_campaigns_spelling(platform: Platform) -> None:
    sighting = classify(_post("solidarity #NOTECHFORICE #Other"), platform, OURS, {})
    assert sighting is not None and sighting.kind == "hashtag" and sighting.tracked
    assert sighting.hashtags == ("NoTechForICE", "Other")


def test_structured_and_written_tags_count_once_whatever_their_case() -> None:
    post = _post("both #droPICE and #notechforice", hashtags=("notechforice", "Extra"))
    sighting = classify(post, "mastodon", OURS, {})
    assert sighting is not None
    assert sighting.hashtags == ("NoTechForICE", "DropICE", "Extra")


def test_a_post_without_a_tracked_tag_is_not_a_hashtag_post() -> None:
    assert classify(_post("nothing #unrelated, no#NoTechForICE"), "bluesky", OURS, {}) is None
