"""Decoding a posted or uploaded report: a JSON document, or JSON lines (TruffleHog, Nuclei).

Shared by the report endpoints and ``tocsin ingest`` so both accept exactly the same bodies.
"""

from __future__ import annotations

from typing import Any

import orjson


class ReportDecodeError(ValueError):
    """What is wrong, phrased to follow "the body" / "the report"; ``line`` for a bad JSON line."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


def decode_report(data: bytes) -> Any:
    """The JSON document, or the list of objects of a JSON-lines report."""
    if not data.strip():
        raise ReportDecodeError("is empty; send the report as JSON or JSON lines")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        lines = [line for line in data.splitlines() if line.strip()]
        if len(lines) < 2 or not lines[0].lstrip().startswith(b"{"):
            raise ReportDecodeError(f"is not valid JSON: {exc}") from exc
        items = []
        for number, line in enumerate(lines, start=1):
            try:
                items.append(orjson.loads(line))
            except orjson.JSONDecodeError as line_exc:
                raise ReportDecodeError(
                    f"is neither JSON nor JSON lines: line {number} is not valid JSON ({line_exc})", number
                ) from line_exc
        return items
