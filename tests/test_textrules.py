import dataclasses
from datetime import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from atproto_client.utils import detect_facets as sdk_detect_facets
from atproto_client.utils.facet_detection import detect_mentions as sdk_detect_mentions
from hypothesis import given
from hypothesis import strategies as st

from bot.campaign.model import Image, Part, PlatformOptions, Post, Queue, Schedule
from bot.platforms import Facet
from bot.render.facets import count_graphemes, detect_facets, utf8_length
from bot.render.textrules import add_hashtags, length_problems, mastodon_length, render_post, x_length


def conformance_cases(section: str) -> list[dict[str, Any]]:
    # twitter-text's conformance file (twitter/twitter-text, conformance/validate.yml), copied unchanged.
    path = Path(__file__).parent / "data" / "x" / "twitter-text_conformance_validate.yml"
    cases: list[dict[str, Any]] = yaml.safe_load(path.read_text(encoding="utf-8"))["tests"][section]
    return cases


def make_queue(*posts: Post, hashtags: tuple[str, ...] = ("#NoTechForICE",), **kw: Any) -> Queue:
    return Queue(
        name="calls",
        file=Path("content/calls.yaml"),
        schedule=Schedule(kind="every", timezone="UTC", quiet_hours=(time(22), time(7))),
        posts=posts,
        platforms=("x", "bluesky", "mastodon"),
        hashtags=hashtags,
        **kw,
    )


def make_post(text: str, post_id: str = "p1", line: int = 3, **kw: Any) -> Post:
    return Post(id=post_id, parts=(Part(text),), line=line, **kw)


# --- X -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case",
    conformance_cases("WeightedTweetsWithDiscountedEmojiCounterTest")
    + conformance_cases("UnicodeDirectionalMarkerCounterTest"),
    ids=lambda c: c["description"],
)
def test_x_weighted_length_matches_twitter_text_conformance(case: dict[str, Any]) -> None:
    queue = make_queue(make_post(case["text"]), hashtags=())
    rendered = render_post(queue, queue.posts[0], "x", "main")
    part = rendered.parts[0]
    assert part.length == case["expected"]["weightedLength"]
    assert part.fits == case["expected"]["valid"]


def test_x_counts_cjk_and_emoji_double_and_urls_as_23() -> None:
    assert x_length("漢" * 140) == 280
    assert x_length("a" * 281) == 281
    assert x_length("👩‍👩‍👧‍👦") == 2
    assert x_length("https://example.org/" + "p" * 200) == 23


# --- hashtags ----------------------------------------------------------------------------------


def test_hashtag_is_added_only_when_missing_case_insensitively() -> None:
    assert add_hashtags("Drop the contracts", ("#NoTechForICE",)) == "Drop the contracts #NoTechForICE"
    assert add_hashtags("Drop them #notechforice!", ("#NoTechForICE",)) == "Drop them #notechforice!"
    # A longer tag is a different tag.
    assert add_hashtags("#NoTechForICEs", ("#NoTechForICE",)) == "#NoTechForICEs #NoTechForICE"


def test_hashtag_goes_to_the_first_part_of_a_thread_only() -> None:
    post = Post(id="t", parts=(Part("one"), Part("two")), line=5)
    rendered = render_post(make_queue(post), post, "mastodon", "main")
    assert [p.text for p in rendered.parts] == ["one #NoTechForICE", "two"]


def test_platform_text_replaces_the_post_text() -> None:
    photo = Image("images/rally.png", "People holding a banner")
    post = Post(
        id="p",
        parts=(Part("A long text for everyone", (photo,)),),
        line=3,
        overrides={"x": PlatformOptions(parts=(Part("Short for X", (photo,)),))},
    )
    queue = make_queue(post)
    x = render_post(queue, post, "x", "main")
    assert x.parts[0].text == "Short for X #NoTechForICE"
    assert x.parts[0].images == (photo,)
    assert render_post(queue, post, "bluesky", "main").parts[0].text.startswith("A long text")


# --- Bluesky -----------------------------------------------------------------------------------


def test_bluesky_facets_match_the_proven_example() -> None:
    text = "Tech workers say no ✊ #NoTechForICE https://example.org/petition"
    assert detect_facets(text) == (
        Facet(24, 37, "tag", "NoTechForICE"),
        Facet(38, 66, "link", "https://example.org/petition"),
    )


@pytest.mark.parametrize(
    ("prefix", "start"),
    [("🏳️‍🌈 ", 15), ("漢字 ", 7), ("👩‍👩‍👧‍👦 and 中文 ", 37), ("plain ", 6)],
)
def test_bluesky_tag_offsets_count_utf8_bytes_after_emoji_and_cjk(prefix: str, start: int) -> None:
    post = make_post(prefix + "call now")
    rendered = render_post(make_queue(post), post, "bluesky", "main")
    text = rendered.parts[0].text
    (tag,) = rendered.parts[0].facets
    assert (tag.kind, tag.value) == ("tag", "NoTechForICE")
    assert tag.start == start + len("call now ")
    assert text.encode()[tag.start : tag.end] == b"#NoTechForICE"


def test_bluesky_mention_facet_carries_the_handle_for_the_adapter_to_resolve() -> None:
    (mention,) = [f for f in detect_facets("Thanks @ally.example.org!") if f.kind == "mention"]
    assert mention.value == "ally.example.org"


def test_bluesky_tag_rules() -> None:
    tags = [
        f.value
        for f in detect_facets("x#a (#b) #1234 #2024election #NoTechForICE!! ＃全角")
        if f.kind == "tag"
    ]
    assert tags == ["2024election", "NoTechForICE", "全角"]


