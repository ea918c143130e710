"""Lenient readers of JSON values shared by the parsers (numbers given as strings, bounded counts)."""

from __future__ import annotations

import math
from typing import Any


def number(value: Any) -> float | None:
    """A finite number, from a JSON number or a numeric string (ASFF carries ``"Normalized": "40"``);
    None otherwise, booleans included."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def count(value: Any) -> int | None:
    """A source's occurrence count (an int or a digit string): positive, within the contract's bounds."""
    parsed = number(value)
    if parsed is None or parsed < 1 or parsed != int(parsed):
        return None
    return min(int(parsed), 2**31 - 1)


def as_list(value: Any, path: str) -> list[Any]:
    """A list, or empty when absent; anything else is refused naming its JSON path."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"{path}: expected a list, got {type(value).__name__}")
    return value


def trim_url(url: str) -> str:
    """A URL found in prose, without the punctuation that ends the sentence or closes a parenthesis."""
    url = url.rstrip(".,;:")
    while url.endswith(")") and url.count(")") > url.count("("):
        url = url[:-1].rstrip(".,;:")
    return url
