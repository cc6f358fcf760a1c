"""`retract` said twice or tried first, and `status` counting posts in the campaign's own time."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from bot.ledger.deliveries import open_ledger
from bot.ledger.schema import DeliveryKey
from tests.cli import site_bot
from tests.sandboxsite import PLATFORMS, Site

QUEUE = """\
schedule: {every: 1h}
posts:
  - id: thread
    thread: ["Part one of the story.", "Part two of the story."]
"""


bot = site_bot


def test_retract_dry_run_then_retract_then_already_retracted(site: Site) -> None:
    site.write_queue("calls", QUEUE)
    assert bot(site, "post", "calls").returncode == 0
    dry = bot(site, "retract", "calls", "thread", "--dry-run")
    assert dry.returncode == 0 and dry.stdout.count("would retract ") == 6
    assert all(len(site.live_texts(p)) == 2 for p in PLATFORMS)  # nothing touched
    assert bot(site, "retract", "calls", "thread").stdout.count(" retracted: ") == 6
    again = bot(site, "retract", "calls", "thread")
    assert again.returncode == 0
    assert sorted(again.stdout.splitlines()) == sorted(
        f"{p}/main calls/thread: already retracted" for p in PLATFORMS
    )


UNSET = (
    "X_CONSUMER_KEY",
    "X_CONSUMER_SECRET",
    "X_ACCESS_TOKEN",
    "X_ACCESS_TOKEN_SECRET",
    "BSKY_APP_PASSWORD",
)


def test_retract_cancels_the_copies_held_for_unset_secrets_so_none_goes_out_later(site: Site) -> None:
    site.write_queue("asks", 'schedule: {every: 1d}\nposts:\n  - {id: ask, text: "Drop the contract"}\n')
    posted = bot(site, "post", "asks", "ask", drop=UNSET)
    assert posted.returncode == 0, posted.stderr
    assert "held x/main" in posted.stderr and "held bluesky/main" in posted.stderr
    assert site.live_texts("mastodon") == ["Drop the contract #NoTechForICE"]

    dry = bot(site, "retract", "asks", "ask", "--dry-run", drop=UNSET)
    assert (
        dry.returncode == 0 and "asks/ask: would cancel before sending on bluesky/main, x/main" in dry.stdout
    )
    assert "would retract mastodon/main asks/ask part 1" in dry.stdout
    retracted = bot(site, "retract", "asks", "ask", drop=UNSET)
    assert retracted.returncode == 0, retracted.stderr
    lines = retracted.stdout.splitlines()
    assert lines[0] == "asks/ask: cancelled before sending on bluesky/main, x/main"
    assert lines[1].startswith("mastodon/main asks/ask part 1 (cycle 1) retracted: http")
    assert site.live_texts("mastodon") == []
    status = bot(site, "status", "--json", drop=UNSET)
    [queue] = json.loads(status.stdout)["queues"]
    assert queue["held"] == [] and queue["pending"] == 0

    # The secrets are set: nothing of the retracted post goes out, anywhere.
    assert bot(site, "run", "--once").returncode == 0
    assert all(site.live_texts(p) == [] for p in PLATFORMS)

    again = bot(site, "retract", "asks", "ask")
    assert again.returncode == 0
    assert sorted(again.stdout.splitlines()) == sorted(
        f"{p}/main asks/ask: already retracted" for p in PLATFORMS
    )
    for args in (["asks", "ask"], ["asks", "ask", "--dry-run"]):
        resent = bot(site, "post", *args)
        assert resent.returncode == 1 and resent.stdout == ""
        assert resent.stderr.strip() == "refused: asks/ask was retracted; to send it again, give it a new id"
    assert all(site.live_texts(p) == [] for p in PLATFORMS)


def test_status_counts_posts_in_the_campaigns_timezone(site: Site) -> None:
    site.config.write_text(site.config.read_text().replace("timezone: UTC", "timezone: America/New_York"))
    site.write_queue("calls", QUEUE)
    assert bot(site, "post", "calls").returncode == 0
    status = json.loads(bot(site, "status", "--json").stdout)
    [calls] = status["queues"]
    assert calls["posted"] == 1  # one thread, whatever its three platforms and two parts
    assert calls["next_slot"].endswith(("-05:00", "-04:00"))
    assert all(a["last_post"].endswith(("-05:00", "-04:00")) for a in status["accounts"])


def test_status_text_names_the_unit_of_each_count(site: Site) -> None:
    site.write_queue("calls", QUEUE)  # a thread of two parts
    assert bot(site, "post", "calls").returncode == 0
    lines = bot(site, "status").stdout.splitlines()
    # One thread on three networks: 3 copies in the last day, 1 post in its queue, 2 posts each network.
    assert lines[1].startswith("last 24 h: 3 posts sent, 0 failed (one per post and account), ")
    assert lines[2] == "queues (each post counted once, whatever its accounts and thread parts):"
    assert "posted 1, failed 0, pending 0" in lines[3]
    assert "accounts (each thread part counts, as the networks and `posts_per_day` count):" in lines
    assert sum(" 2 posts in 24h" in line for line in lines) == 3


def test_retract_of_a_sent_post_not_found_cancels_it_so_no_worker_sends_it_later(site: Site) -> None:
    """A worker died after its call (the answer lost, nothing out there yet): retract finds
    nothing to delete, and must also keep the next worker from resuming and sending it."""
    site.write_queue(
        "asks",
        'schedule: {every: 1d}\nplatforms: [mastodon]\nposts:\n  - {id: ask, text: "Drop the contract"}\n',
    )
    key = DeliveryKey("asks", "ask", 1, 0, "mastodon", "main")
    before = datetime.now(UTC) - timedelta(minutes=5)  # its call long over
    ledger = open_ledger(site.database)
    try:
        assert ledger.claim_delivery(
            key, "gone-worker", before, timedelta(seconds=-1), lambda: "3lnonce2222a"
        )
        assert ledger.record_attempt(
            key, "gone-worker", "Drop the contract #NoTechForICE", before, timedelta(seconds=-1)
        )
    finally:
        ledger.close()
    retracted = bot(site, "retract", "asks", "ask")
    assert retracted.returncode == 0, retracted.stderr
    assert "not found on mastodon (sent, never confirmed): cancelled, nothing to delete" in retracted.stdout
    resumed = bot(site, "run", "--once")  # the queue's slot is due too: it must not send it either
    assert site.live_texts("mastodon") == [], resumed.stderr
    ledger = open_ledger(site.database)
    try:
        assert {r.state for r in ledger.deliveries_for_post("asks", "ask")} == {"retracted"}
    finally:
        ledger.close()


def test_retract_while_a_dead_workers_call_may_still_land_says_to_retract_again(site: Site) -> None:
    site.write_queue(
        "asks",
        'schedule: {every: 1d}\nplatforms: [mastodon]\nposts:\n  - {id: ask, text: "Drop the contract"}\n',
    )
    key = DeliveryKey("asks", "ask", 1, 0, "mastodon", "main")
    just_now = datetime.now(UTC)
    ledger = open_ledger(site.database)
    try:
        assert ledger.claim_delivery(
            key, "gone-worker", just_now, timedelta(seconds=-1), lambda: "3lnonce2222a"
        )
        assert ledger.record_attempt(key, "gone-worker", "Drop the contract", just_now, timedelta(seconds=-1))
    finally:
        ledger.close()
    retracted = bot(site, "retract", "asks", "ask")
    assert retracted.returncode == 3, retracted.stdout + retracted.stderr
    assert (
        "its last call may still land until" in retracted.stdout and "retract again then" in retracted.stdout
    )
    ledger = open_ledger(site.database)
    try:
        assert {r.state for r in ledger.deliveries_for_post("asks", "ask")} == {"claimed"}  # not cancelled
    finally:
        ledger.close()


def test_a_second_post_with_the_same_x_text_is_never_taken_for_the_first(site: Site) -> None:
    """X refuses the repeat as duplicate content; the look that follows finds the first post's
    tweet, which is never this post's copy: it fails, and retracting it deletes nothing."""
    site.write_queue(
        "dup",
        "schedule: {every: 1d}\nplatforms: [x]\nposts:\n"
        '  - {id: d1, text: "Same text"}\n  - {id: d3, text: "Same text"}\n',
    )
    checked = bot(site, "check")
    assert "dup.yaml:5: warning: post 'd3' sends X the same text as post 'd1'" in checked.stderr
    assert bot(site, "post", "dup", "d1").returncode == 0
    second = bot(site, "post", "dup", "d3")
    assert second.returncode == 3, second.stdout + second.stderr
    assert "the copy found is dup/d1's (the same text), not this post's" in second.stderr
    assert "dup/d3 posted" not in second.stdout
    retracted = bot(site, "retract", "dup", "d3")
    assert retracted.returncode == 0, retracted.stdout + retracted.stderr
    assert site.live_texts("x") == ["Same text #NoTechForICE"]  # d1's tweet is still up


