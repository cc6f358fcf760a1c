"""What `run --sandbox` did is looked at with `status`, `mentions` and `preview --sandbox`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from bot.daemon.rehearsal import run_audience
from bot.sandbox import Sandbox
from tests.cli import bot_argv, bot_env, copy_of_shipped_campaign, free_base_port, run_bot, without
from tests.sandboxsite import Site, wait_for


def bot(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The command in `folder`, with none of this environment's network secrets."""
    return run_bot(
        *args, cwd=folder, env={**without(os.environ, prefixes=("X_", "BSKY_", "MASTODON_")), **env}
    )


def test_status_mentions_and_preview_read_the_sandbox_with_sandbox(tmp_path: Path) -> None:
    copy_of_shipped_campaign(tmp_path)
    before = bot(tmp_path, "status", "--sandbox")
    assert before.returncode == 3 and "run --sandbox" in before.stderr and "Traceback" not in before.stderr

    run = bot(tmp_path, "run", "--sandbox", "--for", "15s", BOT_SANDBOX_PORT=str(free_base_port()))
    assert run.returncode == 0, run.stderr
    assert " ERROR " not in run.stderr, run.stderr

    status = json.loads(bot(tmp_path, "status", "--sandbox", "--json").stdout)
    demo = next(q for q in status["queues"] if q["queue"] == "sandbox-demo")
    assert demo["posted"] >= 1
    assert all(not a["missing_credentials"] for a in status["accounts"])
    # Without --sandbox: the campaign's own database, which the rehearsal never touched.
    plain = json.loads(bot(tmp_path, "status", "--json").stdout)
    assert all(q["posted"] == 0 for q in plain["queues"])
    assert "sandbox-demo" not in {q["queue"] for q in plain["queues"]}

    assert bot(tmp_path, "mentions", "--sandbox", "--json").returncode == 0
    preview = bot(tmp_path, "preview", "--sandbox", "--days", "2")
    assert preview.returncode == 0 and "HELD" not in preview.stdout


def test_the_emulated_audience_also_posts_with_the_hashtag(sandbox: Sandbox, site: Site) -> None:
    stop = threading.Event()
    run_audience(sandbox, stop, every=0.02)
    try:

        def tagged() -> list[str]:
            return [
                p["text"]
                for name in ("x", "bluesky", "mastodon")
                for p in requests.get(f"{site.base(name)}/_sandbox/state", timeout=5).json()["posts"]
                if "#notechforice" in p["text"].lower()
                and p["in_reply_to"] is None  # any case, as people write
            ]

        assert wait_for(lambda: len(tagged()) >= 2, timeout=20)
    finally:
        stop.set()


def test_run_sandbox_on_taken_ports_names_them_and_says_how_to_pick_others(tmp_path: Path) -> None:
    copy_of_shipped_campaign(tmp_path)
    base = free_base_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", base + 1))
        taken.listen()
        run = bot(tmp_path, "run", "--sandbox", "--for", "5s", BOT_SANDBOX_PORT=str(base))
    assert run.returncode == 3, run.stderr
    assert f"cannot listen on ports {base}-{base + 4} (Address already in use;" in run.stderr
    assert f"BOT_SANDBOX_PORT=N picks ports N to N+4 instead, e.g. BOT_SANDBOX_PORT={base + 5}" in run.stderr
    assert "Traceback" not in run.stderr
    too_high = bot(tmp_path, "run", "--sandbox", "--for", "5s", BOT_SANDBOX_PORT="65532")
    assert too_high.returncode == 2 and "is not a port from 1 to 65531" in too_high.stderr


@contextmanager
def rehearsal(folder: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """`run --sandbox --for 60s` on the shipped campaign in `folder`, once it has fired a slot;
    its stderr goes to the log file yielded beside it. Stopped (SIGTERM) at the end."""
    copy_of_shipped_campaign(folder)
    env = {
        **without(os.environ, prefixes=("X_", "BSKY_", "MASTODON_")),
        "BOT_SANDBOX_PORT": str(free_base_port()),
    }
    log = folder / "run.log"
    with log.open("w") as err:
        run = subprocess.Popen(
            bot_argv("run", "--sandbox", "--for", "60s"), cwd=folder, env=bot_env(env), stderr=err
        )
    try:
        assert wait_for(lambda: "slot fired" in log.read_text(), timeout=60), log.read_text()
        yield run, log
    finally:
        if run.poll() is None:
            run.terminate()
        run.wait(timeout=30)


def test_a_second_rehearsal_beside_the_same_config_is_refused_and_empties_nothing(tmp_path: Path) -> None:
    with rehearsal(tmp_path):
        database = tmp_path / "state" / "sandbox.sqlite3"
        size = database.stat().st_size
        second = bot(tmp_path, "run", "--sandbox", "--for", "5s", BOT_SANDBOX_PORT=str(free_base_port()))
        assert second.returncode == 3, second.stderr
        assert "another rehearsal is running beside this config.yaml" in second.stderr
        assert database.stat().st_size >= size  # not emptied under the first


def test_signals_repeated_while_run_stops_still_end_it_with_0(tmp_path: Path) -> None:
    with rehearsal(tmp_path) as (run, log):
        while run.poll() is None:  # an impatient operator, or a supervisor, signalling again
            run.send_signal(signal.SIGTERM)
            time.sleep(0.02)
        assert run.returncode == 0, log.read_text()
