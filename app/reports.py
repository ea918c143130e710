"""Decoding a posted or uploaded report: a JSON document, or JSON lines (TruffleHog, Nuclei).

Shared by the report endpoints and ``tocsin ingest`` so both accept exactly the same bodies.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import orjson


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
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
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
        return items


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
