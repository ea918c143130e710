"""Prowler JSON output -> native findings (pure: no DB, no HTTP).

Layouts read: Prowler 2 JSON (``-M json``: one object per line, ``Account Number``, ``Control``,
``Status``...; the HTTP endpoint hands JSON lines over as a list of the decoded objects, and a single
object is accepted), Prowler 3 JSON (``-M json``: a list of ``CheckID``, ``FindingUniqueId``, ``Status``,
``StatusExtended``... for AWS, Azure and GCP) and, for convenience, Prowler 4+'s OCSF JSON, which is handed
to the ``ocsf`` parser unchanged (``integrations.sources.ocsf``: same findings, same keys, whichever format
name the client used). ``detect`` only claims Prowler 2 and 3 JSON; OCSF is detected as ``ocsf``.

Status: FAIL -> open; PASS -> resolved, so a re-scan closes what an earlier scan found; WARNING (Prowler 3's
allowlist) or ``Muted: true`` -> suppressed; INFO (Prowler 2 and 3; renamed MANUAL in Prowler 4) and
MANUAL -> open with confidence 25 unless the check is otherwise known, as the ``ocsf`` parser treats
MANUAL: a check nobody verified stays listed, scored low. (DefectDojo keeps FAIL only.)

Identity. ``source`` is ``prowler``, as the ``ocsf`` parser names Prowler's OCSF findings. ``source_id`` is
Prowler's own ``FindingUniqueId`` when present; otherwise the same formula Prowler 3 uses for it,
``prowler-<provider>-<check>-<account>-<region>-<resource id>`` (Azure: ``...-<subscription>-<resource
id>``, GCP: ``...-<project>-<resource id>``). Prowler 4+ writes that very string as the OCSF
``finding_info.uid`` (``prowler-aws-iam_role_..._trust_relationship-123456789012-us-east-1-<role>``), so a
check on a resource keeps its key when Prowler is upgraded from 3 (JSON) to 4+ (OCSF), as long as the check
keeps its name and Prowler the resource id. Prowler 2 has neither a unique id nor the Prowler 3 check names
(``check114``/``extra796`` became ``iam_root_hardware_mfa_enabled``...), so its key has the same shape
with the Prowler 2 check (the ``[check114]`` prefix of ``Control``, else ``Control ID``) and ``Resource
ID``: stable across Prowler 2 runs, never equal to a Prowler 3+ key (no mapping table is shipped).

Several results with one key in one report (Prowler 2 wrote some checks once per item without a
``Resource ID``) become one finding: the first FAIL, else the first MANUAL/INFO, else WARNING, else PASS,
with the number of results in ``context.results``. One failing item keeps the finding open.

Fields. Title ``CheckTitle`` (Prowler 3) or ``Title Text``/the ``Control`` text (Prowler 2); description
the result's statement (``StatusExtended``/``Message``) then the check's ``Description``; severity from the
label (unknown -> low); resource ``ResourceArn``, else ``ResourceId`` (AWS), ``ResourceId`` (Azure,
GCP), with its type, account, region and tags; ``observed_at`` ``AssessmentStartTime``/``Timestamp``;
remediation the recommendation text; references ``RelatedUrl``, the recommendation URL and remediation
code entries that are URLs (other code, CLI commands and IaC snippets, goes to
``context.remediation_notes``, as the ``ocsf`` parser does). Context uses the ``ocsf`` parser's keys where
they mean the same (``event_code``, ``status_code``, ``compliance.frameworks``, ``categories``, ``risk``,
``cloud_provider``).

``parse`` raises ``ValueError`` naming the format and the JSON path of the first missing field
(``$[2].CheckID``) when an item is not a Prowler result; one bad item rejects the document.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from app.contracts import MAX_ID, MAX_TEXT, MAX_TITLE, NormalizedFinding, SourceStatus, parse_severity
from integrations.sources import ocsf
from integrations.sources.asff.fields import add_url, compact, get, mapping, tags_of, text, texts, timestamp

name = "prowler"

MANUAL_CONFIDENCE = 25
_CHECK_PREFIX = re.compile(r"^\[(?P<check>[^\]\s]+)\]\s*(?P<title>.*)$", re.DOTALL)
_STATUS = {
    "FAIL": SourceStatus.open,
    "PASS": SourceStatus.resolved,
    "WARNING": SourceStatus.suppressed,
    "MUTED": SourceStatus.suppressed,
    "INFO": SourceStatus.open,
    "MANUAL": SourceStatus.open,
}
_UNVERIFIED = frozenset({"INFO", "MANUAL"})
# Which result stands for a key that several results share: lower wins.
_RANK = {"FAIL": 0, "INFO": 1, "MANUAL": 1, "WARNING": 2, "MUTED": 2, "PASS": 3}
_SEVERITIES = {"critical", "high", "medium", "low", "informational", "info"}
_CODE_KEYS = ("NativeIaC", "Terraform", "CLI", "Other")


def detect(document: Any) -> bool:
    """Prowler 2 or 3 JSON: a result object, or a list whose first item is one."""
    first = document[0] if isinstance(document, list) and document else document
    return isinstance(first, dict) and (_is_v3(first) or _is_v2(first))


def iter_findings(document: Any, *, secret_salt: str | None = None) -> Iterator[NormalizedFinding]:
    """Every result (OCSF documents through the ``ocsf`` parser). Raises ValueError naming the JSON path."""
    if ocsf.detect(document):
        yield from ocsf.iter_findings(document, secret_salt=secret_salt)
        return
    if isinstance(document, dict):
        items, prefix = [document], None
    elif isinstance(document, list):
        items, prefix = document, "$"
    else:
        raise ValueError(
            "not a Prowler JSON document: expected a list of Prowler 3 results, Prowler 2 JSON lines or "
            f"Prowler OCSF findings, got {type(document).__name__}"
        )
    chosen: dict[str, tuple[int, NormalizedFinding, int]] = {}
    for index, item in enumerate(items):
        path = f"{prefix}[{index}]" if prefix else "$"
        if not isinstance(item, dict):
            raise ValueError(f"not a Prowler result: {path} is a {type(item).__name__}, not an object")
        if "CheckID" in item:
            finding = _v3(item, path)
        elif "Control" in item:
            finding = _v2(item, path)
        else:
            raise ValueError(
                f"not a Prowler JSON result: {path}.CheckID (Prowler 3) or {path}.Control (Prowler 2) is "
                "missing; Prowler 4+ OCSF findings are read too"
            )
        key = finding.source_id or ""
        rank = _RANK.get(text(item.get("Status")).upper(), 1)
        current = chosen.get(key)
        if current is None:
            chosen[key] = (rank, finding, 1)
        elif rank < current[0]:
            chosen[key] = (rank, finding, current[2] + 1)
        else:
            chosen[key] = (current[0], current[1], current[2] + 1)
    yield from (_counted(finding, results) for _rank, finding, results in chosen.values())


def parse(document: Any, *, secret_salt: str | None = None) -> list[NormalizedFinding]:
    """``iter_findings`` as a list, for small documents."""
    return list(iter_findings(document, secret_salt=secret_salt))


def _is_v3(item: dict[str, Any]) -> bool:
    return "CheckID" in item and "Status" in item and ("FindingUniqueId" in item or "Provider" in item)


def _is_v2(item: dict[str, Any]) -> bool:
    return "Account Number" in item and "Control" in item and "Status" in item


def _counted(finding: NormalizedFinding, results: int) -> NormalizedFinding:
    if results == 1:
        return finding
    return finding.model_copy(update={"context": {**finding.context, "results": results}})


def _v3(item: dict[str, Any], path: str) -> NormalizedFinding:
    check = _required(item, "CheckID", path, "Prowler 3")
    status = _required(item, "Status", path, "Prowler 3").upper()
    provider = text(item.get("Provider")).lower() or "aws"
    account = text(item.get("AccountId")) or text(item.get("Subscription")) or text(item.get("ProjectId"))
    region = text(item.get("Region")) or text(item.get("Location"))
    resource_id = text(item.get("ResourceId"))
    source_id = text(item.get("FindingUniqueId")) or _unique_id(provider, check, account, region, resource_id)
    remediation = mapping(item.get("Remediation"))
    recommendation = mapping(remediation.get("Recommendation"))
    references: list[str] = []
    add_url(references, item.get("RelatedUrl"))
    add_url(references, recommendation.get("Url"))
    notes = _code_notes(mapping(remediation.get("Code")), references)
    muted = item.get("Muted") is True
    context = {
        "event_code": check,
        "status_code": status or None,
        "muted": True if muted else None,
        "cloud_provider": provider,
        "service": text(item.get("ServiceName")) or None,
        "sub_service": text(item.get("SubServiceName")) or None,
        "check_types": texts(item.get("CheckType")),
        "resource_name": text(item.get("ResourceName")) or None,
        "resource_details": text(item.get("ResourceDetails")) or None,
        "tenant_domain": text(item.get("Tenant_Domain")) or None,
        "profile": text(item.get("Profile")) or None,
        "organization": item.get("OrganizationsInfo")
        if isinstance(item.get("OrganizationsInfo"), dict)
        else None,
        "compliance": _frameworks(item.get("Compliance")),
        "categories": texts(item.get("Categories")),
        "depends_on": texts(item.get("DependsOn")),
        "related_to": texts(item.get("RelatedTo")),
        "notes": text(item.get("Notes")) or None,
        "risk": text(item.get("Risk")) or None,
        "remediation_notes": notes,
    }
    tags = item.get("ResourceTags") if item.get("ResourceTags") is not None else item.get("Tags")
    return _finding(
        item,
        source_id=source_id,
        type=check,
        title=text(item.get("CheckTitle")) or check,
        description=_description(text(item.get("StatusExtended")), text(item.get("Description"))),
        severity=_severity(item.get("Severity")),
        resource={
            "type": text(item.get("ResourceType"))[:256] or None,
            "id": (text(item.get("ResourceArn")) or resource_id)[:MAX_ID] or None,
            "account_id": account[:128] or None,
            "region": region[:64] or None,
            "tags": tags_of(_tag_map(tags)),
        },
        observed_at=timestamp(item.get("AssessmentStartTime")),
        confidence=MANUAL_CONFIDENCE if status in _UNVERIFIED else None,
        references=references,
        remediation=text(recommendation.get("Text")) or None,
        status=SourceStatus.suppressed if muted else _STATUS.get(status, SourceStatus.open),
        context=context,
    )


def _v2(item: dict[str, Any], path: str) -> NormalizedFinding:
    control = _required(item, "Control", path, "Prowler 2")
    status = _required(item, "Status", path, "Prowler 2").upper()
    match = _CHECK_PREFIX.match(control)
    check = match["check"] if match else text(item.get("Control ID")) or control
    title = text(item.get("Title Text")) or (match["title"].strip() if match else "") or control
    account = text(item.get("Account Number"))
    region = text(item.get("Region"))
    resource_id = text(item.get("Resource ID"))
    references: list[str] = []
    add_url(references, item.get("Doc link"))
    context = {
        "event_code": check,
        "control_id": text(item.get("Control ID")) or None,
        "status_code": status or None,
        "cloud_provider": "aws",
        "service": text(item.get("Service")) or None,
        "profile": text(item.get("Profile")) or None,
        "compliance_group": text(item.get("Compliance")) or None,
        "caf_epic": text(item.get("CAF Epic")) or None,
        "scored": text(item.get("Scored")) or None,
        "level": text(item.get("Level")) or None,
        "risk": text(item.get("Risk")) or None,
    }
    return _finding(
        item,
        source_id=_unique_id("aws", check, account, region, resource_id),
        type=check,
        title=title,
        description=_description(text(item.get("Message")), ""),
        severity=_severity(item.get("Severity")),
        resource={
            "id": resource_id[:MAX_ID] or None,
            "account_id": account[:128] or None,
            "region": region[:64] or None,
        },
        observed_at=timestamp(item.get("Timestamp")),
        confidence=MANUAL_CONFIDENCE if status in _UNVERIFIED else None,
        references=references,
        remediation=text(item.get("Remediation")) or None,
        status=_STATUS.get(status, SourceStatus.open),
        context=context,
    )


def _finding(item: dict[str, Any], **fields: Any) -> NormalizedFinding:
    """The one validation per result."""
    fields["type"] = fields["type"][:512]
    fields["title"] = fields["title"][:MAX_TITLE].rstrip()
    fields["context"] = compact(fields["context"])
    return NormalizedFinding.model_validate({"source": name, **fields, "raw": item})


def _unique_id(provider: str, check: str, account: str, region: str, resource_id: str) -> str:
    """Prowler 3's FindingUniqueId formula (Azure and GCP have no region in it)."""
    if provider in ("azure", "gcp"):
        return f"prowler-{provider}-{check}-{account}-{resource_id}"[:MAX_ID]
    return f"prowler-{provider}-{check}-{account}-{region}-{resource_id}"[:MAX_ID]


