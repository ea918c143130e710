"""Identity of a finding (pure).

The fingerprint is computed from what a finding *is*, never from volatile text (description, timestamps,
counts): the source's own id when it has one (``source:source_id``), else a canonical key of type +
resource id + location. Every key a finding is reported under (its primary key and the ``aliases`` a parser
adds, such as the GuardDuty id of an ASFF finding) is stored as an alias, so any path finds the same row.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from app.contracts import NormalizedFinding


@dataclass(frozen=True, slots=True)
class Identity:
    fingerprint: str
    primary_key: str
    alias_keys: tuple[str, ...]


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def alias_hash(key: str) -> str:
    return _sha256(key)


def primary_key(finding: NormalizedFinding) -> str:
    loc = finding.location
    return primary_key_of(
        finding.source,
        finding.source_id,
        finding.type,
        finding.resource.id,
        loc.repository if loc else None,
        loc.path if loc else None,
        loc.line if loc else None,
    )


def primary_key_of(
    source: str,
    source_id: str | None,
    type_: str,
    resource_id: str | None,
    repository: str | None,
    path: str | None,
    line: int | None,
) -> str:
    """The primary key from the identity fields (also as stored on a finding row, which never changes
    them): ``source:source_id``, else a canonical key of type, resource and location."""
    if source_id:
        return f"{source.lower()}:{source_id}"
    parts = [type_, resource_id or "", repository or "", path or "", line if line is not None else ""]
    return "content:" + orjson.dumps(parts).decode()


def identity_of(finding: NormalizedFinding) -> Identity:
    key = primary_key(finding)
    keys = [key]
    for alias in finding.aliases:
        if alias not in keys:
            keys.append(alias)
    return Identity(fingerprint=_sha256(key), primary_key=key, alias_keys=tuple(keys))


def content_hash(finding: NormalizedFinding) -> str:
    """A digest of what a user would call the finding's content; a change makes the repeat 'updated'."""
    res = finding.resource
    loc = finding.location
    material: list[Any] = [
        finding.title,
        finding.description,
        round(finding.severity, 3),
        res.type,
        res.account_id,
        res.region,
        res.tags,
        res.public,
        [loc.repository, loc.path, loc.line] if loc else None,
        finding.confidence,
        finding.references,
        finding.remediation,
        finding.data_sensitivity,
        finding.context,
        finding.status,
    ]
    blob = orjson.dumps(material, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str)
    return hashlib.blake2b(blob, digest_size=16).hexdigest()
