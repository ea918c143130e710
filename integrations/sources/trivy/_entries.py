"""One builder per Trivy result class: vulnerabilities, misconfigurations, secrets, licenses, suppressed.

The identity rules they implement are described in the package docstring.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from typing import Any

from app.contracts import NormalizedFinding, SourceStatus
from integrations.sources.trivy._fields import (
    OS_TARGET,
    SOURCE,
    UNSCORED,
    Result,
    Scope,
    as_dict,
    as_list,
    canonical_check,
    cause_of,
    check_id,
    finding,
    integer,
    line_of,
    location,
    references,
    required,
    stable_key,
    stable_purl,
    text,
    trivy_label,
    vuln_severity,
)

_SPACES = re.compile(r"\s+")
_STARS = re.compile(r"\*+")
_MISCONF_STATUS = {
    "PASS": SourceStatus.resolved,
    "FAIL": SourceStatus.open,
    "EXCEPTION": SourceStatus.suppressed,
}
_SECRET_RAW_KEYS = ("RuleID", "Category", "Severity", "Title", "StartLine", "EndLine")
_QUOTED_CODE = ("Code", "RenderedCause")
_KeyFn = Callable[[Scope, Result, dict[str, Any], str], str]


def read_result(scope: Scope, raw: dict[str, Any], path: str) -> Iterator[NormalizedFinding]:
    """The findings of one result, one at a time (a report holds thousands; the caller batches them)."""
    target = text(raw.get("Target"))
    cls, rtype = text(raw.get("Class")), text(raw.get("Type"))
    os_match = OS_TARGET.match(target) if cls in ("os-pkgs", "") else None
    target_key = f"{os_match['name']} ({os_match['family']})" if os_match else target
    result = Result(target, target_key, cls or ("os-pkgs" if os_match else ""), rtype, path)
    for item, item_path in _items(raw, "Vulnerabilities", path):
        yield _vulnerability(scope, result, item, item_path)
    for item, source_id in _ranked(scope, result, _items(raw, "Misconfigurations", path), _misconf_key):
        yield _misconfiguration(scope, result, item, source_id)
    for item, source_id in _ranked(scope, result, _items(raw, "Secrets", path), _secret_key):
        yield _secret(scope, result, item, source_id)
    for item, item_path in _items(raw, "Licenses", path):
        yield _license(scope, result, item, item_path)
    for item, item_path in _items(raw, "ExperimentalModifiedFindings", path):
        suppressed = _suppressed(scope, result, item, item_path)
        if suppressed is not None:
            yield suppressed


def _items(raw: dict[str, Any], key: str, path: str) -> list[tuple[dict[str, Any], str]]:
    return [
        (as_dict(v, f"{path}.{key}[{i}]"), f"{path}.{key}[{i}]")
        for i, v in enumerate(as_list(raw.get(key), f"{path}.{key}"))
    ]


def _ranked(
    scope: Scope, result: Result, items: list[tuple[dict[str, Any], str]], key_of: _KeyFn
) -> list[tuple[dict[str, Any], str]]:
    """Pair each entry with its source_id; entries sharing a key are numbered in line order (#2, #3...)."""
    keys = [key_of(scope, result, item, path) for item, path in items]
    groups: dict[str, list[int]] = {}
    for index, key in enumerate(keys):
        groups.setdefault(key, []).append(index)
    for members in groups.values():
        if len(members) > 1:
            members.sort(key=lambda i: (line_of(items[i][0]), i))
            for position, index in enumerate(members[1:], start=2):
                keys[index] = f"{keys[index]}#{position}"
    return [(item, key) for (item, _path), key in zip(items, keys, strict=True)]


def _suppressed(scope: Scope, result: Result, raw: dict[str, Any], path: str) -> NormalizedFinding | None:
    """A finding Trivy suppressed (VEX, .trivyignore) and shows with --show-suppressed."""
    item, kind = raw.get("Finding"), text(raw.get("Type"))
    if not isinstance(item, dict):
        return None
    if kind == "vulnerability":
        built = _vulnerability(scope, result, item, path)
    elif kind == "misconfiguration":
        built = _misconfiguration(scope, result, item, _misconf_key(scope, result, item, path))
    elif kind == "secret":
        built = _secret(scope, result, item, _secret_key(scope, result, item, path))
    elif kind == "license":
        built = _license(scope, result, item, path)
    else:
        return None
    context = {
        **built.context,
        "suppression": text(raw.get("Status")) or None,
        "suppression_statement": text(raw.get("Statement")) or None,
        "suppression_source": text(raw.get("Source")) or None,
    }
    return built.model_copy(update={"status": SourceStatus.suppressed, "context": context})


def _vulnerability(scope: Scope, result: Result, item: dict[str, Any], path: str) -> NormalizedFinding:
    """The hot path (reports hold thousands): plain dict reads, one validation, optional keys only if set."""
    vuln_id = required(item, "VulnerabilityID", path)
    pkg, version = text(item.get("PkgName")), text(item.get("InstalledVersion"))
    pkg_path, fixed = text(item.get("PkgPath")), text(item.get("FixedVersion"))
    identifier = item.get("PkgIdentifier")
    purl = (text(identifier.get("PURL")) if isinstance(identifier, dict) else "") or text(item.get("Ref"))
    # PkgPath, when present, replaces the target: Trivy moved jars from one target per file to one "Java"
    # target with PkgPath, and the file is the finer location anyway.
    base = ["vuln", scope.artifact, pkg_path or result.target_key, pkg, version, vuln_id]
    aliases: list[str] = []
    if purl:
        aliases.append(f"{SOURCE}:{stable_key('vuln', vuln_id, base)}")
        base.append(stable_purl(purl))
    severity, cvss = vuln_severity(item)
    context = {**scope.context, "kind": "vulnerability", "target": result.target, "class": result.cls}
    context.update(pkg_name=pkg, installed_version=version, **cvss)
    optional = (
        ("fixed_version", fixed),
        ("pkg_path", pkg_path),
        ("purl", purl),
        ("trivy_status", item.get("Status")),
        ("severity_source", item.get("SeveritySource")),
        ("trivy_severity", item.get("Severity")),
        ("vendor_ids", item.get("VendorIDs")),
        ("cwe_ids", item.get("CweIDs")),
        ("published", item.get("PublishedDate")),
    )
    context.update((key, value) for key, value in optional if value)
    heading = f"{vuln_id} in {pkg} {version}".replace("  ", " ").strip()
    title = text(item.get("Title"))
    return finding(
        scope,
        source_id=stable_key("vuln", vuln_id, base),
        type=vuln_id,
        title=f"{heading}: {title}" if title else heading,
        description=text(item.get("Description")) or None,
        severity=severity,
        location=location(scope, result, pkg_path, None),
        references=references(item.get("PrimaryURL"), item.get("References")),
        remediation=f"Upgrade {pkg} to {fixed}." if fixed else None,
        status=SourceStatus.resolved if item.get("Status") == "not_affected" else SourceStatus.open,
        aliases=aliases,
        context=context,
        raw=item,
    )


def _misconf_key(scope: Scope, result: Result, item: dict[str, Any], path: str) -> str:
    check = canonical_check(check_id(item, path))
    resource = text(cause_of(item).get("Resource"))
    return stable_key("misconf", check, ["misconf", scope.artifact, result.target, check, resource])


def _misconfiguration(
    scope: Scope, result: Result, item: dict[str, Any], source_id: str
) -> NormalizedFinding:
    shown_id = check_id(item, result.path)
    cause = cause_of(item)
    cause_resource = text(cause.get("Resource"))
    status = text(item.get("Status")).upper()
    title = text(item.get("Title")) or shown_id
    where = f" ({cause_resource})" if cause_resource else ""
    message = text(item.get("Message"))
    description = "\n\n".join(p for p in (text(item.get("Description")), message) if p)
    context = {
        **scope.context,
        "kind": "misconfiguration",
        "target": result.target,
        "target_type": result.type or None,
        "check_id": text(item.get("ID")) or None,
        "avd_id": text(item.get("AVDID")) or None,
        "check_type": text(item.get("Type")) or None,
        "check_namespace": text(item.get("Namespace")) or None,
        "cause_resource": cause_resource or None,
        "provider": text(cause.get("Provider")) or None,
        "service": text(cause.get("Service")) or None,
        "end_line": integer(cause.get("EndLine")),
        "message": message or None,
        "check_status": status or None,
        "trivy_severity": text(item.get("Severity")) or None,
    }
    return finding(
        scope,
        source_id=source_id,
        type=shown_id,
        title=f"{shown_id}: {title} in {result.target}{where}",
        description=description or None,
        severity=trivy_label(item.get("Severity")) or UNSCORED,
        location=location(scope, result, "", integer(cause.get("StartLine"))),
        references=references(item.get("PrimaryURL"), item.get("References")),
        remediation=text(item.get("Resolution")) or None,
        status=_MISCONF_STATUS.get(status, SourceStatus.open),
        aliases=[],
        context=context,
        raw=_without_code(item, cause),
    )


def _without_code(item: dict[str, Any], cause: dict[str, Any]) -> dict[str, Any]:
    """The misconfiguration minus its quoted code, which can show a secret the secret scanner masks."""
    if not any(k in cause for k in _QUOTED_CODE):
        return item
    return {**item, "CauseMetadata": {k: v for k, v in cause.items() if k not in _QUOTED_CODE}}


def _secret_key(scope: Scope, result: Result, item: dict[str, Any], path: str) -> str:
    rule = required(item, "RuleID", path)
    match = _STARS.sub("*", _SPACES.sub(" ", text(item.get("Match"))))
    where = hashlib.sha256(match.encode()).hexdigest()[:32] if match else f"line:{line_of(item)[0]}"
    return stable_key("secret", rule, ["secret", scope.artifact, result.target, rule, where])


def _secret(scope: Scope, result: Result, item: dict[str, Any], source_id: str) -> NormalizedFinding:
    rule = required(item, "RuleID", result.path)
    title = text(item.get("Title")) or rule
    start = integer(item.get("StartLine"))
    redacted = {k: item[k] for k in _SECRET_RAW_KEYS if k in item}
    redacted["Target"] = result.target
    redacted["Match"] = "[redacted by tocsin]"
    at = f" at line {start}" if start is not None else ""
    context = {
        **scope.context,
        "kind": "secret",
        "target": result.target,
        "rule_id": rule,
        "category": text(item.get("Category")) or None,
        "end_line": integer(item.get("EndLine")),
        "trivy_severity": text(item.get("Severity")) or None,
    }
    return finding(
        scope,
        source_id=source_id,
        type=f"secret:{rule}",
        title=f"Secret: {title} ({rule}) in {result.target}",
        description=f"Trivy found a {title} in {result.target}{at}. The value is not stored here.",
        severity=trivy_label(item.get("Severity")) or UNSCORED,
        location=location(scope, result, "", start),
        references=[],
        remediation="Revoke and rotate the secret, then remove it from the file and its history.",
        status=SourceStatus.open,
        aliases=[],
        context=context,
        raw=redacted,
    )


def _license(scope: Scope, result: Result, item: dict[str, Any], path: str) -> NormalizedFinding:
    license_name = required(item, "Name", path)
    pkg, file_path = text(item.get("PkgName")), text(item.get("FilePath"))
    category = text(item.get("Category"))
    base = ["license", scope.artifact, result.target, pkg, file_path, license_name]
    subject = pkg or file_path or result.target
    context = {
        **scope.context,
        "kind": "license",
        "target": result.target,
        "license": license_name,
        "category": category or None,
        "pkg_name": pkg or None,
        "file_path": file_path or None,
        "confidence": item.get("Confidence"),
        "trivy_severity": text(item.get("Severity")) or None,
    }
    return finding(
        scope,
        source_id=stable_key("license", license_name, base),
        type=f"license:{license_name}",
        title=f"License {license_name} ({category or 'unknown'}) in {subject}",
        description=None,
        severity=trivy_label(item.get("Severity")) or UNSCORED,
        location=location(scope, result, file_path, None),
        references=references(item.get("Link"), None),
        remediation=None,
        status=SourceStatus.open,
        aliases=[],
        context=context,
        raw=item,
    )
