"""ASFF ``Vulnerabilities`` (Amazon Inspector and third-party scanners) -> advisory URLs and context.

Each vulnerability keeps its id, CVSS entries (version, base score, vector, source; repeated identical
entries, which Inspector emits, are folded), the vulnerable packages (name, version, fixed version, package
manager, file path, remediation), FixAvailable, ExploitAvailable, EPSS and related ids. The finding's own
``cvss_score`` is the highest v3+ base score (v2 only when nothing newer is given). References: the NVD
page of each CVE, the GitHub advisory page of each GHSA, the vendor's advisory URL, then ReferenceUrls.
"""

from __future__ import annotations

from typing import Any

from integrations.sources.asff.fields import (
    add_url,
    advisory_url,
    as_dict,
    as_list,
    compact,
    get,
    number,
    text,
    texts,
)

MAX_VULNERABILITIES = 20
MAX_PACKAGES = 20


def read_vulnerabilities(item: dict[str, Any], path: str, references: list[str]) -> dict[str, Any]:
    """Context keys for the vulnerabilities (empty when there are none); advisory URLs go to references."""
    entries = [
        as_dict(entry, f"{path}.Vulnerabilities[{index}]")
        for index, entry in enumerate(as_list(item.get("Vulnerabilities"), f"{path}.Vulnerabilities"))
    ]
    entries = [entry for entry in entries if text(entry.get("Id"))]
    if not entries:
        return {}
    listed = [_vulnerability(entry) for entry in entries[:MAX_VULNERABILITIES]]
    for entry in entries:
        vuln_id = text(entry.get("Id"))
        for advisory in [vuln_id, *texts(entry.get("RelatedVulnerabilities"))]:
            add_url(references, advisory_url(advisory))
        add_url(references, get(entry, "Vendor", "Url"))
    for entry in entries:
        for url in texts(entry.get("ReferenceUrls")):
            add_url(references, url)
    context: dict[str, Any] = {"vulnerabilities": listed, "cve": _first_cve(entries)}
    best = _best_cvss(listed)
    if best is not None:
        context["cvss_score"], context["cvss_vector"], context["cvss_version"] = best
    first = listed[0]
    context["fix_available"] = first.get("fix_available")
    context["exploit_available"] = first.get("exploit_available")
    return compact(context)


def _first_cve(entries: list[dict[str, Any]]) -> str | None:
    for entry in entries:
        for vuln_id in [text(entry.get("Id")), *texts(entry.get("RelatedVulnerabilities"))]:
            if vuln_id.upper().startswith("CVE-"):
                return vuln_id.upper()
    return None


def _vulnerability(entry: dict[str, Any]) -> dict[str, Any]:
    cvss: list[dict[str, Any]] = []
    for score in _listed(entry.get("Cvss")):
        if not isinstance(score, dict):
            continue
        parsed = compact(
            {
                "version": text(score.get("Version")) or None,
                "score": number(score.get("BaseScore")),
                "vector": text(score.get("BaseVector")) or None,
                "source": text(score.get("Source")) or None,
            }
        )
        if parsed and parsed not in cvss:
            cvss.append(parsed)
    packages = [
        compact(
            {
                "name": text(package.get("Name")) or None,
                "version": text(package.get("Version")) or None,
                "fixed_in": text(package.get("FixedInVersion")) or None,
                "manager": text(package.get("PackageManager")) or None,
                "path": text(package.get("FilePath")) or None,
                "remediation": text(package.get("Remediation")) or None,
            }
        )
        for package in _listed(entry.get("VulnerablePackages"))[:MAX_PACKAGES]
        if isinstance(package, dict)
    ]
    return compact(
        {
            "id": text(entry.get("Id")),
            "related": texts(entry.get("RelatedVulnerabilities")),
            "cvss": cvss,
            "packages": packages,
            "fix_available": text(entry.get("FixAvailable")) or None,
            "exploit_available": text(entry.get("ExploitAvailable")) or None,
            "epss_score": number(entry.get("EpssScore")),
            "vendor": text(get(entry, "Vendor", "Name")) or None,
            "vendor_severity": text(get(entry, "Vendor", "VendorSeverity")) or None,
        }
    )


def _best_cvss(listed: list[dict[str, Any]]) -> tuple[float, str | None, str | None] | None:
    best: tuple[bool, float, str | None, str | None] | None = None
    for vulnerability in listed:
        for entry in vulnerability.get("cvss", []):
            score = entry.get("score")
            if not isinstance(score, float):
                continue
            modern = not text(entry.get("version")).startswith("2")
            candidate = (modern, score, entry.get("vector"), entry.get("version"))
            if best is None or candidate[:2] > best[:2]:
                best = candidate
    return None if best is None else best[1:]


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