def test_posting_to_one_platform_says_the_others_will_not_get_it_at_a_slot(site: Site) -> None:
    site.write_queue("asks", 'schedule: {every: 1d}\nposts:\n  - {id: ask, text: "Drop the contract"}\n')
    one = bot(site, "post", "asks", "--platform", "mastodon")
    assert one.returncode == 0, one.stderr
    assert (
        "note: asks/ask now counts as sent this round, so no slot sends it to bluesky, x; "
        "`post asks ask` sends it there" in one.stderr
    )
    rest = bot(site, "post", "asks", "ask")
    assert rest.returncode == 0, rest.stderr
    assert all(site.live_texts(p) == ["Drop the contract #NoTechForICE"] for p in PLATFORMS)


def test_a_renamed_queue_file_never_sends_its_posts_again(site: Site) -> None:
    body = "schedule: {every: 1m}\nstart: 2026-01-01\nplatforms: [mastodon]\nposts:\n"
    body += '  - {id: f1, text: "First ask"}\n  - {id: f2, text: "Second ask"}\n'
    first = site.write_queue("fast", body)
    assert bot(site, "run", "--once").returncode == 0
    assert site.live_texts("mastodon") == ["First ask #NoTechForICE"]
    first.rename(first.with_name("faster.yaml"))  # staff tidy the file's name
    renamed = bot(site, "run", "--once")
    assert "holding queue faster: post f1 already went out as fast/f1" in renamed.stderr, renamed.stderr
    assert "write `queue: fast` in faster.yaml" in renamed.stderr
    assert site.live_texts("mastodon") == ["First ask #NoTechForICE"]
    # As the message says: the file keeps the queue's name, and the queue goes on from there.
    (first.with_name("faster.yaml")).write_text("queue: fast\n" + body)
    again = bot(site, "run", "--once")
    assert again.returncode == 0 and "holding" not in again.stderr, again.stderr
    assert bot(site, "post", "fast").returncode == 0  # the queue's next post: f2, not f1 again
    assert site.live_texts("mastodon") == ["First ask #NoTechForICE", "Second ask #NoTechForICE"]
