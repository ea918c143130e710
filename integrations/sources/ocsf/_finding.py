"""One OCSF finding -> one native finding. The rules are described in the package docstring."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.contracts import MAX_ID, MAX_TEXT, MAX_TITLE, NormalizedFinding, SourceStatus, parse_severity
from integrations.sources.asff.fields import (
    add_url,
    advisory_url,
    as_dict,
    as_list,
    compact,
    count,
    get,
    mapping,
    number,
    tags_of,
    text,
    texts,
    timestamp,
)
from integrations.sources.asff.products import aws_identity, source_from_names, source_from_product_arn

FINDING_CLASSES = frozenset({2001, 2002, 2003, 2004, 2006, 2007})
MANUAL_CONFIDENCE = 25
MAX_CONTEXT_RESOURCES = 20
_SEVERITY_IDS = {1: "informational", 2: "low", 3: "medium", 4: "high", 5: "critical", 6: "critical"}
_SEVERITY_TEXT = {"fatal": "critical", "unknown": "low", "other": "low"}
_STATUS_TEXT = {
    "resolved": SourceStatus.resolved,
    "archived": SourceStatus.resolved,
    "closed": SourceStatus.resolved,
    "suppressed": SourceStatus.suppressed,
}
_STATUS_IDS = {3: SourceStatus.suppressed, 4: SourceStatus.resolved, 5: SourceStatus.resolved}
_CONFIDENCE_IDS = {1: 30, 2: 60, 3: 90}
_PASS = frozenset({"PASS", "PASSED"})


def read_finding(item: dict[str, Any], path: str) -> NormalizedFinding:
    class_uid = item.get("class_uid")
    if class_uid is None:
        raise ValueError(f"not an OCSF finding: {path}.class_uid is missing")
    if class_uid not in FINDING_CLASSES:
        classes = ", ".join(str(c) for c in sorted(FINDING_CLASSES))
        raise ValueError(f"{path}.class_uid: {class_uid!r} is not an OCSF finding class we read ({classes})")
    info_key = "finding_info" if "finding_info" in item or class_uid != 2001 else "finding"
    info = as_dict(item.get(info_key), f"{path}.{info_key}")
    uid = text(info.get("uid"))
    if not uid:
        raise ValueError(f"not an OCSF finding: {path}.{info_key}.uid is missing")
    if len(uid) > MAX_ID:
        raise ValueError(f"{path}.{info_key}.uid: longer than {MAX_ID} characters")

    product = as_dict(get(item, "metadata", "product"), f"{path}.metadata.product")
    resources = [
        as_dict(entry, f"{path}.resources[{index}]")
        for index, entry in enumerate(as_list(item.get("resources"), f"{path}.resources"))
    ]
    first = resources[0] if resources else {}
    account = text(get(first, "owner", "account", "uid")) or text(get(item, "cloud", "account", "uid"))
    region = text(first.get("region")) or text(get(item, "cloud", "region"))
    source = _source(product)
    source_id, aliases = uid, []
    native = aws_identity(source, uid, account, region)
    if native is not None:
        source_id, aliases = native.source_id, [native.arn] if native.arn else []

    references: list[str] = []
    vulnerabilities = _vulnerabilities(item, path, references)
    remediation_notes = _references(item, info, references)
    status, result = _status(item)
    confidence = _confidence(item, result)
    kind = _type(item, info, vulnerabilities)
    context = compact(
        {
            "class": text(item.get("class_name")) or None,
            "class_uid": class_uid,
            "product": text(product.get("name")) or None,
            "vendor": text(product.get("vendor_name")) or None,
            "event_code": text(get(item, "metadata", "event_code")) or None,
            "finding_uid": uid if source_id != uid else None,
            "finding_types": texts(info.get("types")),
            "status": text(item.get("status")) or text(item.get("state")) or None,
            "status_code": result or None,
            "compliance": _compliance(item),
            "categories": _categories(get(item, "unmapped", "categories")),
            "risk": text(item.get("risk_details")) or None,
            "cloud_provider": text(get(item, "cloud", "provider")) or None,
            "resources": [_listed(entry) for entry in resources[:MAX_CONTEXT_RESOURCES]],
            "vulnerabilities": vulnerabilities,
            "cve": next((v["cve"] for v in vulnerabilities if "cve" in v), None),
            "remediation_notes": remediation_notes,
        }
    )
    return NormalizedFinding.model_validate(
        {
            "source": source,
            "source_id": source_id,
            "type": kind[:512],
            "title": (text(info.get("title")) or text(item.get("message")) or kind)[:MAX_TITLE].rstrip(),
            "description": _description(item, info),
            "severity": _severity(item),
            "resource": _resource(first, account, region),
            "observed_at": _observed(item, info),
            "first_observed_at": _time(info, "first_seen_time") or _time(info, "created_time"),
            "occurrences": count(item.get("count")),
            "confidence": confidence,
            "references": references,
            "remediation": text(get(item, "remediation", "desc"))[:MAX_TEXT] or None,
            "status": status,
            "aliases": aliases,
            "context": context,
            "raw": item,
        }
    )


def _source(product: dict[str, Any]) -> str:
    uid = text(product.get("uid"))
    return (
        (source_from_product_arn(uid) if uid else None)
        or source_from_names(text(product.get("vendor_name")), text(product.get("name")))
        or "ocsf"
    )


def _severity(item: dict[str, Any]) -> float:
    severity_id = item.get("severity_id")
    label = _SEVERITY_IDS.get(severity_id) if isinstance(severity_id, int) else None
    if label is None:
        label = text(item.get("severity")).lower()
        label = _SEVERITY_TEXT.get(label, label) or "low"
    try:
        return parse_severity(label)
    except ValueError:
        return parse_severity("low")


def _status(item: dict[str, Any]) -> tuple[SourceStatus, str]:
    """The status and the check result (PASS, FAIL, MANUAL...; '' when the finding has none)."""
    lifecycle_text = (text(item.get("status")) or text(item.get("state"))).lower()
    lifecycle = _STATUS_TEXT.get(lifecycle_text)
    if not lifecycle_text:
        status_id = item.get("status_id", item.get("state_id"))
        lifecycle = _STATUS_IDS.get(status_id) if isinstance(status_id, int) else None
    result = (text(item.get("status_code")) or text(get(item, "compliance", "status"))).upper()
    if lifecycle is SourceStatus.resolved or result in _PASS:
        return SourceStatus.resolved, result
    if lifecycle is SourceStatus.suppressed:
        return SourceStatus.suppressed, result
    return SourceStatus.open, result


def _confidence(item: dict[str, Any], result: str) -> int | None:
    score = number(item.get("confidence_score"))
    if score is not None and 0 <= score <= 100:
        return int(score)
    confidence_id = item.get("confidence_id")
    if isinstance(confidence_id, int) and confidence_id in _CONFIDENCE_IDS:
        return _CONFIDENCE_IDS[confidence_id]
    return MANUAL_CONFIDENCE if result == "MANUAL" else None


def _type(item: dict[str, Any], info: dict[str, Any], vulnerabilities: list[dict[str, Any]]) -> str:
    types = texts(info.get("types"))
    return (
        next((str(v["cve"]) for v in vulnerabilities if "cve" in v), "")
        or text(get(item, "compliance", "control"))
        or text(get(item, "metadata", "event_code"))
        or (types[0] if types else "")
        or text(info.get("title"))
        or text(item.get("class_name"))
        or "ocsf"
    )


def _description(item: dict[str, Any], info: dict[str, Any]) -> str | None:
    title = text(info.get("title"))
    parts: list[str] = []
    for part in (text(item.get("status_detail")) or text(item.get("message")), text(info.get("desc"))):
        if part and part != title and part not in parts:
            parts.append(part)
    return "\n\n".join(parts)[:MAX_TEXT] or None


def _resource(first: dict[str, Any], account: str, region: str) -> dict[str, Any]:
    metadata = get(first, "data", "metadata")
    tags: dict[str, str] = {}
    for source in (first.get("tags"), get(metadata, "tags"), get(metadata, "labels")):
        tags.update(tags_of(_tag_map(source)))
    return {
        "type": text(first.get("type"))[:256] or None,
        "id": (text(first.get("uid")) or text(first.get("name")))[:MAX_ID] or None,
        "account_id": account[:128] or None,
        "region": region[:64] or None,
        "tags": tags_of(tags),
    }


def _tag_map(value: Any) -> dict[str, Any]:
    """OCSF ``[{name, value}]``, AWS ``[{Key, Value}]`` or a plain map, as a map."""
    if isinstance(value, dict):
        return value
    tags: dict[str, Any] = {}
    for entry in value if isinstance(value, list) else []:
        if isinstance(entry, dict):
            key = entry.get("name", entry.get("key", entry.get("Key")))
            if isinstance(key, str):
                tags[key] = entry.get("value", entry.get("Value", ""))
    return tags


def _listed(entry: dict[str, Any]) -> dict[str, Any]:
    return compact(
        {
            "type": text(entry.get("type")) or None,
            "uid": text(entry.get("uid")) or None,
            "name": text(entry.get("name")) or None,
            "region": text(entry.get("region")) or None,
            "namespace": text(entry.get("namespace")) or None,
            "group": text(get(entry, "group", "name")) or None,
            "labels": texts(entry.get("labels")),
        }
    )


def _references(item: dict[str, Any], info: dict[str, Any], references: list[str]) -> list[str]:
    """Add the URLs; return the remediation references that are not URLs (commands, prose)."""
    notes: list[str] = []
    for ref in texts(get(item, "remediation", "references")):
        if ref.lower().startswith(("https://", "http://")):
            add_url(references, ref)
        elif ref not in notes and len(notes) < 20:
            notes.append(ref[:1024])
    add_url(references, get(item, "unmapped", "related_url"))
    for url in texts(get(item, "unmapped", "additional_urls")):
        add_url(references, url)
    add_url(references, info.get("src_url"))
    return notes


def _vulnerabilities(item: dict[str, Any], path: str, references: list[str]) -> list[dict[str, Any]]:
    """Vulnerability Findings: CVE, CVSS and affected packages of each; advisory URLs to references."""
    listed: list[dict[str, Any]] = []
    for index, entry in enumerate(as_list(item.get("vulnerabilities"), f"{path}.vulnerabilities")[:20]):
        entry = as_dict(entry, f"{path}.vulnerabilities[{index}]")
        cve = text(get(entry, "cve", "uid"))
        add_url(references, advisory_url(cve) if cve else None)
        for url in texts(entry.get("references")):
            add_url(references, url)
        vulnerability = compact(
            {
                "cve": cve or None,
                "title": text(entry.get("title")) or None,
                "cvss": [_cvss(score) for score in _objects(get(entry, "cve", "cvss"))],
                "packages": [_package(package) for package in _objects(entry.get("affected_packages"))[:20]],
                "fix_available": entry.get("fix_available")
                if isinstance(entry.get("fix_available"), bool)
                else None,
            }
        )
        if vulnerability:
            listed.append(vulnerability)
    return listed


def _objects(value: Any) -> list[dict[str, Any]]:
    return [entry for entry in value if isinstance(entry, dict)] if isinstance(value, list) else []


def _cvss(score: dict[str, Any]) -> dict[str, Any]:
    return compact(
        {
            "version": text(score.get("version")) or None,
            "score": number(score.get("base_score")),
            "vector": text(score.get("vector_string")) or None,
        }
    )


def _package(package: dict[str, Any]) -> dict[str, Any]:
    return compact(
        {
            "name": text(package.get("name")) or None,
            "version": text(package.get("version")) or None,
            "fixed_in": text(package.get("fixed_in_version")) or None,
            "path": text(package.get("path")) or None,
        }
    )


def _compliance(item: dict[str, Any]) -> dict[str, Any]:
    compliance = mapping(item.get("compliance"))
    frameworks = get(item, "unmapped", "compliance")
    return compact(
        {
            "control": text(compliance.get("control")) or None,
            "standards": texts(compliance.get("standards")),
            "requirements": texts(compliance.get("requirements")),
            "status": text(compliance.get("status")) or None,
            "frameworks": {
                key: texts(value)
                for key, value in frameworks.items()
                if isinstance(key, str) and texts(value)
            }
            if isinstance(frameworks, dict)
            else None,
        }
    )


def _categories(value: Any) -> list[str]:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return texts(value)


def _observed(item: dict[str, Any], info: dict[str, Any]) -> datetime | None:
    return (
        _time(info, "last_seen_time")
        or _time(info, "modified_time")
        or _time(item, "time")
        or timestamp(item.get("event_time"))
    )


def _time(obj: dict[str, Any], key: str) -> datetime | None:
    """``<key>_dt`` (ISO text), else ``<key>`` as ISO text or epoch milliseconds (seconds when small)."""
    moment = timestamp(obj.get(f"{key}_dt"))
    if moment is not None:
        return moment
    value = obj.get(key)
    if isinstance(value, str):
        return timestamp(value)
    epoch = number(value)
    if epoch is None or epoch <= 0:
        return None
    try:
        return datetime.fromtimestamp(epoch / 1000 if epoch >= 1e11 else epoch, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None
