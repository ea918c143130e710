"""Matching a finding's facts against routing matchers: globs, CODEOWNERS paths, tag operators.

This runs for every rule and every finding on the ingest hot path, so a ``Matchers`` is compiled once
into a tuple of checks (cheapest first) and patterns into one regular expression per list; a rule that
does not match costs a dictionary lookup and a few attribute reads. Pure: no SQL, no I/O.

Glob semantics: ``*`` is any run of characters (but not ``/`` in ``path`` and ``repository``), ``**``
any depth, ``?`` one character. ``path`` follows CODEOWNERS: a pattern without a slash matches a file
or directory name at any depth, ``dir/`` everything under a directory, a leading ``/`` (or any slash
inside) anchors at the repository root. ``repository`` patterns match the end of the repository name on
a segment boundary, so ``acme/shop`` matches ``github.com/acme/shop``. Matching is case-sensitive,
except ``source``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from operator import attrgetter
from typing import Any, Literal

from app.contracts import SEVERITY_MIN_SCORE, NormalizedFinding, severity_label
from app.pipeline.route_spec import Matchers, TagMatcher


@dataclass(frozen=True, slots=True)
class Facts:
    """What routing may look at: a finding reduced to the fields matchers, groups and policies use."""

    finding_id: str | None
    source: str
    type: str
    severity: float
    score: float
    account_id: str | None
    region: str | None
    resource_type: str | None
    resource_id: str | None
    repository: str | None
    path: str | None
    tags: Mapping[str, str] = field(default_factory=dict)
    status: str = "open"

    @classmethod
    def from_finding(cls, f: NormalizedFinding, score: float, finding_id: str | None = None) -> Facts:
        location = f.location
        return cls(
            finding_id=finding_id,
            source=f.source,
            type=f.type,
            severity=f.severity,
            score=score,
            account_id=f.resource.account_id,
            region=f.resource.region,
            resource_type=f.resource.type,
            resource_id=f.resource.id,
            repository=location.repository if location else None,
            path=location.path if location else None,
            tags=f.resource.tags,
            status=f.status.value if f.status is not None else "open",
        )

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Facts:
        """From a mapping with the ``findings`` table's column names (a row's ``_mapping``, a dict)."""
        return cls(
            finding_id=row.get("id"),
            source=row["source"],
            type=row["type"],
            severity=float(row["severity"]),
            score=float(row["severity"] if row.get("score") is None else row["score"]),
            account_id=row.get("account_id"),
            region=row.get("region"),
            resource_type=row.get("resource_type"),
            resource_id=row.get("resource_id"),
            repository=row.get("repository"),
            path=row.get("path"),
            tags=row.get("tags") or {},
            status=row.get("status") or "open",
        )


def number(value: float) -> str:
    return f"{value:g}"


def severity_text(value: float) -> str:
    """``55 (medium)``."""
    return f"{number(value)} ({severity_label(value).value})"


# ---------------------------------------------------------------------------------------------- globs

PatternKind = Literal["text", "source", "repository", "path"]
_GLOB_CHARS = frozenset("*?")


def _glob(pattern: str, segmented: bool) -> str:
    star, one = ("[^/]*", "[^/]") if segmented else (".*", ".")
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if segmented and pattern.startswith("/", i):  # "a/**/b" also matches "a/b"
                out.append("(?:.*/)?")
                i += 1
            else:
                out.append(".*")
            continue
        out.append(star if char == "*" else one if char == "?" else re.escape(char))
        i += 1
    return "".join(out)


def _path_regex(pattern: str) -> str:
    """CODEOWNERS: ``*.py`` anywhere, ``docs/`` everything under any ``docs`` directory, ``/build/``
    or ``src/app`` relative to the root; a plain name also covers the directory's contents."""
    anchored = pattern.startswith("/")
    body = pattern.strip("/")
    if not body:
        return ".*"
    dir_only = pattern.endswith("/")
    prefix = "" if anchored or "/" in body else "(?:.*/)?"
    last = body.rsplit("/", 1)[-1]
    if dir_only:
        suffix = "/.*"
    elif last == "**" or _GLOB_CHARS & set(last):
        suffix = ""
    else:
        suffix = "(?:/.*)?"
    return prefix + _glob(body, segmented=True) + suffix


