from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.campaign.config import load_config
from bot.campaign.model import Config, Image, LinkCard, Part, Queue
from bot.errors import Problem
from bot.planning.content import load_queues
from tests.imagefiles import png

CONFIG = """\
timezone: America/New_York
platforms:
  x:
    accounts:
      - {name: main, consumer_key: a, consumer_secret: b, access_token: c, access_token_secret: d}
  bluesky:
    accounts:
      - {name: main, handle: h.example, app_password: p}
  mastodon:
    accounts:
      - {name: main, api_base_url: https://mastodon.example, access_token: t}
      - {name: allies, api_base_url: https://other.example, access_token: t}
"""

TWO_X_ACCOUNTS = CONFIG.replace(
    "      - {name: main, consumer_key",
    "      - {name: second, consumer_key: a, consumer_secret: b, access_token: c2, access_token_secret: d}\n"
    "      - {name: main, consumer_key",
)


@pytest.fixture
def campaign(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # messages show paths relative to the current folder
    (tmp_path / "content" / "images").mkdir(parents=True)
    (tmp_path / "content" / "images" / "rally.png").write_bytes(png(1, 1))
    (tmp_path / "secret.png").write_bytes(png(1, 1))
    (tmp_path / "config.yaml").write_text(CONFIG)
    return tmp_path


def load(
    folder: Path, files: dict[str, str], config_text: str = CONFIG
) -> tuple[Config, list[Queue], list[Problem]]:
    (folder / "config.yaml").write_text(config_text)
    for name, text in files.items():
        (folder / "content" / name).write_text(text)
    config, _ = load_config(folder / "config.yaml", {})
    queues, problems = load_queues(config)
    return config, queues, problems


def messages(problems: list[Problem]) -> list[str]:
    return [str(p) for p in problems]


FULL = """\
schedule:
  cron: "0 9,13,17 * * 1-5"
  jitter: 10m
  quiet_hours: "22:00-07:00"
start: 2026-12-01
expires: 2027-01-31
order: shuffle
when_exhausted: repeat
platforms: [x, bluesky]
accounts: [main]
language: en
bluesky: {language: en}
posts:
  - id: petition-launch
    text: "Tech companies selling tools to ICE: drop the contracts. Sign: https://example.org/p"
    x: "A shorter text for X"
    bluesky: {link_card: true}
    images: [{path: images/rally.png, alt: "People holding a banner"}]
  - id: thread-employees
    thread:
      - "Microsoft employees asked their company to drop its ICE contract: https://example.org/letter"
      - text: "Salesforce employees asked the same about Border Patrol."
        images: [{path: images/rally.png, alt: "A crowd"}]
    x: {thread: ["Shorter part one", "Shorter part two"]}
    bluesky: {link_card: {title: "The letter", description: "What they asked"}}
  - id: day-of-action
    text: "Today: call your representative."
    at: 2026-12-10T12:00
    expires: 2026-12-11
"""


def test_every_field_of_a_queue_is_read(campaign: Path) -> None:
    _, queues, problems = load(campaign, {"calls-to-action.yaml": FULL})
    # Only what X does to a repeating queue (docs/design.md, cycles).
    assert [p.message.split(":")[0] for p in problems] == ["when_exhausted"]
    (queue,) = queues
    new_york = ZoneInfo("America/New_York")
    assert queue.name == "calls-to-action"
    assert queue.schedule.kind == "cron"
    assert queue.schedule.cron == "0 9,13,17 * * 1-5"
    assert queue.schedule.timezone == "America/New_York"  # from the config
    assert queue.schedule.jitter == timedelta(minutes=10)
    assert queue.schedule.quiet_hours == (time(22), time(7))
    assert queue.start == datetime(2026, 12, 1, tzinfo=new_york)
    assert queue.expires == datetime(2027, 2, 1, tzinfo=new_york)  # a date: the whole of that day
    assert (queue.order, queue.when_exhausted) == ("shuffle", "repeat")
    assert queue.platforms == ("x", "bluesky")
    assert queue.accounts == ("main",)
    assert queue.hashtags == ("#NoTechForICE",)  # the config's first
    assert queue.language == "en"
    assert queue.defaults["bluesky"].language == "en"

    launch, thread, pinned = queue.posts
    rally = Image("images/rally.png", "People holding a banner")
    assert launch.parts == (Part(launch.parts[0].text, (rally,)),)
    assert launch.overrides["x"].parts == (Part("A shorter text for X", (rally,)),)  # images stay
    assert launch.overrides["bluesky"].link_card is True
    assert launch.line == 14

    assert thread.is_thread
    assert thread.parts[1].images == (Image("images/rally.png", "A crowd"),)
    x_parts = thread.overrides["x"].parts
    assert x_parts is not None
    assert [p.text for p in x_parts] == ["Shorter part one", "Shorter part two"]
    assert thread.overrides["bluesky"].link_card == LinkCard(
        title="The letter", description="What they asked"
    )

    assert pinned.at == datetime(2026, 12, 10, 12, 0, tzinfo=new_york)
    assert pinned.expires == datetime(2026, 12, 12, tzinfo=new_york)


def test_defaults_and_other_schedule_kinds(campaign: Path) -> None:
    files = {
        "every.yaml": "queue: renamed\nschedule: {every: 4h, timezone: Europe/Berlin}\n"
        "posts: [{id: a, text: hi}]\n",
        "at.yaml": "schedule:\n  at: [2026-12-10T12:00, '2026-12-11 08:30']\nposts: [{id: a, text: hello}]\n",
    }
    config, queues, problems = load(campaign, files)
    assert problems == []
    at, every = queues
    assert every.name == "renamed"
    assert every.schedule.every == timedelta(hours=4)
    assert every.platforms == config.enabled_platforms()
    assert every.accounts is None
    berlin = ZoneInfo("Europe/Berlin")
    assert at.name == "at"
    assert [a.astimezone(UTC) for a in at.schedule.at] == [
        datetime(2026, 12, 10, 17, 0, tzinfo=UTC),
        datetime(2026, 12, 11, 13, 30, tzinfo=UTC),
    ]
    assert every.schedule.timezone == "Europe/Berlin" and berlin.key == "Europe/Berlin"


def test_mastodon_options_and_queue_defaults(campaign: Path) -> None:
    text = """\
schedule: {every: 1d}
mastodon: {visibility: unlisted}
posts:
  - id: detention
    text: "About detention."
    mastodon: {spoiler_text: "immigration detention", visibility: public}
"""
    _, (queue,), problems = load(campaign, {"q.yaml": text})
    assert problems == []
    assert queue.defaults["mastodon"].visibility == "unlisted"
    options = queue.posts[0].overrides["mastodon"]
    assert (options.spoiler_text, options.visibility, options.parts) == (
        "immigration detention",
        "public",
        None,
    )


def broken(campaign: Path, body: str, schedule: str = "schedule: {every: 1d}\n") -> list[str]:
    _, queues, problems = load(campaign, {"q.yaml": schedule + body})
    assert queues == []  # a file with an error yields no queue
    return messages(problems)


def test_missing_and_duplicate_ids(campaign: Path) -> None:
    body = "posts:\n  - text: no id\n  - id: a\n    text: one\n  - id: a\n    text: two\n"
    assert broken(campaign, body) == [
        "content/q.yaml:3: post has no id: give it one, such as `id: petition-launch`",
        "content/q.yaml:6: id 'a' is used twice in this queue (first at line 4); "
        "ids must be unique because delivery state is kept by id",
    ]


def test_missing_alt_text(campaign: Path) -> None:
    body = "posts:\n  - id: a\n    text: hi\n    images:\n      - path: images/rally.png\n"
    assert broken(campaign, body) == [
        "content/q.yaml:6: image has no alt text: describe it for people who cannot see it (alt: ...)"
    ]


def test_images_outside_content_or_missing(campaign: Path) -> None:
    absolute = campaign / "secret.png"
    body = f"""\
posts:
  - id: a
    text: hi
    images:
      - {{path: ../secret.png, alt: x}}
      - {{path: "{absolute}", alt: x}}
      - {{path: images/nope.png, alt: x}}
      - {{path: images/../../secret.png, alt: x}}
"""
    assert broken(campaign, body) == [
        "content/q.yaml:6: image path '../secret.png' leaves the content folder; keep images inside it",
        f"content/q.yaml:7: image path '{absolute}' is absolute; write it relative to the content folder",
        "content/q.yaml:8: image 'images/nope.png' not found in the content folder",
        "content/q.yaml:9: image path 'images/../../secret.png' leaves the content folder; "
        "keep images inside it",
    ]


def test_unknown_platform_and_account(campaign: Path) -> None:
    body = "platforms: [x, twitter, mastodn]\naccounts: [main, mian, nobody]\nposts: [{id: a, text: hi}]\n"
    assert broken(campaign, body) == [
        "content/q.yaml:2: platforms: unknown platform 'twitter' (did you mean 'x'?); "
        "use x, bluesky, mastodon, facebook or instagram",
        "content/q.yaml:2: platforms: unknown platform 'mastodn' (did you mean 'mastodon'?); "
        "use x, bluesky, mastodon, facebook or instagram",
        "content/q.yaml:3: accounts: unknown account 'mian' (did you mean 'main'?); accounts on x: main",
        "content/q.yaml:3: accounts: unknown account 'nobody'; accounts on x: main",
    ]


def test_two_schedule_kinds_invalid_cron_and_unknown_timezone(campaign: Path) -> None:
    both = 'schedule:\n  cron: "0 9 * * *"\n  every: 4h\n'
    assert broken(campaign, "posts: [{id: a, text: hi}]\n", both) == [
        "content/q.yaml:3: schedule: has both cron and every; give exactly one of cron, every or at"
    ]
    cron = 'schedule:\n  cron: "0 25 * * mon-fry"\n  timezone: Europe/Berln\n'
    assert broken(campaign, "posts: [{id: a, text: hi}]\n", cron) == [
        "content/q.yaml:2: schedule.cron: invalid: hour field '25': 25 is outside 0-23",
        "content/q.yaml:3: schedule.timezone: unknown timezone 'Europe/Berln' "
        "(did you mean 'Europe/Berlin'?)",
    ]


def test_expires_before_start_for_queue_and_post(campaign: Path) -> None:
    body = """\
start: 2027-01-01
expires: 2026-12-31
posts:
  - id: a
    text: hi
    start: 2026-12-10T12:00
    expires: 2026-12-10T09:00
"""
    assert broken(campaign, body) == [
        "content/q.yaml:3: expires (2027-01-01T00:00:00-05:00) is not after "
        "start (2027-01-01T00:00:00-05:00): "
        "nothing could ever be sent",
        "content/q.yaml:8: expires (2026-12-10T09:00:00-05:00) is not after "
        "start (2026-12-10T12:00:00-05:00): "
        "nothing could ever be sent",
    ]


def test_yaml_syntax_error_and_not_a_mapping(campaign: Path) -> None:
    _, queues, problems = load(
        campaign,
        {
            "a.yaml": "schedule: {every: 1d}\nposts:\n  - id: a\n    text: [unclosed\n",
            "b.yaml": "- just\n- a list\n",
            "good.yaml": "schedule: {every: 1d}\nposts: [{id: a, text: hi}]\n",
        },
    )
    assert [q.name for q in queues] == ["good"]  # one broken file does not hide the others
    assert [(p.file, p.line) for p in problems] == [("content/a.yaml", 5), ("content/b.yaml", 1)]
    assert problems[0].message.startswith("YAML syntax error:")
    assert (
        problems[1].message == "a queue file should be a mapping with schedule: and posts: (key: value lines)"
    )


def test_unknown_keys_get_did_you_mean(campaign: Path) -> None:
    body = """\
when_exhausted: repaet
posts:
  - id: a
    txt: hi
    images: [{path: images/rally.png, alt: x, alt_text: y}]
    x: {spoiler_text: cw}
"""
    assert broken(campaign, body, "schedule: {every: 1d, jiter: 5m}\n") == [
        "content/q.yaml:1: schedule: unknown key 'jiter' (did you mean 'jitter'?)",
        "content/q.yaml:2: when_exhausted: 'repaet' should be stop or repeat (did you mean 'repeat'?)",
        "content/q.yaml:4: posts[0]: needs text or thread",
        "content/q.yaml:5: posts[0]: unknown key 'txt' (did you mean 'text'?)",
        "content/q.yaml:6: posts[0].images[0]: unknown key 'alt_text' (did you mean 'alt'?)",
        "content/q.yaml:7: x: spoiler_text applies only to mastodon",
    ]


def test_every_error_of_a_file_is_reported(campaign: Path) -> None:
    body = """\
platforms: [x]
posts:
  - id: one
    thread: []
  - id: two
    text: ""
  - id: three
    text: hi
    at: 2026-12-10
"""
    assert broken(campaign, body) == [
        "content/q.yaml:5: thread: should be a list of parts (each a text, or {text, images})",
        "content/q.yaml:7: posts[1].text: should be non-empty text",
        "content/q.yaml:10: at: 2026-12-10 has no time of day; write it like 2026-12-10T12:00",
    ]


def test_same_text_to_several_x_accounts_warns_with_the_automation_rule(campaign: Path) -> None:
    files = {
        "shared.yaml": "schedule: {every: 1d}\nplatforms: [x]\nposts:\n  - {id: a, text: Same words}\n",
        "per-account.yaml": "schedule: {every: 1d}\naccounts: [main]\n"
        "posts:\n  - {id: b, text: Other words}\n",
    }
    _, queues, problems = load(campaign, files, TWO_X_ACCOUNTS)
    assert len(queues) == 2  # a warning, not an error
    assert messages(problems) == [
        "content/shared.yaml:4: warning: 1 post of queue 'shared' (first: 'a') send the same text to several "
        "X accounts (main, second): X's automation rules forbid posting identical or substantially similar "
        "content across multiple accounts; give each X account its own text or its own queue"
    ]


def test_same_text_in_two_queues_for_different_x_accounts_warns(campaign: Path) -> None:
    files = {
        "one.yaml": "schedule: {every: 1d}\nplatforms: [x]\naccounts: [main]\n"
        "posts:\n  - {id: a, text: Same  words}\n",
        "two.yaml": "schedule: {every: 1d}\nplatforms: [x]\naccounts: [second]\n"
        "posts:\n  - {id: b, text: same words}\n",
    }
    _, _, problems = load(campaign, files, TWO_X_ACCOUNTS)
    assert [(p.file, p.severity) for p in problems] == [
        ("content/one.yaml", "warning"),
        ("content/two.yaml", "warning"),
    ]
    assert all("X's automation rules" in p.message for p in problems)


def test_duplicate_queue_names(campaign: Path) -> None:
    files = {
        "a.yaml": "queue: daily\nschedule: {every: 1d}\nposts: [{id: a, text: hi}]\n",
        "b.yaml": "queue: daily\nschedule: {every: 1d}\nposts: [{id: a, text: hi}]\n",
    }
    _, queues, problems = load(campaign, files)
    assert [q.file.name for q in queues] == ["a.yaml"]
    assert messages(problems) == [
        "content/b.yaml:1: queue name 'daily' is already used by content/a.yaml: "
        "give this file another `queue:` name"
    ]


def test_stray_yml_files_and_a_missing_content_folder_are_reported(campaign: Path) -> None:
    (campaign / "content" / "old.yml").write_text("schedule: {every: 1d}\nposts: [{id: a, text: hi}]\n")
    _, queues, problems = load(campaign, {"q.yaml": "schedule: {every: 1d}\nposts: [{id: a, text: hi}]\n"})
    assert [q.name for q in queues] == ["q"]
    assert messages(problems) == ["content/old.yml:1: warning: ignored: queue files must end in .yaml"]
    (campaign / "config.yaml").write_text(CONFIG + "content: elsewhere/\n")
    config, _ = load_config(campaign / "config.yaml", {})
    line = CONFIG.count("\n") + 1  # the `content:` line
    expected = f"config.yaml:{line}: content folder elsewhere does not exist"
    assert messages(load_queues(config)[1]) == [expected]


def test_schedule_values_that_do_not_parse(campaign: Path) -> None:
    schedule = 'schedule:\n  every: 0m\n  jitter: soon\n  quiet_hours: "22:00-25:00"\n'
    assert broken(campaign, "posts: [{id: a, text: hi}]\n", schedule) == [
        "content/q.yaml:2: schedule.every: should be longer than zero",
        "content/q.yaml:3: schedule.jitter: 'soon' is not a duration: write it like 30s, 5m, 2h or 1d",
        "content/q.yaml:4: schedule.quiet_hours: '22:00-25:00' should be "
        '"HH:MM-HH:MM", such as "22:00-07:00"',
    ]
    assert broken(campaign, "posts: [{id: a, text: hi}]\n", "schedule: {timezone: UTC}\n") == [
        "content/q.yaml:1: schedule: give one of cron, every or at"
    ]
    assert broken(campaign, "posts: [{id: a, text: hi}]\n", "") == [
        "content/q.yaml:1: missing schedule: give one of cron, every or at"
    ]


def test_a_pinned_time_inside_a_dst_gap_moves_to_the_end_of_the_gap(campaign: Path) -> None:
    body = "posts:\n  - {id: a, text: hi, at: 2027-03-14T02:30}\n"  # New York skips 02:00-03:00
    _, (queue,), _ = load(campaign, {"q.yaml": "schedule: {every: 1d}\n" + body})
    pinned = queue.posts[0].at
    assert pinned is not None
    assert pinned.astimezone(UTC) == datetime(2027, 3, 14, 7, 0, tzinfo=UTC)  # 03:00 EDT


def test_options_that_belong_to_another_platform_or_to_posts(campaign: Path) -> None:
    body = """\
x: {text: not here}
bluesky: {visibility: public}
posts:
  - id: a
    text: hi
    mastodon: {visibility: secret, link_card: true}
    bluesky: "text with no link"
    x: 42
"""
    assert broken(campaign, body) == [
        "content/q.yaml:2: x: a queue's defaults cannot hold text; put it on a post",
        "content/q.yaml:3: bluesky: visibility applies only to mastodon",
        "content/q.yaml:7: mastodon: link_card applies only to bluesky",
        "content/q.yaml:7: visibility: 'secret' should be one of public, unlisted, private, direct",
        "content/q.yaml:9: x: should be a text or options (a mapping such as {language: en})",
    ]
