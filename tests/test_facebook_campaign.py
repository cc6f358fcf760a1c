"""Facebook as staff meet it: config, content, `check`, `preview`, `post`, `status` and `retract`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import requests

from bot.sandbox import Sandbox
from tests.imagefiles import webp
from tests.sandboxsite import Site, facebook_block, facebook_env

REPO = Path(__file__).resolve().parent.parent
PAGE = "Fight for the Future"


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


def facebook_only(root: Path, sandbox: Sandbox, platform_extra: str = "", account_extra: str = "") -> Path:
    block = facebook_block(sandbox.describe()["facebook"]["base_url"])
    block = block.replace("    api_version: v27.0\n", f"    api_version: v27.0\n{platform_extra}")
    block += account_extra
    (root / "content").mkdir(parents=True, exist_ok=True)
    config = root / "config.yaml"
    config.write_text(
        'campaign: Test\ntimezone: UTC\nhashtags: ["#NoTechForICE"]\ncontent: content/\n'
        'logging: {level: INFO, format: text, mentions_log: "-"}\nplatforms:\n' + block
    )
    return config


@pytest.fixture
def fb_site(sandbox: Sandbox, tmp_path: Path) -> Site:
    requests.post(f"{sandbox.servers['facebook'].base_url}/_sandbox/reset", timeout=5).raise_for_status()
    site = Site(tmp_path, sandbox, facebook=True)
    site.write_queue(
        "calls",
        """\
        schedule: {every: 1h}
        posts:
          - id: thread
            thread:
              - "Tech companies: drop the ICE contracts."
              - "Sign the letter: https://example.org/sign"
            facebook:
              link: https://example.org/sign
          - id: own
            text: "Short for X"
            facebook: "A longer text for the Page's readers."
        """,
    )
    return site


def test_a_thread_goes_out_as_one_post_and_comes_back_in_status_and_retract(fb_site: Site) -> None:
    preview = bot(fb_site.config, fb_site.env, "preview", "--json", "--platform", "facebook", "--days", "1")
    assert preview.returncode == 0, preview.stderr
    payload = json.loads(preview.stdout)[0]["payloads"][0]
    joined = (
        "Tech companies: drop the ICE contracts.\n\nSign the letter: https://example.org/sign #NoTechForICE"
    )
    assert payload["parts"] == [
        {"text": joined, "length": len(joined), "limit": 63206, "fits": True, "images": []}
    ]
    assert payload["link"] == "https://example.org/sign"
    human = bot(fb_site.config, fb_site.env, "preview", "--platform", "facebook", "--days", "1").stdout
    assert "link: https://example.org/sign" in human and "part 1/2" not in human

    dry = bot(
        fb_site.config,
        fb_site.env,
        "post",
        "calls",
        "thread",
        "--platform",
        "facebook",
        "--dry-run",
        "--json",
    )
    (described,) = [json.loads(line) for line in dry.stdout.splitlines()]
    assert [(p["text"], p["link"]) for p in described["parts"]] == [(joined, "https://example.org/sign")]
    posted = bot(fb_site.config, fb_site.env, "post", "calls", "thread", "--platform", "facebook")
    assert posted.returncode == 0, posted.stderr
    assert f"{fb_site.base('facebook')}/" in posted.stdout and "/v27.0/" not in posted.stdout
    (post,) = fb_site.state("facebook")
    assert post["text"] == joined and post["raw"]["link"] == "https://example.org/sign"
    assert post["author"] == PAGE

    status = bot(fb_site.config, fb_site.env, "status", "--json")
    accounts = {(a["platform"], a["account"]): a for a in json.loads(status.stdout)["accounts"]}
    assert accounts[("facebook", "main")]["healthy"] is True

    retracted = bot(fb_site.config, fb_site.env, "retract", "calls", "thread", "--platform", "facebook")
    assert retracted.returncode == 0, retracted.stderr
    assert fb_site.state("facebook")[0]["deleted"] is True


def test_check_reports_facebook_mistakes_at_their_lines(sandbox: Sandbox, tmp_path: Path) -> None:
    config = facebook_only(tmp_path, sandbox, platform_extra="    api_verison: v27.0\n")
    (tmp_path / "content" / "banner.webp").write_bytes(webp(8, 8))
    (tmp_path / "content" / "q.yaml").write_text(
        textwrap.dedent(
            """\
            schedule: {every: 1h}
            posts:
              - id: a
                text: "Hello"
                facebook: {link: "not a link"}
              - id: b
                text: "Hello"
                mastodon: {link: "https://example.org"}
              - id: d
                text: "Hello"
                images: [{path: banner.webp, alt: "A banner"}]
            """
        )
    )
    result = bot(config, facebook_env(sandbox), "check")
    assert result.returncode == 1
    assert "config.yaml:11: platforms.facebook: unknown key 'api_verison' (did you mean 'api_version'?)" in (
        result.stderr
    ), result.stderr
    config.write_text(config.read_text().replace("    api_verison: v27.0\n", ""))
    result = bot(config, facebook_env(sandbox), "check")
    lines = result.stderr.splitlines()
    assert any(
        line.endswith("q.yaml:5: link: should be one web address starting with https://") for line in lines
    )
    assert any("q.yaml:8: mastodon: link applies only to facebook" in line for line in lines), lines
    assert any(
        "q.yaml:11: image 'banner.webp' is WebP, which Facebook does not take" in line for line in lines
    )
    assert "Traceback" not in result.stderr
    too_long = "schedule: {every: 1h}\nposts:\n  - id: c\n    text: %s\n" % ("x" * 63_207)
    (tmp_path / "content" / "q.yaml").write_text(too_long)
    result = bot(config, facebook_env(sandbox), "check")
    assert "q.yaml:4: post 'c' is too long on facebook: 63221 characters, limit 63206" in result.stderr


def test_page_ids_version_and_missing_secrets(sandbox: Sandbox, tmp_path: Path) -> None:
    page_id = sandbox.describe()["facebook"]["accounts"][0]["page_id"]
    config = facebook_only(tmp_path, sandbox)
    config.write_text(config.read_text().replace('"${FB_PAGE_ID}"', page_id))  # unquoted: a number in YAML
    (tmp_path / "content" / "q.yaml").write_text("schedule: {every: 1h}\nposts: [{id: a, text: Hi}]\n")
    online = bot(config, facebook_env(sandbox), "check", "--online")
    assert online.returncode == 0, online.stderr
    assert f"facebook main: ok {PAGE} (token never expires)" in online.stdout
    missing = bot(config, {}, "check", "--online")
    assert "environment variables FB_PAGE_TOKEN, FB_APP_SECRET are not set" in missing.stderr
    assert "facebook main: not checked (secrets not set)" in missing.stdout  # named once, above
    config.write_text(config.read_text().replace("v27.0", "27.0"))
    assert bot(config, facebook_env(sandbox), "check").returncode == 0  # a number in YAML, read as v27.0
    config.write_text(config.read_text().replace("27.0", "latest"))
    bad = bot(config, facebook_env(sandbox), "check")
    assert bad.returncode == 1
    assert "platforms.facebook.api_version: should be a Graph API version such as v27.0" in bad.stderr


def test_a_policy_block_is_never_retried_and_a_lost_answer_is_not_posted_twice(fb_site: Site) -> None:
    server = fb_site.sandbox.servers["facebook"]
    fb_site.fault("facebook", code=368, times=2)
    blocked = bot(fb_site.config, fb_site.env, "post", "calls", "own", "--platform", "facebook")
    assert blocked.returncode == 3
    assert "blocked for policy; not retried" in blocked.stdout + blocked.stderr
    assert len(server.faults) == 1 and server.faults[0].times == 1  # one call, no retry
    server.faults.clear()

    fb_site.fault("facebook", drop="after")  # the post lands, its answer is lost
    posted = bot(fb_site.config, fb_site.env, "post", "calls", "own", "--platform", "facebook")
    assert posted.returncode == 0, posted.stderr
    assert fb_site.live_texts("facebook") == ["A longer text for the Page's readers. #NoTechForICE"]
