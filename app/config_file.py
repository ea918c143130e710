"""``tocsin.yaml``: the routing configuration as a file, read and checked whole before anything changes.

Top-level keys: ``teams``, ``channels``, ``rules`` (tried in list order) and ``silences``; each entry has
the schema of the API's request bodies (``app.pipeline.route_spec``). Every error names its YAML path
and line (``tocsin.yaml:14: rules[3].match.tags[0]: ...``), and all errors are reported at once.

YAML 1.1 surprises are switched off: ``20:00`` is the string "20:00" (not the base-60 number 1200),
``012345678901`` stays a string (not an octal number), and only ``true``/``false`` are booleans. Numbers
inside matchers are read as strings, so ``account_id: [123456789012]`` needs no quotes.

Silences have no name of their own; in a file each is identified by ``id`` (a slug you choose, stored as
``cfg-<id>``) or, without one, by a digest of its matchers, finding_id and reason (so editing those makes
it a new silence). Only such file-made silences (ids starting ``cfg-``) are expired by ``--prune``;
silences made through the API are operational and left alone.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

import yaml  # type: ignore[import-untyped]  # no types-PyYAML in the dev dependencies yet
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.pipeline.route_spec import ChannelSpec, RuleSpec, SilenceSpec, TeamSpec

SILENCE_KEY_PREFIX = "cfg-"
SILENCE_ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,27}$"  # stored as cfg-<id>, within the 32-character id


class FileSilence(SilenceSpec):
    """A silence as written in a file: ``id`` makes it the same silence from one apply to the next."""

    id: str | None = Field(default=None, pattern=SILENCE_ID_PATTERN)

    def key(self) -> str:
        if self.id is not None:
            return SILENCE_KEY_PREFIX + self.id
        identity = {
            "match": self.match.model_dump(mode="json", exclude_none=True),
            "finding_id": self.finding_id,
            "reason": self.reason,
        }
        digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
        return SILENCE_KEY_PREFIX + digest[: 32 - len(SILENCE_KEY_PREFIX)]

    def spec(self) -> SilenceSpec:
        return SilenceSpec.model_validate(self.model_dump(exclude={"id"}))


class ConfigFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    teams: list[TeamSpec] = Field(default_factory=list)
    channels: list[ChannelSpec] = Field(default_factory=list)
    rules: list[RuleSpec] = Field(default_factory=list)
    silences: list[FileSilence] = Field(default_factory=list)


class ConfigError(Exception):
    """The file cannot be applied; ``problems`` holds one line per error, each with its path and line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class _Loader(yaml.SafeLoader):  # type: ignore[misc]
    """SafeLoader with YAML 1.2 core scalars: no base-60 numbers, octals, or yes/no/on/off booleans."""


_Loader.yaml_implicit_resolvers = {}
for _tag, _pattern, _first in (
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("null", r"^(?:~|null|Null|NULL|)$", "~nN"),
    ("int", r"^[-+]?(?:0|[1-9][0-9]*)$", "-+0123456789"),
    ("float", r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$", "-+0123456789."),
    ("merge", r"^<<$", "<"),
    (
        "timestamp",
        r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?"
        r"(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?$",
        "0123456789",
    ),
):
    _Loader.add_implicit_resolver(f"tag:yaml.org,2002:{_tag}", re.compile(_pattern), list(_first))
_Loader.add_implicit_resolver("tag:yaml.org,2002:null", re.compile(r"^$"), [""])


Loc = tuple[str | int, ...]


@dataclass
class Document:
    """A parsed file: its validated content, and its node tree to point errors at lines."""

    source: str
    config: ConfigFile
    root: yaml.Node | None

    def where(self, loc: Loc, message: str) -> str:
        line = _line_of(self.root, loc)
        prefix = f"{self.source}:{line}" if line else self.source
        return f"{prefix}: {format_path(loc)}: {message}" if loc else f"{prefix}: {message}"


def format_path(loc: Loc) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _child(node: yaml.Node, part: str | int) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                return value
    elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        return node.value[part]
    return None


def _line_of(root: yaml.Node | None, loc: Loc) -> int | None:
    """The line of the deepest node of ``loc`` that exists in the file (1-based)."""
    node = root
    if node is None:
        return None
    for part in loc:
        child = _child(node, part)
        if child is None:
            break
        node = child
    return int(node.start_mark.line) + 1


def _duplicate_keys(node: yaml.Node | None, loc: Loc = ()) -> list[tuple[Loc, str]]:
    """YAML keeps the last of two equal keys without a word; in a config file that is always a mistake."""
    found: list[tuple[Loc, str]] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else "?"
            if name in seen:
                found.append(((*loc, name), f"duplicate key {name!r} (line {key.start_mark.line + 1})"))
            seen.add(name)
            found.extend(_duplicate_keys(value, (*loc, name)))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            found.extend(_duplicate_keys(item, (*loc, index)))
    return found


def _numbers_as_strings(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return [_numbers_as_strings(item) for item in value]
    return value


def _matchers_as_strings(data: Any) -> None:
    for section in ("rules", "silences"):
        entries = data.get(section) if isinstance(data, dict) else None
        for entry in entries if isinstance(entries, list) else []:
            match = entry.get("match") if isinstance(entry, dict) else None
            if isinstance(match, dict):
                for key, value in match.items():
                    match[key] = _numbers_as_strings(value)


def _refine(data: Any, loc: Loc, message: str) -> Loc:
    """Point at the list item a message quotes (``tag matcher 'env' ...`` -> ``tags[0]``)."""
    node: Any = data
    for part in loc:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return loc
    if isinstance(node, list):
        for index, item in enumerate(node):
            if isinstance(item, str) and repr(item) in message:
                return (*loc, index)
    return loc


def parse(text: str, source: str = "tocsin.yaml") -> Document:
    """Parse and validate the whole file; raise ConfigError listing every problem found."""
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{where}: not valid YAML: {problem}"]) from None
    finally:
        loader.dispose()
    document = Document(source, ConfigFile(), root)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([document.where((), "expected a mapping with teams, channels, rules, silences")])
    problems = [document.where(loc, message) for loc, message in _duplicate_keys(root)]
    _matchers_as_strings(data)
    try:
        document.config = ConfigFile.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            message = str(error["msg"]).removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown field"
            loc = _refine(data, tuple(error["loc"]), message)
            problems.append(document.where(loc, message))
    if problems:
        raise ConfigError(problems)
    return document
