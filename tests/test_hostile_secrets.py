"""Secrets under attack: the ledger's errors must not carry a session's tokens into any output."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.sandboxsite import Site

REPO = Path(__file__).resolve().parent.parent
QUEUE = """\
    schedule: {every: 5s}
    posts:
      - id: first
        text: "First ask: drop the contracts."
      - id: second
        text: "Second ask: call your representative."
"""


def run(site: Site, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "--config", str(site.config), *args],
        cwd=REPO,
        env={**site.env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_session_the_database_refuses_to_store_leaves_its_tokens_out_of_every_output(site: Site) -> None:
    site.write_queue("calls", QUEUE)
    assert run(site, "post", "calls", "--platform", "x").returncode == 0  # the ledger exists now
    with sqlite3.connect(site.root / "state" / "bot.sqlite3") as db:
        db.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON sessions BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
        )
    outputs = []
    for command in (["post", "calls", "first", "--platform", "bluesky"], ["run", "--for", "8s"]):
        result = run(site, *command)
        outputs.append(result.stdout + result.stderr)
    output = "".join(outputs)
    assert "IntegrityError" in output  # the refusal is reported...
    assert "eyJ" not in output  # a JWT: the access or the refresh token
    assert "[parameters:" not in output and "disk says no" not in output  # ...by its type alone


def test_a_database_password_with_an_unescaped_at_sign_is_refused_by_check_without_showing_it(
    tmp_path: Path,
) -> None:
    (tmp_path / "content").mkdir()
    config = tmp_path / "config.yaml"
    config.write_text("database: ${DATABASE_URL}\nplatforms:\n  x: {enabled: false}\n")
    for command in (["check"], ["status"]):
        result = subprocess.run(
            [sys.executable, "-m", "bot", "--config", str(config), *command],
            cwd=REPO,
            env={
                "PATH": "/usr/bin:/bin",
                "PYTHONPATH": str(REPO),
                "DATABASE_URL": "postgres://bot:s3cr@t@db.example/c",
            },
            capture_output=True,
            text=True,
            timeout=60,
        )
        output = result.stdout + result.stderr
        assert result.returncode == 1, output
        assert "config.yaml:1: database:" in output and "%40" in output
        assert "s3cr" not in output and "t@db" not in output and "Traceback" not in output


def test_a_bluesky_session_is_sealed_at_rest_and_reused_across_runs(site: Site) -> None:
    site.write_queue("calls", QUEUE)
    first = run(site, "post", "calls", "first", "--platform", "bluesky")
    assert first.returncode == 0, first.stderr
    database = site.root / "state" / "bot.sqlite3"

    def stored() -> str:
        with sqlite3.connect(database) as db:
            (blob,) = db.execute("SELECT blob FROM sessions WHERE platform = 'bluesky'").fetchone()
        return str(blob)

    sealed = stored()
    assert sealed.startswith("sealed1:")
    assert "eyJ" not in sealed and "did:plc" not in sealed and "xrpc" not in sealed  # no token, no PDS
    second = run(site, "post", "calls", "second", "--platform", "bluesky")
    assert second.returncode == 0, second.stderr
    assert stored() == sealed  # opened and reused: no new session was created (nor saved)
