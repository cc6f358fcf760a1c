"""Instagram as staff meet it: config, content rules in `check`, `preview`, `post` through the
emulator (which fetches each image from a real local web server), and exactly once when
`media_publish`'s answer is lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from bot.sandbox import Sandbox
from bot.sandbox.imagehost import ImageHost
from tests.imagefiles import jpeg, png

REPO = Path(__file__).resolve().parent.parent
ALT = "A protest sign"


def bot(config: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    return subprocess.run(
        [sys.executable, "-m", "bot", "--config", str(config), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**base, "PYTHONPATH": str(REPO), **env},
        timeout=120,
    )


class IgSite:
    def __init__(self, root: Path, sandbox: Sandbox, host: ImageHost) -> None:
        self.root, self.sandbox = root, sandbox
        described = sandbox.describe()["instagram"]
        self.base = described["base_url"]
        account = described["accounts"][0]
        self.env = {"IG_USER_ID": account["ig_user_id"], "IG_TOKEN": account["access_token"]}
        self.config = root / "config.yaml"
        self.config.write_text(
            'campaign: Test\ntimezone: UTC\nhashtags: ["#NoTechForICE"]\ncontent: content/\n'
            'logging: {level: INFO, format: text, mentions_log: "-"}\nplatforms:\n'
            "  instagram:\n"
            f"    api_base_url: {self.base}\n"
            f"    media_base_url: {host.base_url}\n"
            "    accounts:\n"
            '      - {name: main, ig_user_id: "${IG_USER_ID}", access_token: "${IG_TOKEN}"}\n'
        )

    def queue(self, text: str) -> None:
        (self.root / "content" / "calls.yaml").write_text(textwrap.dedent(text))

    def control(self, route: str, payload: dict[str, Any]) -> None:
        requests.post(f"{self.base}/_sandbox/{route}", data=json.dumps(payload), timeout=5).raise_for_status()

    def state(self) -> dict[str, Any]:
        answer: dict[str, Any] = requests.get(f"{self.base}/_sandbox/state", timeout=5).json()
        return answer

    def media(self) -> list[dict[str, Any]]:
        return [
            p
            for p in self.state()["posts"]
            if p["in_reply_to"] is None and p["author"] == "fightforthefuture"
        ]


@pytest.fixture
def ig(sandbox: Sandbox, tmp_path: Path) -> Iterator[IgSite]:
    content = tmp_path / "content"
    content.mkdir()
    (content / "sign.jpg").write_bytes(jpeg(1080, 1080))
    (content / "wide.jpg").write_bytes(jpeg(1200, 630))
    (content / "tall.jpg").write_bytes(jpeg(500, 1000))
    (content / "flat.png").write_bytes(png(100, 100))
    host = ImageHost(content).start()
    site = IgSite(tmp_path, sandbox, host)
    site.control("reset", {})
    site.control("settings", {"processing_seconds": 0})
    try:
        yield site
    finally:
        host.stop()


QUEUE = f"""\
    schedule: {{every: 1h}}
    instagram:
      image: {{path: wide.jpg, alt: "The campaign's card"}}
    posts:
      - id: photo
        text: "Drop the ICE contracts."
        images: [{{path: sign.jpg, alt: "{ALT}"}}]
      - id: thread
        thread:
          - text: "Who builds ICE's tools?"
            images: [{{path: sign.jpg, alt: "{ALT}"}}]
          - text: "Ask them to stop."
            images: [{{path: wide.jpg, alt: "A wide banner"}}]
      - id: words
        text: "No image of its own: the card goes."
    """


def test_image_posts_go_out_as_one_image_a_carousel_and_the_card(ig: IgSite) -> None:
    ig.queue(QUEUE)
    checked = bot(ig.config, ig.env, "check")
    assert checked.returncode == 0, checked.stderr
    preview = bot(ig.config, ig.env, "preview", "--json", "--platform", "instagram", "--days", "1")
    parts = json.loads(preview.stdout)[0]["payloads"][0]["parts"]
    assert parts[0]["limit"] == 2200 and parts[0]["fits"] is True
    for post_id in ("photo", "thread", "words"):
        posted = bot(ig.config, ig.env, "post", "calls", post_id, "--platform", "instagram")
        assert posted.returncode == 0, posted.stderr
        assert f"{ig.base}/p/" in posted.stdout  # the sandbox's link, not instagram.com
    photo, thread, words = ig.media()
    assert photo["text"] == "Drop the ICE contracts. #NoTechForICE" and photo["media"][0]["alt"] == ALT
    assert thread["text"] == "Who builds ICE's tools?\n\nAsk them to stop. #NoTechForICE"
    assert thread["raw"]["media_type"] == "CAROUSEL_ALBUM" and len(thread["media"]) == 2
    assert words["media"] == [{"id": words["id"], "alt": "The campaign's card"}]
    assert all(c["status_code"] == "PUBLISHED" for c in ig.state()["containers"] if c["media_id"])


@pytest.mark.parametrize(
    ("fault", "containers"),
    [
        ({"drop": "after"}, 1),  # published, the answer lost: the container says PUBLISHED
        ({"status": 500}, 1),  # refused before publishing: the same container is published
    ],
)
def test_a_lost_publish_answer_never_makes_two_media(
    ig: IgSite, fault: dict[str, Any], containers: int
) -> None:
    ig.queue(QUEUE)
    ig.control("faults", {"method": "POST", "path": "/*/media_publish", "times": 1, **fault})
    posted = bot(ig.config, ig.env, "post", "calls", "photo", "--platform", "instagram")
    assert posted.returncode == 0, posted.stderr
    assert len(ig.media()) == 1
    made = [c for c in ig.state()["containers"] if c["account"] == "main"]
    assert len(made) == containers and made[0]["status_code"] == "PUBLISHED"
    again = bot(ig.config, ig.env, "post", "calls", "photo", "--platform", "instagram")
    assert again.returncode == 0 and len(ig.media()) == 1


def test_an_image_instagram_cannot_fetch_fails_with_its_reason(ig: IgSite) -> None:
    ig.queue(QUEUE)
    text = ig.config.read_text()
    served = next(line for line in text.splitlines() if "media_base_url" in line)
    ig.config.write_text(
        text.replace(served, "    media_base_url: http://127.0.0.1:9/content")
    )  # nothing there
    posted = bot(ig.config, ig.env, "post", "calls", "photo", "--platform", "instagram")
    assert posted.returncode != 0
    assert "could not be fetched" in posted.stdout + posted.stderr and ig.media() == []


def test_check_reports_what_instagram_refuses_at_its_line(ig: IgSite) -> None:
    ig.queue(
        """\
        schedule: {every: 1h}
        posts:
          - id: flat
            text: "A PNG"
            images: [{path: flat.png, alt: "x"}]
          - id: tall
            text: "Too tall"
            images: [{path: tall.jpg, alt: "x"}]
        """
    )
    lines = bot(ig.config, ig.env, "check").stderr.splitlines()
    assert any(
        "calls.yaml:5: image 'flat.png' is PNG, which Instagram does not take; use JPEG" in x for x in lines
    )
    assert any(
        "calls.yaml:8: image 'tall.jpg' is 500x1000 pixels; Instagram takes aspect" in x for x in lines
    )
    tags = " ".join(f"#t{n}" for n in range(31))
    ig.queue(
        "schedule: {every: 1h}\nposts:\n  - id: bare\n    text: No image\n"
        f'  - id: tags\n    text: "{tags}"\n    images: [{{path: sign.jpg, alt: x}}]\n'
    )
    result = bot(ig.config, ig.env, "check")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert any("calls.yaml:3: post 'bare' has no image on instagram" in x for x in lines), lines
    assert any(
        "calls.yaml:5: post 'tags' has 32 hashtags on instagram; a caption takes at most 30" in x
        for x in lines
    )


def test_config_needs_a_public_place_for_images(ig: IgSite) -> None:
    ig.queue(QUEUE)
    text = ig.config.read_text()
    ig.config.write_text("\n".join(line for line in text.splitlines() if "media_base_url" not in line) + "\n")
    result = bot(ig.config, ig.env, "check")
    assert result.returncode == 1
    assert (
        "config.yaml:10: platforms.instagram: account 'main' has no public place for its images"
        in result.stderr
    )


def test_check_online_asks_whether_each_image_answers_where_instagram_fetches_it(ig: IgSite) -> None:
    ig.queue(QUEUE)
    online = bot(ig.config, ig.env, "check", "--online")
    assert online.returncode == 0, online.stdout + online.stderr
    assert "instagram main: ok @fightforthefuture" in online.stdout
    text = ig.config.read_text()
    served = next(line for line in text.splitlines() if "media_base_url" in line)
    ig.config.write_text(text.replace(served, f"{served}/wrong-folder"))
    online = bot(ig.config, ig.env, "check", "--online")
    assert online.returncode == 3
    (line,) = [x for x in online.stdout.splitlines() if x.startswith("instagram main:")]
    assert "FAILED" in line and "/wrong-folder/sign.jpg answers 404: Instagram cannot fetch it" in line


def test_sigterm_while_a_container_is_processing_stops_within_its_bound(ig: IgSite, tmp_path: Path) -> None:
    ig.queue(QUEUE)
    ig.control("settings", {"processing_seconds": 3600})  # the container never gets ready
    log = tmp_path / "run.log"
    with log.open("w") as err:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "bot", "--config", str(ig.config), "run", "--for", "5m"],
            cwd=REPO,
            env={**{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}, **ig.env},
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        deadline = time.monotonic() + 60
        while not ig.state()["containers"] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ig.state()["containers"], log.read_text()
        time.sleep(1)  # into the wait between status polls
        stopped = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0, log.read_text()
        assert time.monotonic() - stopped < 10, log.read_text()  # not the container's 58 s of waits
    finally:
        daemon.kill()
    assert ig.media() == []
