import datetime

import pytest

from bot.campaign.yamlsource import parse_yaml
from bot.errors import InputError

TEXT = """\
schedule: {every: 1d}
start: 2026-12-01
posts:
  - id: a
    images:
      - path: images/rally.png
        alt: A banner
  - id: b
    on: yes
"""


def test_data_and_the_line_of_every_key_and_item() -> None:
    doc = parse_yaml(TEXT, "q.yaml")
    assert doc.data == {
        "schedule": {"every": "1d"},
        "start": datetime.date(2026, 12, 1),
        "posts": [
            {"id": "a", "images": [{"path": "images/rally.png", "alt": "A banner"}]},
            {"id": "b", "on": True},  # the key stays the word written; the value is YAML's boolean
        ],
    }
    assert doc.line(("posts", 0, "images", 0, "alt")) == 7
    assert doc.line(("posts", 1)) == 8
    assert doc.line(("schedule", "every")) == 1
    assert doc.line(("posts", 1, "text")) == 8  # a missing key: its nearest written ancestor
    assert doc.line(()) == 1


def test_a_key_written_twice_is_a_problem_not_silently_dropped() -> None:
    doc = parse_yaml("id: a\ntext: one\ntext: two\n", "q.yaml")
    assert [str(p) for p in doc.problems] == ["q.yaml:3: key 'text' is written twice"]


def test_python_tags_are_refused() -> None:
    with pytest.raises(InputError) as caught:
        parse_yaml("x: !!python/object/apply:os.system ['true']\n", "q.yaml")
    (problem,) = caught.value.problems
    assert problem.line == 1
    assert "could not determine a constructor" in problem.message


def test_syntax_error_at_the_reported_line_and_empty_file() -> None:
    with pytest.raises(InputError) as caught:
        parse_yaml("a: 1\nb: [2\nc: 3\n", "q.yaml")
    assert caught.value.problems[0].line == 3
    assert parse_yaml("", "q.yaml").data is None


def test_merge_keys_and_aliases_are_resolved() -> None:
    doc = parse_yaml("base: &b {visibility: unlisted}\nmastodon:\n  <<: *b\n  language: en\n", "q.yaml")
    assert doc.data == {
        "base": {"visibility": "unlisted"},
        "mastodon": {"visibility": "unlisted", "language": "en"},
    }
