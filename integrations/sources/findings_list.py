"""The document shapes shared by AWS-style formats: one finding, a list, ``{"Findings": [...]}``, or an
EventBridge event whose ``detail.findings`` holds them. Used by the ASFF and OCSF parsers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from app.contracts import NormalizedFinding

LIST_KEYS = ("Findings", "findings")


def first_finding_matches(document: Any, looks_like: Callable[[Any], bool]) -> bool:
    """Cheap detection: whether the document's first finding (in any of the shapes) looks like ours."""
    if isinstance(document, list):
        return bool(document) and looks_like(document[0])
    if not isinstance(document, dict):
        return False
    if "detail-type" in document or "detail" in document:
        detail = document.get("detail")
        findings = detail.get("findings") if isinstance(detail, dict) else None
        return isinstance(findings, list) and bool(findings) and looks_like(findings[0])
    for key in LIST_KEYS:
        items = document.get(key)
        if isinstance(items, list):
            return bool(items) and looks_like(items[0])
    return looks_like(document)


def read_each(
    items: list[Any], path: str, read: Callable[[dict[str, Any], str], NormalizedFinding], format_label: str
) -> Iterator[NormalizedFinding]:
    """Every finding in order, one at a time; a non-object item is refused naming its JSON path."""
    for index, item in enumerate(items):
        item_path = f"{path}[{index}]" if path else "$"
        if not isinstance(item, dict):
            raise ValueError(
                f"not {format_label} finding: {item_path} is a {type(item).__name__}, not an object"
            )
        yield read(item, item_path)