def _required(item: dict[str, Any], key: str, path: str, version: str) -> str:
    value = text(item.get(key))
    if not value:
        raise ValueError(f"not a {version} JSON result: {path}.{key} is missing")
    return value


def _description(statement: str, check_text: str) -> str | None:
    parts = [part for part in dict.fromkeys((statement, check_text)) if part]
    return "\n\n".join(parts)[:MAX_TEXT] or None


def _severity(value: Any) -> float:
    label = text(value).lower()
    return parse_severity(label if label in _SEVERITIES else "low")


def _code_notes(code: dict[str, Any], references: list[str]) -> list[str]:
    """Remediation code entries: URLs become references, the rest (commands, IaC) notes."""
    notes: list[str] = []
    for key in _CODE_KEYS:
        entry = text(code.get(key))
        if not entry:
            continue
        if entry.lower().startswith(("https://", "http://")) and " " not in entry:
            add_url(references, entry)
        else:
            notes.append(f"{key}: {entry}"[:1024])
    return notes


def _frameworks(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        return None
    frameworks = {key: texts(v) for key, v in value.items() if isinstance(key, str) and texts(v)}
    return {"frameworks": frameworks} if frameworks else None


def _tag_map(value: Any) -> dict[str, Any]:
    """Prowler 3 ``ResourceTags``: ``[{"Key", "Value"}]`` (AWS) or a map."""
    if isinstance(value, dict):
        return value
    tags: dict[str, Any] = {}
    for entry in value if isinstance(value, list) else []:
        key = get(entry, "Key") if isinstance(entry, dict) else None
        if isinstance(key, str):
            tags[key] = get(entry, "Value") or ""
    return tags
