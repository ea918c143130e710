"""Decoding a posted or uploaded report: a JSON document, or JSON lines (TruffleHog, Nuclei).

Shared by the report endpoints and ``tocsin ingest`` so both accept exactly the same bodies.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import orjson

from app.contracts import MAX_JSON_DEPTH, too_deep

MAX_DEPTH = MAX_JSON_DEPTH
"""How deep a posted report may nest (orjson alone would parse 1024 levels): refused whole, with where it
goes deep, before a parser copies a too-deep part into a finding's ``raw``."""


class ReportDecodeError(ValueError):
    """What is wrong, phrased to follow "the body" / "the report"; ``line`` for a bad JSON line."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


def decode_report(data: bytes | bytearray) -> Any:
    """The JSON document, or the list of objects of a JSON-lines report.

    Makes no copy of ``data`` (a report can be tens of MB): blank checks and the line split look at it in
    place, one line at a time."""
    if is_blank(data):
        raise ReportDecodeError("is empty; send the report as JSON or JSON lines")
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if is_too_deep_error(exc):
            raise ReportDecodeError(f"nests more than {MAX_DEPTH} levels deep") from exc
        lines = _lines(data)
        first = next(lines, None)
        if first is None or not first[1].lstrip().startswith(b"{"):
            raise ReportDecodeError(f"is not valid JSON: {exc}") from exc
        items = []
        for number, line in itertools.chain([first], lines):
            try:
                items.append(orjson.loads(line))
            except orjson.JSONDecodeError as line_exc:
                if number == 1 and len(items) == 0 and next(lines, None) is None:
                    raise ReportDecodeError(f"is not valid JSON: {exc}") from exc
                raise ReportDecodeError(
                    f"is neither JSON nor JSON lines: line {number} is not valid JSON ({line_exc})", number
                ) from line_exc
        if len(items) < 2:
            raise ReportDecodeError(f"is not valid JSON: {exc}") from exc
        return _shallow_lines(items)
    if too_deep(document, MAX_DEPTH):
        raise ReportDecodeError(f"nests more than {MAX_DEPTH} levels deep (at {deepest_path(document)})")
    return document


def _shallow_lines(items: list[Any]) -> list[Any]:
    for number, item in enumerate(items, start=1):
        if too_deep(item, MAX_DEPTH):
            raise ReportDecodeError(f"nests line {number} more than {MAX_DEPTH} levels deep", number)
    return items


def is_too_deep_error(exc: orjson.JSONDecodeError) -> bool:
    """orjson's own refusal of a document nested over 1024 levels."""
    return "depth limit exceeded" in str(exc)


def deepest_path(value: Any, limit: int = 8) -> str:
    """Where a too-deep document goes deep, as ``$.a[0].b...`` (the first ``limit`` steps)."""
    path = "$"
    for _ in range(limit):
        if type(value) is dict:
            key = max(value, key=lambda k: _depth(value[k]), default=None)
            if key is None:
                break
            path, value = f"{path}.{key}"[:200], value[key]
        elif type(value) is list and value:
            index = max(range(len(value)), key=lambda i: _depth(value[i]))
            path, value = f"{path}[{index}]", value[index]
        else:
            break
    return path + "..." if type(value) in (dict, list) else path


def _depth(value: Any) -> int:
    """Nesting depth (only on the error path: it walks the whole value)."""
    depth, level = 0, [value]
    while level:
        depth += 1
        level = [
            child
            for node in level
            if type(node) in (dict, list)
            for child in (node.values() if type(node) is dict else node)
            if type(child) in (dict, list)
        ]
    return depth


def is_blank(data: bytes | bytearray) -> bool:
    """Empty or only whitespace, without copying ``data`` (``strip()`` would)."""
    return not data or data.isspace()


def _lines(data: bytes | bytearray) -> Iterator[tuple[int, bytes | bytearray]]:
    """The non-blank lines with their numbers (counting non-blank lines only), one at a time."""
    start, number, size = 0, 0, len(data)
    while start < size:
        end = data.find(b"\n", start)
        end = size if end == -1 else end
        line = data[start:end]
        start = end + 1
        if not is_blank(line):
            number += 1
            yield number, line
