"""Fixtures shared by several test files."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from bot.ledger.database import normalise_url
from bot.sandbox import Sandbox, start_sandbox
from tests.sandboxsite import Site


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A PostgreSQL schema of this test's own in BOT_TEST_DATABASE_URL, dropped afterwards:
    other tests share that database. Skips when the variable is unset (CI always sets it)."""
    base = os.environ.get("BOT_TEST_DATABASE_URL")
    if not base:
        pytest.skip("BOT_TEST_DATABASE_URL is not set")
    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalise_url(base))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = normalise_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/state/bot.sqlite3"
        return
    with postgres_schema() as url:
        yield url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with postgres_schema() as url:
        yield url


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    """The three emulators, started once per test module (`site` empties them for each test)."""
    started = start_sandbox()
    yield started
    started.stop()


@pytest.fixture
def site(sandbox: Sandbox, tmp_path: Path) -> Site:
    """A campaign folder wired to the module's sandbox, emptied of earlier tests' posts and faults."""
    for server in sandbox.servers.values():
        server.emulator.reset()
        server.faults.clear()
    return Site(tmp_path, sandbox)