def test_bluesky_link_rules() -> None:
    links = [
        f.value
        for f in detect_facets("see example.org/p, (https://a.org/x) nope.invalidtld")
        if f.kind == "link"
    ]
    assert links == ["https://example.org/p", "https://a.org/x"]


def test_bluesky_limits_are_graphemes_and_bytes() -> None:
    flags = "🇵🇸" * 300  # 300 graphemes, 2400 bytes: fits
    assert count_graphemes(flags) == 300
    family = "👩‍👩‍👧‍👦" * 120  # 120 graphemes but 25 bytes each
    queue = make_queue(make_post(flags, "flags"), make_post(family, "family"), hashtags=())
    assert utf8_length(family) == 3000
    assert length_problems(queue, {"bluesky": ["main"]}) == []
    over = make_queue(make_post(family + "👩‍👩‍👧‍👦", "family", line=9), hashtags=())
    assert [str(p) for p in length_problems(over, {"bluesky": ["main"]})] == [
        "content/calls.yaml:9: post 'family' is too long on bluesky: 3025 UTF-8 bytes, limit 3000"
    ]


# Letters, CJK, emoji pieces, punctuation, whitespace and the characters tags and links use.
TEXTISH = st.lists(
    st.sampled_from(
        [
            *"abcXYZ019 .,!?:;()/#＃@-_\n\t",
            "https://",
            "example.org",
            "a.test",
            "漢",
            "🇵",
            "🇸",
            "👩",
            "\u200d",
            "✊",
            "é",
            "\ufe0f",
        ]
    ),
    max_size=40,
).map("".join)


@given(TEXTISH)
def test_facet_byte_ranges_slice_back_to_their_tag_link_or_mention(text: str) -> None:
    data = text.encode("utf-8")
    for facet in detect_facets(text):
        covered = data[facet.start : facet.end].decode("utf-8")
        if facet.kind == "tag":
            assert covered[0] in "#＃" and covered[1:] == facet.value
        elif facet.kind == "link":
            assert facet.value in (covered, "https://" + covered)
        else:
            assert covered == "@" + facet.value


@given(TEXTISH)
def test_facets_agree_with_the_atproto_sdk_offline_detection(text: str) -> None:
    ours = [(f.start, f.end, f.value) for f in detect_facets(text) if f.kind != "mention"]
    theirs = []
    for facet in sdk_detect_facets(text):
        feature = facet.features[0]
        value = getattr(feature, "tag", None) or getattr(feature, "uri", None)
        if isinstance(value, str) and not value.startswith("$"):  # cashtags: we make none
            theirs.append((facet.index.byte_start, facet.index.byte_end, value))
    assert ours == theirs
    mentions = [(f.start, f.end, f.value) for f in detect_facets(text) if f.kind == "mention"]
    assert mentions == [(m.byte_start, m.byte_end, m.handle) for m in sdk_detect_mentions(text)]


@given(st.text(), st.one_of(st.none(), st.text(max_size=20)))
def test_counting_never_crashes_on_any_text(text: str, spoiler: str | None) -> None:
    post = make_post(text or "x")
    queue = make_queue(post, defaults={"mastodon": PlatformOptions(spoiler_text=spoiler)})
    for platform in ("x", "bluesky", "mastodon"):
        rendered = render_post(queue, post, platform, "main")
        assert rendered.parts[0].length >= 0
    assert mastodon_length(text, spoiler) >= 0


def test_measuring_without_facets_gives_the_same_figures() -> None:
    """`check` measures without Bluesky's facets (a tenth of its time on a large queue)."""
    post = make_post("See https://example.org/p and @ally.example.org #Tag")
    queue = make_queue(post)
    full = render_post(queue, post, "bluesky", "main")
    measured = render_post(queue, post, "bluesky", "main", facets=False)
    assert full.parts[0].facets and not measured.parts[0].facets
    assert measured.parts[0] == dataclasses.replace(full.parts[0], facets=())


# --- Mastodon ----------------------------------------------------------------------------------


def test_mastodon_counts_urls_as_23_and_remote_mentions_as_local() -> None:
    assert mastodon_length("https://example.org/" + "a" * 100) == 23
    assert mastodon_length("hi @alice@example.social") == len("hi @alice")
    assert mastodon_length("example.org/no-scheme") == len("example.org/no-scheme")
    assert mastodon_length("🇵🇸 text", "CW") == 2 + 6


def test_mastodon_content_warning_counts_against_the_limit() -> None:
    post = make_post("a" * 480, overrides={"mastodon": PlatformOptions(spoiler_text="x" * 10)})
    queue = make_queue(post, hashtags=())
    assert render_post(queue, post, "mastodon", "main").parts[0].length == 490
    assert length_problems(queue, {"mastodon": ["main"]}) == []
    longer = make_post("a" * 480, overrides={"mastodon": PlatformOptions(spoiler_text="x" * 30)})
    problems = length_problems(make_queue(longer, hashtags=()), {"mastodon": ["main", "second"]})
    assert [str(p) for p in problems] == [
        "content/calls.yaml:3: post 'p1' is too long on mastodon: "
        "510 characters with the content warning, limit 500; shorten it, or give a shorter `mastodon:` text"
    ]


def test_length_problem_names_post_part_platform_length_and_limit() -> None:
    thread = Post(id="thread-employees", parts=(Part("short"), Part("漢" * 141)), line=12)
    problems = length_problems(make_queue(thread), {"x": ["main"], "bluesky": ["main"]})
    assert [str(p) for p in problems] == [
        "content/calls.yaml:12: post 'thread-employees' part 2 is too long on x: "
        "282 weighted characters, limit 280; shorten it or split it in two, or give a `x:` thread"
    ]
