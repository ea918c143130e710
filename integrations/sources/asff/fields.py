"""Field readers for ASFF findings (also used by the OCSF parser): tolerant of absent or odd values, strict
about the shapes they rely on.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.contracts import MAX_ID

# Re-exported: this module's users read every field helper from one place.
from integrations.sources.values import as_list as as_list
from integrations.sources.values import count as count
from integrations.sources.values import number as number

MAX_REFERENCES = 50
MAX_TAGS = 100
_HTTP = ("https://", "http://")


def text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def as_dict(value: Any, path: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected an object, got {type(value).__name__}")
    return value


def mapping(value: Any) -> dict[str, Any]:
    """The value if it is an object, else an empty one (for optional sub-objects read leniently)."""
    return value if isinstance(value, dict) else {}


def get(obj: Any, *keys: str) -> Any:
    """``obj[k1][k2]...`` through dicts, None as soon as a level is missing or not an object."""
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def texts(values: Any) -> list[str]:
    return [v.strip() for v in values if isinstance(v, str) and v.strip()] if isinstance(values, list) else []


def timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        return None


def tags_of(value: Any) -> dict[str, str]:
    """ASFF ``Tags`` (a string map) within the contract's bounds: bad keys dropped, long values cut."""
    if not isinstance(value, dict):
        return {}
    tags: dict[str, str] = {}
    for key, tag_value in value.items():
        if not isinstance(key, str) or not 1 <= len(key) <= 256 or tag_value is None:
            continue
        tags[key] = (tag_value if isinstance(tag_value, str) else str(tag_value))[:1024]
        if len(tags) == MAX_TAGS:
            break
    return tags


def add_url(references: list[str], url: Any) -> None:
    """Append an http(s) URL once, keeping at most MAX_REFERENCES (the contract's limit)."""
    if not isinstance(url, str):
        return
    url = url.strip()
    if (
        url.lower().startswith(_HTTP)
        and len(url) <= MAX_ID
        and url not in references
        and len(references) < MAX_REFERENCES
    ):
        references.append(url)


def advisory_url(vuln_id: str) -> str | None:
    """The public advisory page of a CVE (NVD) or GHSA (GitHub) id; None for other ids."""
    upper = vuln_id.strip().upper()
    if upper.startswith("CVE-"):
        return f"https://nvd.nist.gov/vuln/detail/{upper}"
    if upper.startswith("GHSA-"):
        return f"https://github.com/advisories/{vuln_id.strip()}"
    return None


def compact(mapping: dict[str, Any]) -> dict[str, Any]:
    """Drop None, empty strings and empty containers, so the context holds only what the source said."""
    return {key: value for key, value in mapping.items() if value not in (None, "", [], {})}
