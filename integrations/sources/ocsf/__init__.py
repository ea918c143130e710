"""OCSF findings -> native findings (pure: no DB, no HTTP).

Classes read: Vulnerability Finding (2002), Compliance Finding (2003), Detection Finding (2004), Data
Security Finding (2006) and Application Security Posture Finding (2007), plus OCSF 1.0's Security Finding
(2001, its ``finding`` object standing for ``finding_info``). Incident Findings (2005) describe an
investigation rather than an issue and are refused. Layouts: a list of findings (Prowler ``-M json-ocsf``),
a single finding, ``{"Findings": [...]}`` (Security Hub GetFindingsV2) and the Security Hub ``Findings
Imported V2`` EventBridge event, unwrapped to ``detail.findings``.

Identity. ``source`` names the product as the ASFF parser does (``integrations.sources.asff.products``):
``metadata.product.uid`` when it is a Security Hub product ARN, else ``metadata.product`` vendor and name
(``prowler`` for Prowler; ``guardduty``, ``securityhub``, ``inspector``... for AWS services), else
``ocsf``. ``source_id`` is ``finding_info.uid``, except for GuardDuty and Macie, whose uid (their finding
ARN) becomes ``<account>:<region>:<id>`` with the ARN as an alias, the key their native and ASFF parsers
give the same finding. Placeholder uids in documentation samples (``<finding_uid>``) are kept as given: the
pipeline would merge findings sharing one.

Status. ``status`` (New, In Progress, Suppressed, Resolved, Archived; ``status_id`` only when the text is
absent, since Prowler 4.2 wrote ``status_id: 3`` beside ``status: New``) and the check result
(``status_code`` for Prowler, ``compliance.status`` for Compliance Findings): Resolved/Archived or PASS ->
resolved; Suppressed (Prowler's mutelist) -> suppressed; anything else -> open. A Prowler ``MANUAL`` result
(the check cannot decide; a person must look) stays open with confidence 25 unless the finding gives its
own, so it is listed and scored low rather than dropped: DefectDojo's Prowler parser also keeps MANUAL
results, and dropping them would hide checks nobody has verified.

Fields. Severity from ``severity_id`` (1 informational .. 5 critical, 6 fatal -> critical); 0 (unknown) and
99 (other) fall back to the ``severity`` text, then to low. ``type``: the CVE of a vulnerability, else
``compliance.control``, else ``metadata.event_code`` (Prowler's check id), else the first
``finding_info.types``. Title ``finding_info.title``; description: the instance's own statement
(``status_detail`` or ``message``) then ``finding_info.desc``, each once. The first of ``resources`` is the
resource (uid, else name; type; region, else ``cloud.region``; account ``cloud.account.uid``; tags from
``tags``, Prowler's ``data.metadata.tags`` and Kubernetes labels); all are listed in ``context``. Times:
``first_observed_at`` from ``finding_info.first_seen_time``, else ``created_time``; ``observed_at`` from
``last_seen_time``, ``modified_time``, ``time`` or Prowler 4's ``event_time`` (``*_dt`` strings preferred;
epoch numbers read as milliseconds, as OCSF specifies, or seconds when too small to be milliseconds, as
Prowler writes them). Remediation ``remediation.desc``; its http(s) references, ``unmapped.related_url``,
``additional_urls``, ``finding_info.src_url`` and advisory URLs are references; its other references
(Prowler's CLI commands) go to ``context.remediation_notes``. Context also holds the class, product,
event code, status code and detail, ``unmapped.compliance`` / ``compliance``, categories, risk details and
vulnerabilities. ``resource.public`` stays false: OCSF findings carry no exposure flag we can rely on.

``parse`` raises ``ValueError`` naming the JSON path (``$[2].finding_info.uid``) when the document is not
OCSF findings; one bad finding rejects the document, naming its index.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from app.contracts import NormalizedFinding
from integrations.sources.asff import ASFF_EVENTS
from integrations.sources.asff.fields import text
from integrations.sources.findings_list import LIST_KEYS, first_finding_matches, read_each
from integrations.sources.ocsf._finding import FINDING_CLASSES, read_finding

name = "ocsf"

OCSF_EVENTS = ("Findings Imported V2",)


def detect(document: Any) -> bool:
    """OCSF findings: a list or ``{"Findings": [...]}`` of them, one finding, or a V2 EventBridge event."""
    return first_finding_matches(document, _looks_like_finding)


def iter_findings(document: Any, *, secret_salt: str | None = None) -> Iterator[NormalizedFinding]:
    """Every finding of the document, in order. Raises ValueError (safe to show) naming the JSON path."""
    items, path = _findings(document)
    yield from read_each(items, path, read_finding, "an OCSF")


def parse(document: Any, *, secret_salt: str | None = None) -> list[NormalizedFinding]:
    """``iter_findings`` as a list, for small documents."""
    return list(iter_findings(document, secret_salt=secret_salt))


def _looks_like_finding(item: Any) -> bool:
    return (
        isinstance(item, dict)
        and item.get("class_uid") in FINDING_CLASSES
        and isinstance(item.get("finding_info") or item.get("finding"), dict)
        and "metadata" in item
    )


def _findings(document: Any) -> tuple[list[Any], str]:
    if isinstance(document, list):
        return document, "$"
    if not isinstance(document, dict):
        raise ValueError(
            'not an OCSF document: expected a finding, a list of findings, {"Findings": [...]} or a '
            f"'Findings Imported V2' EventBridge event, got {type(document).__name__}"
        )
    if "detail-type" in document or ("detail" in document and "source" in document):
        detail_type = text(document.get("detail-type"))
        if detail_type in ASFF_EVENTS:
            raise ValueError(
                f"not an OCSF document: a {detail_type!r} event carries ASFF findings; use format asff"
            )
        detail = document.get("detail")
        findings = detail.get("findings") if isinstance(detail, dict) else None
        if not isinstance(findings, list):
            raise ValueError(
                f"not an OCSF document: EventBridge event {detail_type or '(no detail-type)'!r} has no "
                "$.detail.findings list; Security Hub sends OCSF in 'Findings Imported V2' events"
            )
        return findings, "$.detail.findings"
    for key in LIST_KEYS:
        if key in document:
            items = document[key]
            if not isinstance(items, list):
                raise ValueError(f"not an OCSF document: $.{key} must be a list, got {type(items).__name__}")
            return items, f"$.{key}"
    return [document], ""
