"""The emulated audience of `run --sandbox`: people and clients as messy as the real ones.

Every few seconds one *scene* plays on a random network through `/_sandbox/audience`
(docs/sandbox.md), in turn: a reply, a quote with the tag in lower case, a post typed without
facets in capitals, a mention without the tag, non-Latin text and emoji, a very long reply (a
self-reply thread), a reply to a reply of ours, a Mastodon edit, a post deleted at once, an
author suspended after the bot saw their post. Each scene says in the log what it did, so a
newcomer can see how the bot reports it (docs/monitoring.md).
"""

from __future__ import annotations

import json
import logging
import random
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("bot.sandbox")

Post = dict[str, Any]
SPAMMER = "spammer"


def control(
    base_url: str, route: str, payload: dict[str, Any] | None = None, token: str | None = None
) -> Any:
    data = json.dumps(payload).encode() if payload is not None else None
    headers = {"Content-Type": "application/json", **({"X-Sandbox-Token": token} if token else {})}
    request = urllib.request.Request(f"{base_url}/_sandbox/{route}", data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read() or b"null")


@dataclass
class Stage:
    """One network's emulator as a scene sees it: our posts and a way to make others act."""

    platform: str
    base_url: str
    ours: list[Post]  # our posts, oldest first, not deleted
    token: str | None = None  # the sandbox's control token
    posts: list[Post] = field(default_factory=list)  # everyone's, not deleted
    rng: random.Random = field(default_factory=random.Random)  # the rehearsal's, for its choices

    def act(self, kind: str, author: str, text: str = "", to: str | None = None, **options: Any) -> Any:
        body = {"kind": kind, "author": author, "text": text, "to": to, **options}
        return control(self.base_url, "audience", body, self.token)["posts"]

    @property
    def latest(self) -> Post | None:
        roots = [p for p in self.ours if p.get("in_reply_to") is None]
        return roots[-1] if roots else None


def _reply(stage: Stage) -> str | None:
    if stage.latest is None:
        return None
    stage.act("reply", "alice", "Signed and shared!", to=stage.latest["id"])
    return "a reply to our latest post"


def _quote(stage: Stage) -> str | None:
    if stage.latest is None:
        return None
    stage.act("quote", "bob", "Names please. Which companies? #notechforice", to=stage.latest["id"])
    return "a quote of our latest post, the tag in lower case"


def _plain(stage: Stage) -> str | None:
    stage.act("hashtag", "crossposter", "Posted by a script, no facets #NOTECHFORICE", plain=True)
    return "a post whose tag is only in its text (no facets, tags or entities), in capitals"


def _mention(stage: Stage) -> str | None:
    stage.act("mention", "dana", "What do you think about this?")
    return "a mention without the tag"


def _non_latin(stage: Stage) -> str | None:
    stage.act("hashtag", "emre", "Nein zu ICE-Verträgen ✊🏽 技術者は声を上げよう مرحبا #NoTechForICE")
    return "non-Latin text and emoji"


def _long_reply(stage: Stage) -> str | None:
    if stage.latest is None or stage.platform not in ("x", "bluesky", "mastodon"):
        return None
    parts = stage.rng.randint(8, 15)
    stage.act("thread", "farah", to=stage.latest["id"], parts=parts)
    return f"a very long reply: a thread of {parts} parts answering our latest post"


def _reply_to_our_reply(stage: Stage) -> str | None:
    ours = [p for p in stage.ours if p.get("in_reply_to") is not None]
    if not ours:
        return None
    stage.act("reply", "gus", "Replying to the second part of your thread.", to=ours[-1]["id"])
    return "a reply to a reply of ours (a thread's later part)"


def _edit(stage: Stage) -> str | None:
    if stage.platform != "mastodon":
        return None
    (post,) = stage.act("hashtag", "hana", "First draft #NoTechForICE")
    stage.act("edit", "hana", "Second draft, edited #NoTechForICE", to=post["id"])
    return "a post edited after it went out"


def _delete(stage: Stage) -> str | None:
    (post,) = stage.act("hashtag", "ivan", "Oops, wrong account #NoTechForICE")
    stage.act("delete", "ivan", to=post["id"])
    return "a post deleted right after it went out"


def _suspend(stage: Stage) -> str | None:
    """A spam account posts with the tag; the one that posted in this scene's last round (the
    bot has reported it since) is suspended now, so its post disappears after it was seen."""
    if stage.platform not in ("x", "bluesky", "mastodon"):
        return None
    earlier = sorted({p["author"] for p in stage.posts if p["author"].startswith(SPAMMER)})
    for author in earlier:
        stage.act("suspend", author)
    stage.act("hashtag", f"{SPAMMER}{stage.rng.randrange(10_000)}", "Buy followers now #NoTechForICE")
    if earlier:
        return "a post whose author is suspended after the bot saw it (and a new one by the next spammer)"
    return "a spam post with the tag (its author is suspended the next time this scene plays)"


SCENES: list[Callable[[Stage], str | None]] = [
    _reply,
    _quote,
    _plain,
    _mention,
    _non_latin,
    _long_reply,
    _reply_to_our_reply,
    _edit,
    _delete,
    _suspend,
]


def play_scene(number: int, servers: dict[str, tuple[str, str | None]], rng: random.Random) -> str | None:
    """Play scene `number` (cycling) on a network it fits; what it did, or None if none fits.
    `servers`: each network's emulator address and control token."""
    scene = SCENES[number % len(SCENES)]
    for platform in rng.sample(sorted(servers), len(servers)):
        base_url, token = servers[platform]
        posts = control(base_url, "state", token=token)
        mine = set(posts["accounts"].values())
        ours = [p for p in posts["posts"] if p["author"] in mine and not p.get("deleted")]
        live = [p for p in posts["posts"] if not p.get("deleted")]
        done = scene(Stage(platform, base_url, ours, token, live, rng))
        if done is not None:
            log.info("sandbox audience on %s: %s", platform, done)
            return done
    return None
