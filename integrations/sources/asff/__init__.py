"""AWS Security Finding Format (ASFF, Security Hub CSPM) -> native findings (pure: no DB, no HTTP).

Layouts read: a single finding; a list of findings (BatchImportFindings input, Prowler ``-M json-asff``);
``{"Findings": [...]}`` (GetFindings output; DefectDojo's samples also spell it ``findings``); and an
EventBridge event from Security Hub (``Security Hub Findings - Imported`` or ``- Custom Action``), unwrapped
to its ``detail.findings``. ``Findings Imported V2`` events carry OCSF and are refused with a pointer to the
``ocsf`` format, as are other EventBridge events (a native ``GuardDuty Finding`` goes to ``guardduty``).

Identity (``integrations.sources.asff.products``; agreed with the GuardDuty and Macie parsers so a finding
that arrives both ways is one row):

* GuardDuty (ProductArn ``.../product/aws/guardduty``): ``source="guardduty"``, ``source_id`` =
  ``<account>:<region>:<finding id>`` parsed from the finding ARN in ``Id``; aliases: that ARN and
  ``asff:<ProductArn>|<Id>``. ``occurrences`` = ProductFields ``aws/guardduty/service/count``; when it is
  absent it stays None (the stored count then adds one per report).
* Macie (``.../product/aws/macie``): ``source="macie"``, ``source_id`` = ``<account>:<region>:<id>`` from a
  ``macie2`` finding ARN, or from the bare finding id with AwsAccountId and the finding's region; alias
  ``asff:<ProductArn>|<Id>`` (and the ARN when there is one).
* everything else (Security Hub controls, Inspector, Config, Firewall Manager, third parties, custom
  integrations): ``source`` = the product's name from its ProductArn (``securityhub``, ``inspector``,
  ``prowler``...), ``source_id`` = the ASFF ``Id`` as given, alias ``asff:<ProductArn>|<Id>``. Security Hub
  gives a control evaluated under several standards one Id per standard (``.../subscription/<standard>/
  .../finding/<uuid>``) unless consolidated control findings are on (``.../security-control/<id>/finding/
  <uuid>``): those are distinct findings here too, and switching the setting creates new ones (Security
  Hub itself archives the old Ids, which then arrive as ``RecordState: ARCHIVED`` and resolve).

Fields: severity from ``Severity.Label``, else ``Normalized``, else ``FindingProviderFields.Severity.Label``,
else ``Product``. Status: Compliance ``PASSED``, Workflow ``RESOLVED`` or RecordState ``ARCHIVED`` ->
resolved; Workflow ``SUPPRESSED`` -> suppressed; anything else (NEW, NOTIFIED; FAILED, WARNING,
NOT_AVAILABLE, Prowler v2's INFOED) -> open, with each state kept in ``context``. ``type``: the control id
(``Compliance.SecurityControlId`` or ProductFields ``ControlId``), else the GuardDuty/Macie finding type
recovered from ``Types``, else the first vulnerability id, else GeneratorId. The first resource is the
finding's resource (Type, Id, Region, Tags, account ``AwsAccountId``); all of them are listed in
``context``, and exposure rules are in ``_resources``. Times: ``first_observed_at`` = FirstObservedAt,
else CreatedAt; ``observed_at`` = LastObservedAt, else UpdatedAt. References: the remediation URL,
SourceUrl, then advisory URLs of ``Vulnerabilities`` (see ``_vulnerabilities``). Context: product and
company names, ProductArn, the ASFF Id, GeneratorId, Types, compliance (status, SecurityControlId,
standards, requirements, reason codes), workflow and record state, resources, vulnerabilities and
ProductFields without Security Hub's own keys and without GuardDuty's counters and timestamps (they change
on every update; ``raw`` keeps them). ``raw`` is the single finding.

``parse`` raises ``ValueError`` with the JSON path of the problem (safe to return to the client): a
document that is not ASFF names the first missing field (``$.Findings[3].ProductArn``); one bad finding
rejects the document, naming its index.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from app.contracts import NormalizedFinding
from integrations.sources.asff._finding import read_finding
from integrations.sources.asff.fields import text
from integrations.sources.findings_list import LIST_KEYS, first_finding_matches, read_each

name = "asff"

ASFF_EVENTS = ("Security Hub Findings - Imported", "Security Hub Findings - Custom Action")
OCSF_EVENTS = ("Findings Imported V2",)


def detect(document: Any) -> bool:
    """An ASFF finding, a list or ``{"Findings": [...]}`` of them, or a Security Hub ASFF event."""
    return first_finding_matches(document, _looks_like_finding)


def iter_findings(document: Any, *, secret_salt: str | None = None) -> Iterator[NormalizedFinding]:
    """Every finding of the document, in order. Raises ValueError (safe to show) naming the JSON path."""
    items, path = _findings(document)
    yield from read_each(items, path, read_finding, "an ASFF")


def parse(document: Any, *, secret_salt: str | None = None) -> list[NormalizedFinding]:
    """``iter_findings`` as a list, for small documents."""
    return list(iter_findings(document, secret_salt=secret_salt))


def _looks_like_finding(item: Any) -> bool:
    return (
        isinstance(item, dict)
        and isinstance(item.get("ProductArn"), str)
        and "Id" in item
        and ("SchemaVersion" in item or "GeneratorId" in item)
    )


def _findings(document: Any) -> tuple[list[Any], str]:
    """The findings and the JSON path of their list ('' for a single finding at the top)."""
    if isinstance(document, list):
        return document, "$"
    if not isinstance(document, dict):
        raise ValueError(
            'not an ASFF document: expected a finding, a list of findings, {"Findings": [...]} or a '
            f"Security Hub EventBridge event, got {type(document).__name__}"
        )
    if "detail-type" in document or ("detail" in document and "source" in document):
        return _event_findings(document), "$.detail.findings"
    for key in LIST_KEYS:
        if key in document:
            items = document[key]
            if not isinstance(items, list):
                raise ValueError(f"not an ASFF document: $.{key} must be a list, got {type(items).__name__}")
            return items, f"$.{key}"
    return [document], ""


def _event_findings(event: dict[str, Any]) -> list[Any]:
    detail_type = text(event.get("detail-type"))
    if detail_type in OCSF_EVENTS:
        raise ValueError(
            f"not an ASFF document: a {detail_type!r} event carries OCSF findings; use format ocsf"
        )
    detail = event.get("detail")
    findings = detail.get("findings") if isinstance(detail, dict) else None
    if not isinstance(findings, list):
        expected = " or ".join(repr(t) for t in ASFF_EVENTS)
        raise ValueError(
            f"not an ASFF document: EventBridge event {detail_type or '(no detail-type)'!r} has no "
            f"$.detail.findings list; Security Hub sends ASFF in {expected} events"
        )
    return findings
