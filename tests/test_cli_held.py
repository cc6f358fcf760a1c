"""An account whose secrets are unset spends nothing: its posts are held and sent once set.

Through the real command line (`python -m bot ...`) against the emulators: `run --once` holds,
`status` and `preview` show what is held, and the next `run` with the secrets sends it.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime, timedelta

from tests.cli import bot_argv, bot_env, site_bot, without
from tests.sandboxsite import Site

X_SECRETS = ("X_CONSUMER_KEY", "X_CONSUMER_SECRET", "X_ACCESS_TOKEN", "X_ACCESS_TOKEN_SECRET")


bot = site_bot


def due_queue(*texts: str, platforms: str = "[x, bluesky, mastodon]") -> str:
    """A queue whose only slot was a minute ago, with the given posts."""
    moment = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S")
    body = "".join(f'  - id: p{i + 1}\n    text: "{text}"\n' for i, text in enumerate(texts))
    return f'schedule: {{at: ["{moment}"]}}\nplatforms: {platforms}\nposts:\n{body}'


def test_run_with_no_account_able_to_post_exits_1_naming_what_is_missing(site: Site) -> None:
    site.write_queue("calls", due_queue("Ask one"))
    everything = (*X_SECRETS, "BSKY_HANDLE", "BSKY_APP_PASSWORD", "MASTODON_ACCESS_TOKEN")
    for args in (["run"], ["run", "--once"]):
        result = bot(site, *args, drop=everything)
        assert result.returncode == 1, result.stderr
        [line] = [x for x in result.stderr.splitlines() if x.startswith("run:")]
        assert "x/main missing X_CONSUMER_KEY" in line
        assert "mastodon/main missing MASTODON_ACCESS_TOKEN" in line
        assert "Traceback" not in result.stderr
    # Nothing was decided or sent: with the secrets, the slot (within its grace) fires then.
    assert all(site.live_texts(p) == [] for p in ("x", "bluesky", "mastodon"))
    assert bot(site, "run", "--once").returncode == 0
    assert all(site.live_texts(p) == ["Ask one #NoTechForICE"] for p in ("x", "bluesky", "mastodon"))


def test_a_target_without_secrets_is_held_shown_and_sent_once_they_are_set(site: Site) -> None:
    site.write_queue("calls", due_queue("Hold this ask"))
    held = bot(site, "run", "--once", drop=X_SECRETS)
    assert held.returncode == 3, held.stderr
    assert "deliveries held for x/main missing X_CONSUMER_KEY" in held.stderr
    assert site.live_texts("x") == []
    assert site.live_texts("bluesky") == ["Hold this ask #NoTechForICE"]

    status = bot(site, "status", drop=X_SECRETS)
    assert "held: p1 for x/main (missing X_CONSUMER_KEY" in status.stdout, status.stdout
    [queue] = json.loads(bot(site, "status", "--json", drop=X_SECRETS).stdout)["queues"]
    assert queue["held"] and queue["pending"] == 1
    preview = bot(site, "preview", drop=X_SECRETS).stdout
    assert "HELD calls/p1 for x/main: sent once X_CONSUMER_KEY" in preview

    # The secrets are set: the next run sends the held post to X, once, and nothing else.
    sent = bot(site, "run", "--once")
    assert sent.returncode == 0, sent.stderr
    assert site.live_texts("x") == ["Hold this ask #NoTechForICE"]
    assert site.live_texts("mastodon") == ["Hold this ask #NoTechForICE"]
    assert json.loads(bot(site, "status", "--json").stdout)["queues"][0]["held"] == []


def test_a_queue_none_of_whose_targets_can_post_keeps_its_post(site: Site) -> None:
    site.write_queue("xonly", due_queue("First for X", "Second for X", platforms="[x]"))
    site.write_queue("others", due_queue("For the others", platforms="[bluesky, mastodon]"))
    held = bot(site, "run", "--once", drop=X_SECRETS)
    assert held.returncode == 3
    assert "queue xonly holds post p1" in held.stderr
    status = bot(site, "status", drop=X_SECRETS).stdout
    assert "xonly: active" in status and "-> p1" in status and "HELD: no account can post (x/main" in status

    sent = bot(site, "run", "--once")
    assert sent.returncode == 0, sent.stderr
    # The first post, not the second: the held slot spent nothing.
    assert site.live_texts("x") == ["First for X #NoTechForICE"]


def test_preview_marks_targets_whose_secrets_are_unset(site: Site) -> None:
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")
    site.write_queue("later", f'schedule: {{at: ["{tomorrow}"]}}\nposts:\n  - {{id: a, text: "Later ask"}}\n')
    text = bot(site, "preview", "--days", "2", drop=X_SECRETS).stdout
    x_line = next(line for line in text.splitlines() if line.strip().startswith("x/main"))
    assert "HELD until X_CONSUMER_KEY, X_CONSUMER_SECRET" in x_line
    records = json.loads(bot(site, "preview", "--days", "2", "--json", drop=X_SECRETS).stdout)
    held_for = {p["platform"]: p["held_for"] for p in records[0]["payloads"]}
    assert held_for["x"][0] == "X_CONSUMER_KEY" and held_for["bluesky"] == []


def test_check_online_names_each_missing_secret_once_and_its_summary_agrees_with_its_exit(site: Site) -> None:
    site.write_queue("calls", due_queue("Ask"))
    result = bot(site, "check", "--online", drop=X_SECRETS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (result.stdout + result.stderr).count("X_CONSUMER_KEY") == 1
    assert "x main: not checked (secrets not set)" in result.stdout
    assert "bluesky main: ok" in result.stdout and "failed online" not in result.stdout
    site.env["MASTODON_ACCESS_TOKEN"] = "revoked"
    refused = bot(site, "check", "--online")
    assert refused.returncode == 3
    assert (
        "mastodon main: FAILED" in refused.stdout
        and "0 errors, 1 warning, 1 account failed online" in refused.stdout
    )


def test_a_running_daemon_sends_what_it_held_once_the_secrets_land_in_env_file(site: Site) -> None:
    import signal
    import time

    site.write_queue("calls", due_queue("Held live"))
    log = site.root / "daemon.log"
    with log.open("w") as out:
        daemon = subprocess.Popen(
            bot_argv("run", config=site.config),
            cwd=site.root,
            env=bot_env(without({**os.environ, **site.env}, X_SECRETS)),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 40
        while "held x/main calls/p1" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        while site.live_texts("mastodon") == [] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert site.live_texts("x") == []
        (site.root / ".env").write_text("".join(f"{name}={site.env[name]}\n" for name in X_SECRETS))
        while site.live_texts("x") == [] and time.monotonic() < deadline:
            time.sleep(0.2)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    assert site.live_texts("x") == ["Held live #NoTechForICE"], log.read_text()
    assert site.live_texts("mastodon") == ["Held live #NoTechForICE"]


def test_post_now_holds_the_post_for_an_account_without_secrets(site: Site) -> None:
    site.write_queue("calls", 'schedule: {every: 1d}\nposts:\n  - {id: a, text: "By hand"}\n')
    posted = bot(site, "post", "calls", drop=X_SECRETS)
    assert posted.returncode == 0, posted.stderr
    assert "held x/main: secrets not set" in posted.stderr
    assert site.live_texts("x") == [] and site.live_texts("bluesky") == ["By hand #NoTechForICE"]
    assert bot(site, "run", "--once").returncode == 0
    assert site.live_texts("x") == ["By hand #NoTechForICE"]


def test_post_dry_run_lists_held_targets_and_exits_as_the_real_post_would(site: Site) -> None:
    site.write_queue("calls", 'schedule: {every: 1d}\nposts:\n  - {id: a, text: "By hand"}\n')
    nobody = (*X_SECRETS, "BSKY_APP_PASSWORD", "MASTODON_ACCESS_TOKEN")
    dry = bot(site, "post", "calls", "--dry-run", drop=nobody)
    assert dry.returncode == 3, dry.stderr
    for target in ("x/main", "bluesky/main", "mastodon/main"):
        line = next(x for x in dry.stdout.splitlines() if x.strip().startswith(target))
        assert "HELD until " in line and line.rstrip().endswith(" set")
    assert "      | By hand #NoTechForICE" in dry.stdout
    assert "calls: no target can post now (x/main missing X_CONSUMER_KEY" in dry.stderr
    records = [
        json.loads(x)
        for x in bot(site, "post", "calls", "--dry-run", "--json", drop=nobody).stdout.splitlines()
    ]
    assert [r["target"] for r in records] == ["x/main", "bluesky/main", "mastodon/main"]
    assert (
        records[0]["held_for"][0] == "X_CONSUMER_KEY"
        and records[0]["parts"][0]["text"] == "By hand #NoTechForICE"
    )
    real = bot(site, "post", "calls", drop=nobody)
    assert real.returncode == 3 and real.stderr.splitlines()[-1] == dry.stderr.splitlines()[-1]
    assert all(site.live_texts(p) == [] for p in ("x", "bluesky", "mastodon"))

    # One target can post: the dry run says so (exit 0) and still marks the held ones.
    some = bot(site, "post", "calls", "--dry-run", drop=X_SECRETS)
    assert some.returncode == 0 and "no target can post" not in some.stderr
    x_line = next(x for x in some.stdout.splitlines() if x.strip().startswith("x/main"))
    assert "HELD until X_CONSUMER_KEY, X_CONSUMER_SECRET" in x_line
    bsky_line = next(x for x in some.stdout.splitlines() if x.strip().startswith("bluesky/main"))
    assert "HELD" not in bsky_line
    assert bot(site, "post", "calls", drop=X_SECRETS).returncode == 0