def _regex_of(pattern: str, kind: PatternKind) -> str:
    if kind == "path":
        return _path_regex(pattern)
    if kind == "repository":
        if pattern.startswith("/"):
            return _glob(pattern.strip("/"), segmented=True)
        return "(?:.*/)?" + _glob(pattern.strip("/"), segmented=True)
    return _glob(pattern, segmented=False)


_REPO_SCHEME = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|git@)", re.IGNORECASE)


def normalize_path(value: str) -> str:
    value = value.replace("\\", "/")
    while value.startswith("./"):
        value = value[2:]
    return value.lstrip("/")


def normalize_repository(value: str) -> str:
    """``https://github.com/acme/shop.git`` and ``git@github.com:acme/shop`` -> ``github.com/acme/shop``."""
    if _REPO_SCHEME.match(value):
        ssh = value[:4].lower() == "git@"
        value = _REPO_SCHEME.sub("", value, count=1)
        if ssh:
            value = value.replace(":", "/", 1)
    value = value.rstrip("/")
    return value[:-4] if value.endswith(".git") else value


_NORMALIZE: dict[PatternKind, Callable[[str], str]] = {
    "text": lambda v: v,
    "source": str.lower,
    "repository": normalize_repository,
    "path": normalize_path,
}


@lru_cache(maxsize=8192)
def pattern_predicate(patterns: tuple[str, ...], kind: PatternKind) -> Callable[[str], bool]:
    """A test "does the value match any of these patterns", compiled once per pattern list."""
    if kind == "source":
        patterns = tuple(p.lower() for p in patterns)
    exact = frozenset(p for p in patterns if kind in ("text", "source") and not _GLOB_CHARS & set(p))
    globs = [p for p in patterns if p not in exact]
    normalize = _NORMALIZE[kind]
    if not globs:
        if kind == "text":
            return exact.__contains__
        return lambda value: normalize(value) in exact
    regex = re.compile("|".join(f"(?:{_regex_of(p, kind)})" for p in globs), re.DOTALL)
    fullmatch = regex.fullmatch
    if not exact and kind == "text":
        return lambda value: fullmatch(value) is not None
    return lambda value: (v := normalize(value)) in exact or fullmatch(v) is not None


@lru_cache(maxsize=4096)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.DOTALL)


# --------------------------------------------------------------------------------------------- checks


@dataclass(frozen=True, slots=True)
class _Check:
    test: Callable[[Facts], bool]
    says: Callable[[Facts, bool], str]
    """A sentence about this condition: why it holds (True) or why it does not (False)."""


def _field_check(name: str, patterns: list[str], kind: PatternKind) -> _Check:
    get: Callable[[Facts], str | None] = attrgetter(name)
    predicate = pattern_predicate(tuple(patterns), kind)

    def test(facts: Facts) -> bool:
        value = get(facts)
        return value is not None and predicate(value)

    def says(facts: Facts, ok: bool) -> str:
        value = get(facts)
        wanted = repr(patterns[0]) if len(patterns) == 1 else repr(patterns)
        if value is None:
            return f"no {name} (wanted {wanted})"
        if not ok:
            return (
                f"{name} {value!r} does not match {wanted}"
                if len(patterns) == 1
                else f"{name} {value!r} matches none of {wanted}"
            )
        hit = next((p for p in patterns if pattern_predicate((p,), kind)(value)), patterns[0])
        verb = "is" if not _GLOB_CHARS & set(hit) and kind in ("text", "source") else "matches"
        return f"{name} {verb} {hit!r}"

    return _Check(test, says)


