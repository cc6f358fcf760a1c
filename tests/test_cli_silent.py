"""What used to be accepted silently: each now a warning or an error at its line, via `check`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli import OFFLINE_CONFIG, offline_bot, offline_campaign

POST = 'posts:\n  - {id: a, text: "Ask"}\n'


@pytest.fixture
def campaign(tmp_path: Path) -> Path:
    return offline_campaign(tmp_path, {})


@pytest.mark.parametrize(
    ("queue", "code", "expected"),
    [
        (
            'schedule: {every: 4h}\nposts:\n  - {id: a, text: "Ask", at: 2025-01-01T12:00}\n',
            0,
            "calls.yaml:3: warning: post a: at: 2025-01-01 12:00 is in the past: it is not sent",
        ),
        (
            "schedule: {every: 4h}\nexpires: 2025-01-01\n" + POST,
            0,
            "calls.yaml:2: warning: expires: the queue expired at 2025-01-02 00:00 and posts no more",
        ),
        (
            'schedule: {every: 4h}\nposts:\n  - {id: a, text: "Ask", expires: 2025-01-01}\n',
            0,
            "calls.yaml:3: warning: post a: expired at 2025-01-02 00:00: it is not sent",
        ),
        (
            'schedule: {at: ["2025-01-01T12:00"]}\n' + POST,
            0,
            "calls.yaml:1: warning: no slot from now on: this queue will not post",
        ),
        (
            "schedule: {every: 4h, timezone: EST}\n" + POST,
            0,
            "calls.yaml:1: warning: schedule.timezone: timezone 'EST' is a legacy abbreviation; "
            "write the place's zone, probably America/New_York",
        ),
        (
            "schedule: {every: 30s}\n" + POST,
            0,
            "calls.yaml:1: warning: schedule.every: 30s fires 2,880 times a day",
        ),
        (
            'schedule: {every: 4h}\nposts:\n  - {id: yes, text: "Ask"}\n',
            1,
            "calls.yaml:3: id: YAML reads yes, no, on, off, true and false as true/false; quote it",
        ),
        ("", 1, "calls.yaml:1: the file is empty (or only comments)"),
        ("# to be written\n# later\n", 1, "calls.yaml:1: the file is empty (or only comments)"),
    ],
)
def test_a_doubtful_queue_is_said_at_its_line(campaign: Path, queue: str, code: int, expected: str) -> None:
    (campaign / "content" / "calls.yaml").write_text(queue)
    result = offline_bot(campaign, "check")
    assert result.returncode == code, result.stderr
    assert f"content/{expected}" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_a_legacy_zone_in_config_is_a_warning_naming_the_place(campaign: Path) -> None:
    (campaign / "config.yaml").write_text("timezone: EST5EDT\n" + OFFLINE_CONFIG)
    (campaign / "content" / "calls.yaml").write_text("schedule: {every: 4h}\n" + POST)
    result = offline_bot(campaign, "check")
    assert result.returncode == 0
    assert "config.yaml:1: warning: timezone 'EST5EDT' is a legacy abbreviation" in result.stderr
