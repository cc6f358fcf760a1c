"""A repeating queue and X's duplicate rule: X gets the first round only, and nothing errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.cli import site_bot
from tests.sandboxsite import Site

bot = site_bot


def test_a_repeating_queue_leaves_x_out_of_later_rounds_without_an_error(site: Site) -> None:
    first = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=30)  # after check and preview
    times = ", ".join(f'"{first + timedelta(seconds=3 * n):%Y-%m-%dT%H:%M:%S}"' for n in range(3))
    site.write_queue(
        "loop",
        f'schedule: {{at: [{times}]}}\nwhen_exhausted: repeat\nposts:\n  - {{id: a, text: "Ask again"}}\n',
    )
    check = bot(site, "check")
    assert "loop.yaml:2: warning: when_exhausted: repeat: X refuses" in check.stderr
    preview = bot(site, "preview", "--days", "1").stdout
    assert preview.count("x/main  not sent: X refuses a text it already posted") == 2

    last = first + timedelta(seconds=6)
    assert datetime.now(UTC) < first - timedelta(seconds=3), "check and preview took too long"
    run = bot(site, "run", "--for", f"{int((last - datetime.now(UTC)).total_seconds()) + 6}s")
    assert run.returncode == 0, run.stderr
    assert "ERROR" not in run.stderr and "rejected" not in run.stderr, run.stderr
    assert site.live_texts("x") == ["Ask again #NoTechForICE"]
    assert site.live_texts("mastodon") == ["Ask again #NoTechForICE"] * 3
