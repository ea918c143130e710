"""Field readers shared by the Trivy finding builders: tolerant of Go's nulls, strict about shapes.

Kept apart from the builders so each stays small; nothing here knows about result classes.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from app.contracts import (
    MAX_ID,
    MAX_TEXT,
    MAX_TITLE,
    SEVERITY_LABEL_SCORE,
    Location,
    NormalizedFinding,
    Resource,
    Severity,
)

# Re-exported: this module's users read every field helper from one place.
from integrations.sources.values import as_list as as_list

SOURCE = "trivy"
LABELS = {
    label.upper(): SEVERITY_LABEL_SCORE[Severity(label)] for label in ("critical", "high", "medium", "low")
}
VENDOR_LEVELS = {1: LABELS["LOW"], 2: LABELS["MEDIUM"], 3: LABELS["HIGH"], 4: LABELS["CRITICAL"]}
UNSCORED = LABELS["LOW"]
MAX_REFERENCES = 50
OS_TARGET = re.compile(r"^(?P<name>.*?) \((?P<family>[^\s()]+) [^()]*\)$")
_MAX_TYPE = 512  # NormalizedFinding.type's max_length
_HTTP = ("https://", "http://")
_CVSS_KEYS = (
    ("V3Score", "V3Vector", "cvss_v3_score", "cvss_v3_vector", "cvss_v3_source"),
    ("V40Score", "V40Vector", "cvss_v4_score", "cvss_v4_vector", "cvss_v4_source"),
)
CHECK_ID = re.compile(r"^(?:AVD-)?([A-Z]+)-?0*(\d+)$")


@dataclass(slots=True)
class Scope:
    """What the results of one report (or one Kubernetes resource) are about."""

    artifact: str
    resource: Resource
    repository: str | None
    code_paths: bool
    observed_at: datetime | None
    context: dict[str, Any]


@dataclass(slots=True)
class Result:
    """One entry of ``Results``: a target (OS, manifest, file) with its class."""

    target: str
    target_key: str
    cls: str
    type: str
    path: str


def finding(scope: Scope, **fields: Any) -> NormalizedFinding:
    """The one validation per item."""
    fields["title"] = fields["title"][:MAX_TITLE].rstrip()
    fields["type"] = fields["type"][:_MAX_TYPE]
    if fields["description"]:
        fields["description"] = fields["description"][:MAX_TEXT]
    return NormalizedFinding.model_validate(
        {"source": SOURCE, "resource": scope.resource, "observed_at": scope.observed_at, **fields}
    )


def location(scope: Scope, result: Result, file_path: str, line: int | None) -> Location | None:
    """The file when there is one: never the OS target or the license summary, which are not files."""
    path = file_path or ("" if result.cls in ("os-pkgs", "license") else result.target)
    if not (path or scope.repository):
        return None
    if line is not None and not 0 <= line <= 10_000_000:
        line = None
    return Location(repository=scope.repository, path=path[:MAX_ID] or None, line=line)


def vuln_severity(item: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    source = text(item.get("SeveritySource"))
    cvss = pick_cvss(item.get("CVSS"), source)
    vendor = item.get("VendorSeverity")
    level = vendor.get(source) if isinstance(vendor, dict) and source else None
    label = (VENDOR_LEVELS.get(level) if isinstance(level, int) else None) or trivy_label(
        item.get("Severity")
    )
    if label is not None:
        return label, cvss
    score = cvss.get("cvss_v3_score") or cvss.get("cvss_v4_score")
    if isinstance(score, int | float) and 0 < score <= 10:
        return float(score) * 10, cvss
    return UNSCORED, cvss


def pick_cvss(value: Any, preferred: str) -> dict[str, Any]:
    """CVSS v3 and v4, each from the severity vendor if it has it, else NVD, else the others in order."""
    if not isinstance(value, dict) or not value:
        return {}
    picked: dict[str, Any] = {}
    for vendor in dict.fromkeys([preferred, "nvd", *value]):
        entry = value.get(vendor)
        if not isinstance(entry, dict):
            continue
        for score_key, vector_key, score_name, vector_name, source_name in _CVSS_KEYS:
            if score_name not in picked and isinstance(entry.get(score_key), int | float):
                picked[score_name] = entry[score_key]
                picked[vector_name] = text(entry.get(vector_key)) or None
                picked[source_name] = vendor
    return picked


def references(primary: Any, refs: Any) -> list[str]:
    """PrimaryURL then References: http(s) only, each at most MAX_ID characters, no repeats, at most 50."""
    candidates = [primary, *refs] if isinstance(refs, list) else [primary]
    urls = [ref for ref in candidates if isinstance(ref, str) and ref.startswith(_HTTP)]
    if urls and max(map(len, urls)) > MAX_ID:
        urls = [url for url in urls if len(url) <= MAX_ID]
    return list(dict.fromkeys(urls))[:MAX_REFERENCES]


def stable_key(kind: str, label: str, parts: list[str]) -> str:
    digest = hashlib.sha256(orjson.dumps(parts)).hexdigest()[:32]
    return f"{kind}:{label[:200]}:{digest}"


def canonical_check(check: str) -> str:
    match = CHECK_ID.match(check.upper())
    return f"{match[1]}-{int(match[2])}" if match else check.upper()


def stable_purl(purl: str) -> str:
    """The PURL without its ``distro`` qualifier, which changes with every point release."""
    base, sep, rest = purl.partition("?")
    if not sep:
        return purl
    qualifiers, hash_sep, subpath = rest.partition("#")
    kept = "&".join(q for q in qualifiers.split("&") if q and not q.startswith("distro="))
    return base + (f"?{kept}" if kept else "") + hash_sep + subpath


def check_id(item: dict[str, Any], path: str) -> str:
    check = text(item.get("AVDID")) or text(item.get("ID"))
    if not check:
        raise ValueError(f"{path}: a misconfiguration has neither ID nor AVDID")
    return check


def cause_of(item: dict[str, Any]) -> dict[str, Any]:
    cause = item.get("CauseMetadata")
    return cause if isinstance(cause, dict) else {}


def trivy_label(value: Any) -> float | None:
    """A Trivy severity label as its 0-100 score (UNKNOWN and anything else -> None)."""
    return LABELS.get(value.strip().upper()) if isinstance(value, str) else None


def line_of(item: dict[str, Any]) -> tuple[int, int]:
    cause = cause_of(item)
    source = cause if "StartLine" in cause else item
    return (integer(source.get("StartLine")) or 0, integer(source.get("EndLine")) or 0)


def timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def required(item: dict[str, Any], key: str, path: str) -> str:
    value = text(item.get(key))
    if not value:
        raise ValueError(f"{path}: an entry has no {key}")
    return value


def as_dict(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected an object, got {type(value).__name__}")
    return value
