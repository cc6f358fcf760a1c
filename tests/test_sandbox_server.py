"""The shared emulator layer, driven over real HTTP with a minimal emulator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from bot.sandbox.server import Emulator, Request, Response, SandboxServer


class NotesEmulator(Emulator):
    """A platform with one write (POST /notes) and one read (GET /notes)."""

    name = "notes"

    def __init__(self) -> None:
        super().__init__()
        self.notes: list[dict[str, Any]] = []

    def handle(self, request: Request) -> Response:
        if (request.method, request.path) == ("POST", "/notes"):
            with self.lock:
                note = {"id": str(len(self.notes) + 1), "text": request.json()["text"], "author": "us"}
                self.notes.append(note)
            return Response.json(201, note)
        if (request.method, request.path) == ("GET", "/notes"):
            return Response.json(200, self.notes)
        return Response.json(404, {"error": "not found"})

    def error_response(self, status: int) -> Response:
        return Response.json(status, {"error": "notes are unwell"})

    def rate_limited_response(self, reset_at: Any) -> Response:
        return Response.json(429, {"error": "slow down"}, {"x-reset": str(int(reset_at.timestamp()))})

    def add_audience(self, kind: str, author: str, text: str, to: str | None) -> dict[str, Any]:
        note = {"id": str(len(self.notes) + 1), "text": text, "author": author, "kind": kind}
        self.notes.append(note)
        return note

    def state_posts(self) -> list[dict[str, Any]]:
        return list(self.notes)

    def reset(self) -> None:
        super().reset()
        self.notes.clear()


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    srv = SandboxServer(NotesEmulator()).start()
    yield srv
    srv.stop()


def fault(server: SandboxServer, **spec: Any) -> None:
    assert requests.post(f"{server.base_url}/_sandbox/faults", json=spec, timeout=5).ok


def post_note(server: SandboxServer, text: str) -> requests.Response:
    return requests.post(f"{server.base_url}/notes", json={"text": text}, timeout=5)


def state(server: SandboxServer) -> list[dict[str, Any]]:
    return requests.get(f"{server.base_url}/_sandbox/state", timeout=5).json()["posts"]


def test_one_date_header_on_every_answer(server: SandboxServer) -> None:
    response = post_note(server, "hello")
    assert response.status_code == 201
    assert response.raw.headers.getlist("Date") and len(response.raw.headers.getlist("Date")) == 1


def test_status_fault_answers_the_platform_error_without_applying(server: SandboxServer) -> None:
    fault(server, method="POST", path="/notes", status=503, times=1)
    failed = post_note(server, "first try")
    assert (failed.status_code, failed.json()) == (503, {"error": "notes are unwell"})
    assert state(server) == []
    assert post_note(server, "second try").status_code == 201  # `times` used up
    assert [n["text"] for n in state(server)] == ["second try"]


def test_status_fault_after_the_write(server: SandboxServer) -> None:
    fault(server, method="POST", path="/notes", status=503, apply=True)
    assert post_note(server, "applied anyway").status_code == 503
    assert [n["text"] for n in state(server)] == ["applied anyway"]


@pytest.mark.parametrize(("drop", "applied"), [("before", []), ("after", ["lost answer"])])
def test_dropped_connection(server: SandboxServer, drop: str, applied: list[str]) -> None:
    fault(server, method="POST", path="/notes", drop=drop)
    with pytest.raises(requests.ConnectionError):
        post_note(server, "lost answer")
    assert [n["text"] for n in state(server)] == applied


def test_rate_limit_fault_carries_the_reset(server: SandboxServer) -> None:
    fault(server, method="POST", path="/not*", status=429, reset_in=30, times=2)
    first, second, third = (post_note(server, t) for t in ("a", "b", "c"))
    assert (first.status_code, second.status_code, third.status_code) == (429, 429, 201)
    assert "x-reset" in first.headers


def test_audience_burst_and_reset(server: SandboxServer) -> None:
    answer = requests.post(
        f"{server.base_url}/_sandbox/audience",
        json={"kind": "hashtag", "author": "alice", "text": "#NoTechForICE", "count": 3},
        timeout=5,
    )
    assert len(answer.json()["posts"]) == 3
    assert [n["author"] for n in state(server)] == ["alice"] * 3
    assert requests.post(f"{server.base_url}/_sandbox/reset", timeout=5).ok
    assert state(server) == []


def test_bad_control_request_is_a_400(server: SandboxServer) -> None:
    answer = requests.post(f"{server.base_url}/_sandbox/faults", json={"path": "/notes"}, timeout=5)
    assert answer.status_code == 400
    assert "method" in answer.json()["error"]
