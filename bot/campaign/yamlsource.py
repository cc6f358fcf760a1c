"""Reading YAML safely while keeping the line of every key and list item.

The only module that imports yaml. It returns plain Python data (dicts, lists, str, int, float,
bool, None, date, datetime) together with a map from a path such as
("posts", 3, "images", 0, "alt") to the 1-based line where that key or item is written, so the
loaders can say FILE:LINE for any field, including one that is missing (the nearest enclosing
key's line).

We compose the node tree with a SafeLoader and build the data ourselves rather than letting
PyYAML construct it, because construction throws the marks away. Mapping keys are kept as the
text written (so a key `on:` stays "on", not True); a key written twice is an error, where PyYAML
would silently keep the last one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from bot.errors import InputError, Problem

YamlPath = tuple[str | int, ...]

# Aliases can make a tiny file expand enormously ("billion laughs"); no content file is this big.
_MAX_NODES = 200_000
_STR = "tag:yaml.org,2002:str"


# libyaml's parser composes a 1,000-post queue about 15 times faster than PyYAML's pure-Python
# one (bench/check_scale.py); both give the same nodes and marks. Fall back when PyYAML was
# built without libyaml.
_SafeBase: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _SafeLineLoader(_SafeBase):  # type: ignore[valid-type,misc]
    """Safe loader used only to compose nodes and to construct scalars (no Python object tags)."""


@dataclass(frozen=True)
class YamlDocument:
    """One parsed file: its data, where each key and item is written, and what was wrong."""

    file: str  # as shown in messages
    data: object
    lines: Mapping[YamlPath, int] = field(repr=False)
    problems: tuple[Problem, ...] = ()  # errors found while building (duplicate keys, ...)

    def line(self, path: YamlPath) -> int:
        """The line of `path`, or of its nearest written ancestor (1 for the whole file)."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), 1)


def read_yaml(path: Path, file: str) -> YamlDocument:
    """Read and parse a file; an unreadable file or a syntax error raises InputError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError([Problem(file, 1, "file not found")]) from None
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        message = f"not UTF-8 text: byte 0x{exc.object[exc.start]:02x} here; save the file as UTF-8"
        raise InputError([Problem(file, line, message)]) from None
    except OSError as exc:
        raise InputError([Problem(file, 1, f"cannot read the file: {exc.strerror}")]) from None
    return parse_yaml(text, file)


def parse_yaml(text: str, file: str) -> YamlDocument:
    """Parse YAML text; a syntax error raises InputError at the line YAML reports."""
    loader = _SafeLineLoader(text)
    try:
        root = loader.get_single_node()
        builder = _Builder(loader, file)
        data = builder.build(root, ()) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        detail = exc.problem or exc.context or "invalid YAML"
        if "\t" in "".join(text.splitlines()[line - 1 : line]):
            detail = "a tab character: YAML indents with spaces only, never tabs"
        raise InputError([Problem(file, line, f"YAML syntax error: {detail}")]) from None
    except yaml.YAMLError as exc:
        raise InputError([Problem(file, 1, f"YAML error: {exc}")]) from None
    finally:
        loader.dispose()
    if root is None:  # an empty file
        return YamlDocument(file=file, data=None, lines={(): 1})
    return YamlDocument(file=file, data=data, lines=builder.lines, problems=tuple(builder.problems))


class _Builder:
    def __init__(self, loader: _SafeLineLoader, file: str) -> None:
        self.loader = loader
        self.file = file
        self.lines: dict[YamlPath, int] = {}
        self.problems: list[Problem] = []
        self.count = 0
        self.active: set[int] = set()  # nodes on the current path, to refuse recursive aliases

    def build(self, node: Node, path: YamlPath) -> object:
        line = node.start_mark.line + 1
        self.lines.setdefault(path, line)
        self.count += 1
        if self.count > _MAX_NODES:
            raise yaml.MarkedYAMLError(
                problem="the document expands to too many values", problem_mark=node.start_mark
            )
        if id(node) in self.active:
            self.problems.append(Problem(self.file, line, "an alias refers to itself"))
            return None
        if isinstance(node, ScalarNode):
            if node.tag == _STR:
                return node.value  # what SafeLoader's construct_yaml_str returns, without its calls
            try:
                return self.loader.construct_object(node, deep=True)
            except (ValueError, OverflowError):
                # An impossible date (2026-13-45, 2026-02-30) looks like one to YAML, which then
                # fails to build it: keep the text, and let the field that reads it say why.
                return str(node.value)
        expected = "tag:yaml.org,2002:seq" if isinstance(node, SequenceNode) else "tag:yaml.org,2002:map"
        if node.tag != expected:
            # We build collections ourselves, so refuse their tags the way SafeLoader would.
            raise ConstructorError(
                None, None, f"could not determine a constructor for the tag {node.tag!r}", node.start_mark
            )
        self.active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                items = []
                for i, item in enumerate(node.value):
                    self.lines.setdefault((*path, i), item.start_mark.line + 1)
                    items.append(self.build(item, (*path, i)))
                return items
            assert isinstance(node, MappingNode)
            return self._build_mapping(node, path)
        finally:
            self.active.discard(id(node))

    def _build_mapping(self, node: MappingNode, path: YamlPath) -> dict[str, object]:
        self.loader.flatten_mapping(node)  # resolves `<<: *anchor` merge keys
        result: dict[str, object] = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if not isinstance(key_node, ScalarNode):
                self.problems.append(Problem(self.file, key_line, "a key must be a plain word"))
                continue
            key = str(key_node.value)
            if key in result:
                self.problems.append(Problem(self.file, key_line, f"key {key!r} is written twice"))
                continue
            self.lines[(*path, key)] = key_line
            result[key] = self.build(value_node, (*path, key))
        return result
