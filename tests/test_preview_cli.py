"""`preview` and `check` from the outside, on the shipped campaign."""

import hashlib
import json
import os
import subprocess
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from tests import cli
from tests.cli import REPO


def run_bot(*args: str, config: Path = REPO / "config.yaml") -> subprocess.CompletedProcess[str]:
    """The shipped campaign (or `config`), with no secret of the environment set."""
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "SYSTEMROOT")}
    return cli.run_bot(*args, cwd=REPO, env=base, config=config, timeout=60)


# --- the slot rules computed again, independently, for the forms the shipped queues use ---------


def cron_values(field: str, low: int, high: int) -> set[int]:
    if field == "*":
        return set(range(low, high + 1))
    values: set[int] = set()
    for item in field.split(","):
        first, _, last = item.partition("-")
        values |= set(range(int(first), int(last or first) + 1))
    return values


def parse_jitter(text: str | None) -> timedelta:
    if not text:
        return timedelta(0)
    return timedelta(minutes=int(text.removesuffix("m")))


def expected_slots(lo: datetime, hi: datetime) -> set[tuple[str, str, str | None]]:
    """(queue, slot name, pinned post id) of every slot whose nominal time is in [lo, hi)."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    out = set()
    for file in sorted((REPO / "content").glob("*.yaml")):
        data = yaml.safe_load(file.read_text())
        schedule = data["schedule"]
        zone = ZoneInfo(schedule.get("timezone", config["timezone"]))
        start = datetime.combine(data["start"], time(0), zone) if "start" in data else None
        end = (
            datetime.combine(data["expires"] + timedelta(days=1), time(0), zone)
            if "expires" in data
            else None
        )
        minute, hour, dom, month, dow = schedule["cron"].split()
        assert (dom, month) == ("*", "*"), "this reading handles the shipped schedules only"
        day = lo.astimezone(zone).date() - timedelta(days=1)
        while day <= hi.astimezone(zone).date():
            if day.isoweekday() % 7 in cron_values(dow, 0, 6):
                for h in sorted(cron_values(hour, 0, 23)):
                    for m in sorted(cron_values(minute, 0, 59)):
                        when = datetime.combine(day, time(h, m), zone)
                        inside = (start is None or when >= start) and (end is None or when < end)
                        if inside and lo <= when < hi:
                            out.add((file.stem, when.isoformat(timespec="minutes"), None))
            day += timedelta(days=1)
        for post in data["posts"]:
            if "at" in post:
                at = datetime.fromisoformat(str(post["at"])).replace(tzinfo=zone)
                if lo <= at < hi:
                    out.add((file.stem, f"pinned:{post['id']}", post["id"]))
    return out


def test_preview_json_gives_the_slots_of_an_independent_reading_of_the_rules() -> None:
    before = datetime.now(UTC)
    result = run_bot("preview", "--days", "7", "--json")
    after = datetime.now(UTC)
    assert result.returncode == 0, result.stderr
    records: list[dict[str, Any]] = json.loads(result.stdout)
    got = {(r["queue"], r["slot"], r["post_id"] if r["pinned"] else None) for r in records}
    # Jitter can carry a slot across the window's edges; compare away from them.
    margin = timedelta(minutes=15)
    inner = {
        s
        for s in got
        if _nominal(s[1]) is None or before + margin <= _nominal(s[1]) < after + timedelta(days=7) - margin
    }  # type: ignore[operator]
    expected = {
        s
        for s in expected_slots(before, after + timedelta(days=7))
        if s[2] is not None or before + margin <= _nominal(s[1]) < after + timedelta(days=7) - margin  # type: ignore[operator]
    }
    assert inner == expected
    times = [r["time"] for r in records]
    assert times == sorted(times)
    for record in records:
        if record["pinned"]:
            continue
        jitter = {"calls-to-action": 10, "company-asks": 15, "explainer": 0}[record["queue"]]
        delay = datetime.fromisoformat(record["time"]) - datetime.fromisoformat(record["slot"])
        assert timedelta(0) <= delay <= timedelta(minutes=jitter)
        digest = hashlib.sha256(f"{record['queue']}\x00{record['slot']}".encode()).digest()
        assert delay.total_seconds() == int.from_bytes(digest[:8], "big") % (jitter * 60 + 1)


def _nominal(name: str) -> datetime | None:
    return None if name.startswith("pinned:") else datetime.fromisoformat(name)


def test_preview_sends_each_queues_posts_in_file_order_from_the_start() -> None:
    result = run_bot("preview", "--days", "30", "--json", "--platform", "mastodon")
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)
    for file in sorted((REPO / "content").glob("*.yaml")):
        data = yaml.safe_load(file.read_text())
        regular = [p["id"] for p in data["posts"] if "at" not in p]
        sent = [r["post_id"] for r in records if r["queue"] == file.stem and not r["pinned"] and r["post_id"]]
        assert sent == (regular * 10)[: len(sent)]
        assert sent, file.stem
    assert {p["platform"] for r in records for p in r["payloads"]} == {"mastodon"}


def test_preview_filters_one_queue_and_prints_payload_details() -> None:
    result = run_bot("preview", "--days", "30", "--queue", "explainer")
    assert result.returncode == 0, result.stderr
    assert "explainer" in result.stdout and "calls-to-action" not in result.stdout
    assert "part 1/" in result.stdout and "/280" in result.stdout and "/3000 bytes" in result.stdout
    assert "facets: tag NoTechForICE" in result.stdout
    assert "alt: '" in result.stdout


def test_preview_of_an_unknown_queue_is_a_usage_error() -> None:
    result = run_bot("preview", "--queue", "nope")
    assert result.returncode == 2
    assert "no valid queue named 'nope'" in result.stderr
    assert "calls-to-action" in result.stderr


# --- check additions ---------------------------------------------------------------------------


def write_campaign(folder: Path, queue_yaml: str, tier: str = "free") -> Path:
    (folder / "content").mkdir()
    (folder / "content" / "q.yaml").write_text(queue_yaml)
    config = folder / "config.yaml"
    config.write_text(
        "timezone: UTC\n"
        "platforms:\n"
        "  x:\n"
        f"    tier: {tier}\n"
        "    accounts:\n"
        # Secrets as ${VAR:-default}: one written in the file is a warning of its own.
        '      - {name: main, consumer_key: "${K:-a}", consumer_secret: "${S:-b}", access_token: "${T:-c}",\n'
        '         access_token_secret: "${TS:-d}"}\n'
        "  mastodon:\n"
        "    accounts:\n"
        '      - {name: main, api_base_url: https://m.example, access_token: "${M:-t}"}\n'
    )
    return config


def test_check_reports_a_text_too_long_at_its_text_line(tmp_path: Path) -> None:
    config = write_campaign(
        tmp_path,
        "schedule: {cron: '0 9 * * *'}\nposts:\n  - id: ok\n    text: fine\n"
        f'  - id: long\n    text: "{"漢" * 134}"\n',
    )
    result = run_bot("check", config=config)
    assert result.returncode == 1
    assert result.stderr.startswith(str(tmp_path / "content/q.yaml:6: "))
    assert (
        "content/q.yaml:6: post 'long' is too long on x: 282 weighted characters, limit 280 "
        "(14 of them the added #NoTechForICE); shorten it, or give a shorter `x:` text\n"
    ) in result.stderr
    assert "mastodon" not in result.stderr  # 134 + the hashtag fits in 500


def test_check_warns_when_schedules_exceed_the_x_tier(tmp_path: Path) -> None:
    queue = "schedule: {every: 1h}\nwhen_exhausted: repeat\nposts:\n  - id: a\n    text: hello\n"
    result = run_bot("check", config=write_campaign(tmp_path, queue))
    assert result.returncode == 0, result.stderr
    assert (
        "config.yaml:6: warning: x account 'main': the schedules send up to 24 posts in 24 hours"
        in result.stderr
    )
    assert "the free tier allows 17" in result.stderr
    basic = tmp_path / "basic"
    basic.mkdir()
    assert "tier" not in run_bot("check", config=write_campaign(basic, queue, tier="basic")).stderr


def test_check_summary_shows_the_next_three_slots() -> None:
    result = run_bot("check")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip().startswith("next slots:")]
    assert len(lines) == 3
    assert all(line.count(",") == 2 for line in lines)


def test_preview_for_one_platform_lists_only_the_queues_that_go_there() -> None:
    result = run_bot("preview", "--days", "7", "--json", "--platform", "instagram")
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)
    # calls-to-action goes to X, Bluesky and Mastodon only: none of its slots is Instagram's.
    assert records and "calls-to-action" not in {r["queue"] for r in records}
    assert all(p["platform"] == "instagram" for r in records for p in r["payloads"])