def _tag_check(matcher: TagMatcher) -> _Check:
    key, op, wanted = matcher.key, matcher.op, matcher.value
    test: Callable[[Facts], bool]
    if op == "=":

        def test(facts: Facts) -> bool:
            return facts.tags.get(key) == wanted

    elif op == "!=":

        def test(facts: Facts) -> bool:
            return facts.tags.get(key, "") != wanted

    else:
        fullmatch = _regex(wanted).fullmatch
        if op == "=~":

            def test(facts: Facts) -> bool:
                value = facts.tags.get(key)
                return value is not None and fullmatch(value) is not None

        else:

            def test(facts: Facts) -> bool:
                return fullmatch(facts.tags.get(key, "")) is None

    def says(facts: Facts, ok: bool) -> str:
        value = facts.tags.get(key)
        if ok:
            if op == "=":
                return f"tag {matcher}"
            shown = "missing" if value is None else repr(value)
            return f"tag {key} is {shown}, {matcher} holds"
        shown = "missing" if value is None else repr(value)
        return f"tag {key} is {shown}, wanted {matcher}"

    return _Check(test, says)


def _resource_id_regex_check(pattern: str) -> _Check:
    fullmatch = _regex(pattern).fullmatch

    def test(facts: Facts) -> bool:
        return facts.resource_id is not None and fullmatch(facts.resource_id) is not None

    def says(facts: Facts, ok: bool) -> str:
        if facts.resource_id is None:
            return f"no resource_id (wanted one matching /{pattern}/)"
        verb = "matches" if ok else "does not match"
        return f"resource_id {facts.resource_id!r} {verb} /{pattern}/"

    return _Check(test, says)


def _compile(matchers: Matchers) -> tuple[_Check, ...]:
    checks: list[_Check] = []
    if matchers.severity_min is not None:
        label = matchers.severity_min.value
        floor = SEVERITY_MIN_SCORE[matchers.severity_min]
        checks.append(
            _Check(
                lambda f: f.severity >= floor,
                lambda f, ok: (
                    f"severity {severity_text(f.severity)} is {'at least' if ok else 'below'} {label}"
                ),
            )
        )
    if matchers.score_min is not None:
        least = matchers.score_min
        checks.append(
            _Check(
                lambda f: f.score >= least,
                lambda f, ok: f"score {number(f.score)} is {'at least' if ok else 'below'} {number(least)}",
            )
        )
    if matchers.source is not None:
        checks.append(_field_check("source", matchers.source, "source"))
    for name in ("type", "account_id", "region", "resource_type", "resource_id"):
        patterns = getattr(matchers, name)
        if patterns is not None:
            checks.append(_field_check(name, patterns, "text"))
    if matchers.repository is not None:
        checks.append(_field_check("repository", matchers.repository, "repository"))
    if matchers.path is not None:
        checks.append(_field_check("path", matchers.path, "path"))
    checks.extend(_tag_check(t) for t in matchers.tags or ())
    if matchers.resource_id_regex is not None:
        checks.append(_resource_id_regex_check(matchers.resource_id_regex))
    return tuple(checks)


# Compiled checks by the identity of the (frozen) Matchers object. The entry keeps the object alive, so
# its id cannot be reused by another object while cached; the cache is bounded by clearing it.
_COMPILED: dict[int, tuple[Matchers, tuple[_Check, ...]]] = {}
_COMPILED_MAX = 4096


def _checks(matchers: Matchers) -> tuple[_Check, ...]:
    hit = _COMPILED.get(id(matchers))
    if hit is not None and hit[0] is matchers:
        return hit[1]
    checks = _compile(matchers)
    if len(_COMPILED) >= _COMPILED_MAX:
        _COMPILED.clear()
    _COMPILED[id(matchers)] = (matchers, checks)
    return checks


def matches(matchers: Matchers, facts: Facts) -> bool:
    """All conditions hold (an empty ``Matchers`` matches every finding)."""
    for check in _checks(matchers):  # noqa: SIM110 (a loop is ~2x faster than all() over a generator)
        if not check.test(facts):
            return False
    return True


def mismatches(matchers: Matchers, facts: Facts) -> list[str]:
    """Why the matchers do not hold, one sentence per failed condition; empty when they match."""
    return [check.says(facts, False) for check in _checks(matchers) if not check.test(facts)]


def match_reasons(matchers: Matchers, facts: Facts) -> tuple[bool, list[str]]:
    """(matched, sentences): what held when it matches, what failed when it does not."""
    checks = _checks(matchers)
    failed = [check.says(facts, False) for check in checks if not check.test(facts)]
    if failed:
        return False, failed
    if not checks:
        return True, ["no conditions: matches every finding"]
    return True, [check.says(facts, True) for check in checks]
