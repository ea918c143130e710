"""Readers for GuardDuty JSON in either casing, tolerant of nulls and strict only where identity needs it.

GuardDuty's REST API and EventBridge events spell keys in lowerCamelCase (``resource.resourceType``); boto3
and ``aws guardduty get-findings`` spell the same members in PascalCase (``Resource.ResourceType``). Rather
than one code path per casing, every read goes through ``get``/``dig``, which find a key by its name in any
casing: the two spellings AWS uses are tried first (two dict lookups), and only a miss falls back to a
case-insensitive scan of the object's keys.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

# Re-exported: this module's users read every field helper from one place.
from integrations.sources.values import count as count
from integrations.sources.values import number as number

MAX_TAG_KEY = 256
MAX_TAG_VALUE = 1024
MAX_TAGS = 100


def get(node: Any, name: str) -> Any:
    """``node[name]`` whatever the casing of the key (``id``, ``Id``, ``ID``); None when absent."""
    if not isinstance(node, dict):
        return None
    value = node.get(name)
    if value is not None:
        return value
    value = node.get(name[:1].upper() + name[1:])
    if value is not None:
        return value
    wanted = name.lower()
    for key, candidate in node.items():
        if isinstance(key, str) and key.lower() == wanted and candidate is not None:
            return candidate
    return None


def dig(node: Any, *names: str) -> Any:
    """``get`` along a path of keys: ``dig(finding, "service", "action", "actionType")``."""
    for name in names:
        node = get(node, name)
        if node is None:
            return None
    return node


def has(node: dict[str, Any], name: str) -> bool:
    return get(node, name) is not None


def text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def dict_at(node: Any, *names: str) -> dict[str, Any]:
    value = dig(node, *names)
    return value if isinstance(value, dict) else {}


def list_at(node: Any, *names: str) -> list[Any]:
    value = dig(node, *names)
    return value if isinstance(value, list) else []


def timestamp(value: Any) -> datetime | None:
    """ISO 8601 text (``Z`` or an offset; UTC when there is none) or epoch seconds/milliseconds."""
    if isinstance(value, str) and value.strip():
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    seconds = None if isinstance(value, str) else number(value)
    if seconds is None or seconds <= 0:
        return None
    if seconds > 1e11:  # milliseconds
        seconds /= 1000
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def tags(value: Any) -> dict[str, str]:
    """AWS tag lists (``[{"key", "value"}]`` or ``[{"Key", "Value"}]``) or a plain map -> a dict.

    Tags that the contract would reject (empty or over-long keys) are dropped and values are cut, so a
    resource's odd tag never rejects its finding; at most 100 are kept.
    """
    pairs: list[tuple[Any, Any]]
    if isinstance(value, list):
        pairs = [(get(item, "key"), get(item, "value")) for item in value if isinstance(item, dict)]
    elif isinstance(value, dict):
        pairs = list(value.items())
    else:
        return {}
    result: dict[str, str] = {}
    for key, tag_value in pairs:
        if not isinstance(key, str) or not key.strip() or len(key.strip()) > MAX_TAG_KEY:
            continue
        result[key.strip()] = (tag_value if isinstance(tag_value, str) else "").strip()[:MAX_TAG_VALUE]
        if len(result) == MAX_TAGS:
            break
    return result
