"""One ASFF finding -> one native finding. The rules are described in the package docstring."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.contracts import MAX_ID, MAX_TEXT, MAX_TITLE, NormalizedFinding, SourceStatus, parse_severity
from integrations.sources.asff._resources import read_resources
from integrations.sources.asff._vulnerabilities import read_vulnerabilities
from integrations.sources.asff.fields import (
    add_url,
    as_dict,
    compact,
    count,
    get,
    mapping,
    number,
    text,
    texts,
    timestamp,
)
from integrations.sources.asff.products import (
    GUARDDUTY,
    MACIE,
    arn_account_region,
    aws_identity,
    product_region,
    source_from_names,
    source_from_product_arn,
)

GUARDDUTY_COUNT = "aws/guardduty/service/count"
MAX_PRODUCT_FIELDS = 60
MAX_FIELD_VALUE = 512
_SECURITYHUB_FIELDS = "aws/securityhub/"
# Product fields that change on every update without changing the finding (GuardDuty's counters and
# timestamps): kept in ``raw`` only, so a repeat is not reported as an update each time.
_VOLATILE_FIELDS = ("eventfirstseen", "eventlastseen", "/count", "/archived", "updatedat", "lastseen")


@dataclass(frozen=True, slots=True)
class Product:
    source: str
    name: str
    company: str


def read_finding(item: dict[str, Any], path: str) -> NormalizedFinding:
    finding_id = _required(item, "Id", path)
    product_arn = _required(item, "ProductArn", path)
    fields = as_dict(item.get("ProductFields"), f"{path}.ProductFields")
    product = _product(item, fields, product_arn)
    account = text(item.get("AwsAccountId")) or arn_account_region(finding_id)[0]
    region = text(item.get("Region")) or product_region(product_arn)
    resources = read_resources(item, path, account, region)
    region = region or (resources.resource.region or "")
    source, source_id, aliases = _identity(product.source, finding_id, product_arn, account, region)
    if len(source_id) > MAX_ID:
        raise ValueError(f"{path}.Id: longer than {MAX_ID} characters")

    references: list[str] = []
    add_url(references, get(item, "Remediation", "Recommendation", "Url"))
    add_url(references, item.get("SourceUrl"))
    vulnerabilities = read_vulnerabilities(item, path, references)
    types = texts(item.get("Types")) or texts(get(item, "FindingProviderFields", "Types"))
    kind = _type(item, fields, product.source, types, vulnerabilities.get("vulnerabilities"))
    status, status_context = _status(item)
    severity, severity_original = _severity(item, path)
    if product.source == GUARDDUTY:
        # GuardDuty's own 0-10 number x 10 is what the direct path stores; using it here keeps the
        # finding's content identical whichever path it came by (no "updated" flapping).
        own = number(mapping(item.get("Severity")).get("Product"))
        if own is not None and 0 <= own <= 10:
            severity = own * 10
    confidence = number(item.get("Confidence"))
    context = compact(
        {
            "product": product.name,
            "company": product.company or None,
            "product_arn": product_arn,
            "asff_id": finding_id,
            "generator_id": text(item.get("GeneratorId")) or None,
            "types": types,
            "severity_original": severity_original,
            "criticality": number(item.get("Criticality")),
            **status_context,
            "resources": resources.listed,
            "public_reason": resources.public_reason,
            **vulnerabilities,
            "product_fields": _product_fields(fields),
        }
    )
    title = (text(item.get("Title")) or kind)[:MAX_TITLE].rstrip()
    return NormalizedFinding.model_validate(
        {
            "source": source,
            "source_id": source_id,
            "type": kind[:512],
            "title": title,
            "description": text(item.get("Description"))[:MAX_TEXT] or None,
            "severity": severity,
            "resource": resources.resource,
            "observed_at": timestamp(item.get("LastObservedAt")) or timestamp(item.get("UpdatedAt")),
            "first_observed_at": timestamp(item.get("FirstObservedAt")) or timestamp(item.get("CreatedAt")),
            "occurrences": _occurrences(fields, source),
            "confidence": int(confidence) if confidence is not None and 0 <= confidence <= 100 else None,
            "references": references,
            "remediation": text(get(item, "Remediation", "Recommendation", "Text"))[:MAX_TEXT] or None,
            "status": status,
            "aliases": aliases,
            "context": context,
            "raw": item,
        }
    )


def _required(item: dict[str, Any], key: str, path: str) -> str:
    value = text(item.get(key))
    if not value:
        raise ValueError(f"not an ASFF finding: {path}.{key} is missing")
    return value


def _product(item: dict[str, Any], fields: dict[str, Any], product_arn: str) -> Product:
    name = text(item.get("ProductName")) or text(fields.get("aws/securityhub/ProductName"))
    company = text(item.get("CompanyName")) or text(fields.get("aws/securityhub/CompanyName"))
    source = source_from_product_arn(product_arn) or source_from_names(company, name) or "asff"
    return Product(source, name or source, company)


def _identity(
    source: str, finding_id: str, product_arn: str, account: str, region: str
) -> tuple[str, str, list[str]]:
    """GuardDuty/Macie: the services' shared key; everything else: the ASFF Id under the product's name."""
    asff_key = f"asff:{product_arn}|{finding_id}"
    native = aws_identity(source, finding_id, account, region)
    if native is None:
        return source, finding_id, [asff_key]
    aliases = [native.arn, asff_key] if native.arn else [asff_key]
    return native.source, native.source_id, aliases


def _occurrences(fields: dict[str, Any], source: str) -> int | None:
    """GuardDuty's own count when Security Hub relays it. A relayed GuardDuty or Macie finding without a
    count says 1: the stored count follows the largest count reported and never adds per report, so a
    copy relayed through Security Hub on every update does not inflate what the direct path counts."""
    if source == GUARDDUTY:
        return count(fields.get(GUARDDUTY_COUNT)) or 1
    if source == MACIE:
        return 1
    return None


def _severity(item: dict[str, Any], path: str) -> tuple[float, str | None]:
    """Severity.Label, else Normalized, else FindingProviderFields.Severity.Label, else Product.

    The provider's label comes before ``Product``: ``Product`` is on the product's own scale (GuardDuty's
    is 0-10), so it is read as 0-100 only as the last resort.
    """
    severity = mapping(item.get("Severity"))
    provider = mapping(get(item, "FindingProviderFields", "Severity"))
    original = text(severity.get("Original")) or text(provider.get("Original")) or None
    for candidate in (
        severity.get("Label"),
        number(severity.get("Normalized")),
        provider.get("Label"),
        number(severity.get("Product")),
    ):
        if candidate is None or candidate == "":
            continue
        try:
            return parse_severity(candidate), original
        except ValueError:
            continue
    raise ValueError(f"{path}.Severity: no Label, Normalized or FindingProviderFields.Severity.Label")


def _status(item: dict[str, Any]) -> tuple[SourceStatus, dict[str, Any]]:
    compliance = mapping(item.get("Compliance"))
    compliance_status = text(compliance.get("Status")).upper()
    workflow = text(get(item, "Workflow", "Status")).upper() or text(item.get("WorkflowState")).upper()
    record = text(item.get("RecordState")).upper()
    if compliance_status == "PASSED" or workflow == "RESOLVED" or record == "ARCHIVED":
        status = SourceStatus.resolved
    elif workflow == "SUPPRESSED":
        status = SourceStatus.suppressed
    else:
        status = SourceStatus.open
    standards = [
        text(standard.get("StandardsId"))
        for standard in compliance.get("AssociatedStandards") or []
        if isinstance(standard, dict) and text(standard.get("StandardsId"))
    ]
    reasons = [
        text(reason.get("ReasonCode"))
        for reason in compliance.get("StatusReasons") or []
        if isinstance(reason, dict) and text(reason.get("ReasonCode"))
    ]
    summary = compact(
        {
            "status": compliance_status or None,
            "security_control_id": text(compliance.get("SecurityControlId")) or None,
            "associated_standards": standards,
            "related_requirements": texts(compliance.get("RelatedRequirements")),
            "status_reasons": reasons,
        }
    )
    return status, {
        "compliance": summary,
        "workflow_status": workflow or None,
        "record_state": record or None,
    }


def _type(
    item: dict[str, Any],
    fields: dict[str, Any],
    source: str,
    types: list[str],
    vulnerabilities: list[dict[str, Any]] | None,
) -> str:
    """Control id, else the GuardDuty/Macie finding type, else the first vulnerability id, else GeneratorId."""
    control = text(get(item, "Compliance", "SecurityControlId")) or text(fields.get("ControlId"))
    if control:
        return control
    if source in (GUARDDUTY, MACIE):
        service_type = _service_type(types)
        if service_type:
            return service_type
    if vulnerabilities:
        return str(vulnerabilities[0]["id"])
    return text(item.get("GeneratorId")) or (types[0] if types else "") or text(item.get("Title")) or "asff"


def _service_type(types: list[str]) -> str | None:
    """``TTPs/Persistence/Persistence:IAMUser-NetworkPermissions`` -> ``Persistence:IAMUser/NetworkPermissions``.

    Security Hub lists a GuardDuty or Macie type as the last segment of a ``Types`` entry, with its ``/``
    turned into ``-`` (the ASFF type separator); the resource part before it never holds a ``-``.
    """
    for entry in types:
        segment = entry.rsplit("/", 1)[-1]
        threat, colon, rest = segment.partition(":")
        if colon and threat and rest:
            return f"{threat}:{rest.replace('-', '/', 1)}"
    return None


def _product_fields(fields: dict[str, Any]) -> dict[str, str]:
    kept: dict[str, str] = {}
    for key, value in fields.items():
        lowered = key.lower()
        if lowered.startswith(_SECURITYHUB_FIELDS) or lowered.endswith(_VOLATILE_FIELDS):
            continue
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            kept[key] = str(value)[:MAX_FIELD_VALUE]
        if len(kept) == MAX_PRODUCT_FIELDS:
            break
    return kept
