"""EventBridge envelopes: which parser reads an event, and where its findings are.

An event names its producer with ``source`` and ``detail-type``; the pair chooses the parser and the part
of the event handed to it (the finding itself in ``detail``, or the list in ``detail.findings``). A failure
is reported per event, with the field at fault as a dotted path from the event (``detail.severity``), so a
list of events can store what it can and say what it could not.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.contracts import NormalizedFinding, SourceParser


@dataclass(frozen=True, slots=True)
class Route:
    parser: str
    path: tuple[str, ...]
    """Keys leading from the event to what the parser reads."""

    @property
    def field(self) -> str:
        return ".".join(self.path)


_DETAIL = ("detail",)
_FINDINGS = ("detail", "findings")

ROUTES: dict[tuple[str, str], Route] = {
    ("aws.guardduty", "GuardDuty Finding"): Route("guardduty", _DETAIL),
    ("aws.macie", "Macie Finding"): Route("macie", _DETAIL),
    ("aws.securityhub", "Security Hub Findings - Imported"): Route("asff", _FINDINGS),
    ("aws.securityhub", "Security Hub Findings - Custom Action"): Route("asff", _FINDINGS),
    ("aws.securityhub", "Findings Imported V2"): Route("ocsf", _FINDINGS),
}
SUPPORTED = "; ".join(f"{source} / {detail_type}" for source, detail_type in ROUTES)

ParserLookup = Callable[[str], SourceParser]


class EventError(ValueError):
    """What is wrong with one event: a dotted field path from the event and a client-safe message."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


@dataclass(slots=True)
class EventFailure:
    index: int
    field: str
    message: str


@dataclass(slots=True)
class Dispatched:
    findings: list[NormalizedFinding] = field(default_factory=list)
    """Every finding of the events that parsed, in event order."""
    failures: list[EventFailure] = field(default_factory=list)


def events_of(document: Any, limit: int) -> tuple[list[Any], bool]:
    """The events of a body (one event or a list of them), and whether the body was a list."""
    if isinstance(document, dict):
        return [document], False
    if not isinstance(document, list):
        raise EventError("body", "send one EventBridge event (a JSON object) or a list of them")
    if not 1 <= len(document) <= limit:
        raise EventError("body", f"send 1 to {limit} events per request, got {len(document)}")
    return document, True


def route_of(event: Any) -> Route:
    """The route of an event, or an EventError naming the envelope field at fault."""
    if not isinstance(event, dict):
        raise EventError("", f"an event must be a JSON object, got {_kind(event)}")
    source, detail_type = event.get("source"), event.get("detail-type")
    if not isinstance(source, str):
        raise EventError("source", f"missing or not a string; supported events: {SUPPORTED}")
    if not isinstance(detail_type, str):
        raise EventError("detail-type", f"missing or not a string; supported events: {SUPPORTED}")
    route = ROUTES.get((source, detail_type))
    if route is None:
        raise EventError(
            "detail-type",
            f"unsupported event source {source!r} with detail-type {detail_type!r}; supported: {SUPPORTED}",
        )
    return route


def parse_event(event: Any, lookup: ParserLookup) -> list[NormalizedFinding]:
    """The findings of one event; raises EventError."""
    route = route_of(event)
    target: Any = event
    for depth, key in enumerate(route.path):
        if not isinstance(target, dict) or key not in target:
            where = ".".join(route.path[:depth]) or "event"
            raise EventError(".".join(route.path[: depth + 1]), f"missing from the {where}")
        target = target[key]
    expected = list if route.path == _FINDINGS else dict
    if not isinstance(target, expected):
        raise EventError(route.field, f"must be a JSON {'list' if expected is list else 'object'}")
    try:
        parser = lookup(route.parser)
    except KeyError as exc:  # registry.UnknownFormatError: this build lacks the parser
        raise EventError("detail-type", f"the {route.parser} parser is not available") from exc
    try:
        return parser.parse(target)
    except ValueError as exc:
        raise EventError(*_locate(route.field, str(exc))) from exc


def dispatch(events: list[Any], lookup: ParserLookup) -> Dispatched:
    """Parse every event; one that fails is reported by its index and does not stop the others."""
    result = Dispatched()
    for index, event in enumerate(events):
        try:
            result.findings.extend(parse_event(event, lookup))
        except EventError as exc:
            result.failures.append(EventFailure(index, exc.field, exc.message))
    return result


# A parser's message names the place of the problem as a JSON path from what it was given ("$",
# "$.severity", "$[1].Resources[0].Id"), sometimes followed by "missing 'key'": make it a dotted path from
# the event ("detail.severity", "detail.findings.1.Resources.0.Id") and say it in the message the same way.
_JSON_PATH = re.compile(r"\$((?:\.[A-Za-z0-9_-]+|\[\d+\])*)")
_INDEX = re.compile(r"\[(\d+)\]")
_MISSING = re.compile(r"^:? missing '([A-Za-z0-9_-]+)'")


def _locate(base: str, message: str) -> tuple[str, str]:
    match = _JSON_PATH.search(message)
    if match is None:
        return base, message
    relative = _INDEX.sub(r".\1", match.group(1)).strip(".")
    where = f"{base}.{relative}" if relative else base
    rest = message[match.end() :]
    missing = _MISSING.match(rest)
    field = f"{where}.{missing.group(1)}" if missing else where
    return field, f"{message[: match.start()]}{where}{rest}"


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__
