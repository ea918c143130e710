"""Amazon GuardDuty findings -> native findings (pure: no DB, no HTTP).

Documents read: one finding, a list of findings, ``{"Findings": [...]}`` (``aws guardduty get-findings``) or
``{"findings": [...]}``, and an EventBridge event whose ``detail`` is the finding (``detail-type`` "GuardDuty
Finding"; a test event reduced to ``region`` + ``detail`` is read too). Both casings are read by the same
code: lowerCamelCase (REST, EventBridge) and PascalCase (boto3, the CLI); see ``_fields``.

Identity, agreed with the ASFF parser (which maps a GuardDuty finding arriving through Security Hub to the
same key): ``source="guardduty"``, ``source_id="<account>:<region>:<id>"``. GuardDuty aggregates repeats of
an activity into one finding id, so the id is the finding's identity; account and region make it unique
across a multi-account feed. Account and region are read from the finding ARN first (as the ASFF parser
does, since the ARN is all an ASFF copy is sure to carry), then ``accountId``/``region``, then the event
envelope, else stay empty (only stripped-down test events lack them all). The finding ARN
(``arn:<partition>:guardduty:<region>:<account>:detector/<d>/finding/<id>``, the ASFF ``Id``) is added to
``aliases`` when present.

Resource, by ``resource.resourceType`` (see ``_resource``): the EC2 instance, the IAM user behind an access
key, the first S3 bucket (every bucket in ``context.s3_buckets``), the EKS or ECS cluster, RDS instance,
Lambda function or container, named by ARN (ASFF resource type names) with their tags. ``public`` when an
instance has a globally routable ``publicIp`` (the documentation addresses of GuardDuty's sample findings
are not, and the ASFF parser agrees) or a bucket's effective permission is PUBLIC. The remote party, action
and API go to ``context``, kept small. ``references``: the finding type's page in the GuardDuty guide and
the finding in the console (aws partition).

Severity: GuardDuty's 0-10 number times ten, which keeps every GuardDuty band in the same Tocsin band (Low
1.0-3.9 -> 10-39 low, Medium 4.0-6.9 -> 40-69, High 7.0-8.9 -> 70-89, Critical 9.0-10.0 -> 90-100) and is
what Security Hub's ``Severity.Normalized`` gives; the original number is ``context.guardduty_severity``.

Lifecycle: ``service.count`` -> ``occurrences``; ``service.eventFirstSeen`` (else ``createdAt``) ->
``first_observed_at``; ``service.eventLastSeen`` (else ``updatedAt``) -> ``observed_at``; ``service.archived``
-> status ``resolved``, else ``open``. ``raw`` is the finding itself, never the envelope.

``parse`` raises ``ValueError`` naming the format and the JSON path of the first missing or malformed field
(``not a GuardDuty finding: $.Findings[2]: missing 'Id'``); one bad finding rejects the document.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from app.contracts import MAX_TEXT, MAX_TITLE, NormalizedFinding, SourceStatus
from integrations.sources.guardduty._fields import count, dict_at, dig, get, list_at, number, text, timestamp
from integrations.sources.guardduty._resource import Where, map_resource

name = "guardduty"

_EVENT = "GuardDuty Finding"
_FORMAT = "not a GuardDuty finding"
_DOCS = "https://docs.aws.amazon.com/guardduty/latest/ug/"
_PAGES = {
    "ec2": "guardduty_finding-types-ec2.html",
    "iamuser": "guardduty_finding-types-iam.html",
    "s3": "guardduty_finding-types-s3.html",
    "kubernetes": "guardduty-finding-types-eks-audit-logs.html",
    "runtime": "findings-runtime-monitoring.html",
    "rds": "findings-rds-protection.html",
    "lambda": "lambda-protection-finding-types.html",
}
_ANCHOR_DROP = re.compile(r"[^a-z0-9-]")
_FINDING_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):guardduty:(?P<region>[^:]+):(?P<account>[^:]+):detector/[^/]+/finding/[^/]+$"
)
_ACTION_FIELDS = (
    ("api", "api"),
    ("serviceName", "api_service"),
    ("callerType", "caller_type"),
    ("errorCode", "error_code"),
    ("domain", "dns_domain"),
    ("protocol", "protocol"),
    ("connectionDirection", "connection_direction"),
    ("requestUri", "kubernetes_request_uri"),
    ("verb", "kubernetes_verb"),
)


@dataclass(frozen=True, slots=True)
class _Envelope:
    account: str = ""
    region: str = ""


_BARE = _Envelope()


def detect(document: Any) -> bool:
    """A GuardDuty finding, list, ``{"Findings": [...]}`` or event (looks at the first finding only)."""
    if isinstance(document, list):
        return bool(document) and _looks_like_finding(document[0])
    if not isinstance(document, dict):
        return False
    detail_type = document.get("detail-type")
    detail = document.get("detail")
    if detail_type is not None or isinstance(detail, dict):
        if detail_type is not None:
            return isinstance(detail_type, str) and detail_type == _EVENT
        inner = get(detail, "findings")
        return _looks_like_finding(inner[0] if isinstance(inner, list) and inner else detail)
    items = get(document, "findings")
    if isinstance(items, list):
        return bool(items) and _looks_like_finding(items[0])
    return _looks_like_finding(document)


def iter_findings(document: Any, *, secret_salt: str | None = None) -> Iterator[NormalizedFinding]:
    """Every finding of the document, in order. Raises ValueError (safe to show) naming the bad field."""
    yield from (_finding(item, path, envelope) for item, path, envelope in _items(document))


def parse(document: Any, *, secret_salt: str | None = None) -> list[NormalizedFinding]:
    """``iter_findings`` as a list, for small documents."""
    return list(iter_findings(document, secret_salt=secret_salt))


def _looks_like_finding(item: Any) -> bool:
    if not isinstance(item, dict) or get(item, "productArn") is not None:
        return False
    finding_type = get(item, "type")
    if not (isinstance(get(item, "id"), str) and isinstance(finding_type, str) and ":" in finding_type):
        return False
    severity = get(item, "severity")
    if isinstance(severity, dict | bool) or number(severity) is None:
        return False
    return isinstance(get(item, "service"), dict) or isinstance(dig(item, "resource", "resourceType"), str)


def _items(document: Any) -> Iterator[tuple[Any, str, _Envelope]]:
    if isinstance(document, list):
        for index, item in enumerate(document):
            yield item, f"$[{index}]", _BARE
        return
    if not isinstance(document, dict):
        raise ValueError(
            f"{_FORMAT}: expected a finding object, a list of findings, "
            '{"Findings": [...]} or a "GuardDuty Finding" EventBridge event, '
            f"got {type(document).__name__}"
        )
    detail_type = document.get("detail-type")
    if detail_type is not None or isinstance(document.get("detail"), dict):
        if detail_type is not None and detail_type != _EVENT:
            shown = str(detail_type)[:80]
            raise ValueError(f"{_FORMAT}: $.detail-type is {shown!r}, expected {_EVENT!r}")
        detail = document.get("detail")
        if not isinstance(detail, dict):
            raise ValueError(f"{_FORMAT}: $.detail: missing or not an object")
        envelope = _Envelope(text(document.get("account")), text(document.get("region")))
        inner_key = _key(detail, "findings")
        if inner_key is not None and isinstance(detail[inner_key], list):
            for index, item in enumerate(detail[inner_key]):
                yield item, f"$.detail.{inner_key}[{index}]", envelope
        else:
            yield detail, "$.detail", envelope
        return
    key = _key(document, "findings")
    if key is not None and isinstance(document[key], list):
        for index, item in enumerate(document[key]):
            yield item, f"$.{key}[{index}]", _BARE
        return
    yield document, "$", _BARE


def _key(node: dict[str, Any], name: str) -> str | None:
    """The document's own spelling of a key, for paths in error messages."""
    if name in node:
        return name
    return next((key for key in node if isinstance(key, str) and key.lower() == name), None)


def _spell(item: dict[str, Any], name: str) -> str:
    """A key as this finding would spell it (``Id`` in a PascalCase finding), for error messages."""
    pascal = any(isinstance(key, str) and key[:1].isupper() for key in item)
    return name[:1].upper() + name[1:] if pascal else name


def _required(item: dict[str, Any], key: str, path: str) -> str:
    value = text(get(item, key))
    if not value:
        raise ValueError(f"{_FORMAT}: {path}: missing {_spell(item, key)!r}")
    return value


def _finding(item: Any, path: str, envelope: _Envelope) -> NormalizedFinding:
    if not isinstance(item, dict):
        raise ValueError(f"{_FORMAT}: {path}: expected an object, got {type(item).__name__}")
    if get(item, "productArn") is not None:
        raise ValueError(
            f"{_FORMAT}: {path} is a Security Hub (ASFF) finding; post it in the ASFF format instead"
        )
    finding_id = _required(item, "id", path)
    finding_type = _required(item, "type", path)
    gd_severity = _severity(item, path)
    arn = text(get(item, "arn"))
    match = _FINDING_ARN.match(arn)
    where = Where(
        partition=(match["partition"] if match else "") or text(get(item, "partition")) or "aws",
        region=(match["region"] if match else "") or text(get(item, "region")) or envelope.region,
        account=(match["account"] if match else "") or text(get(item, "accountId")) or envelope.account,
    )
    resource = dict_at(item, "resource")
    mapped = map_resource(resource, where)
    service = dict_at(item, "service")
    context: dict[str, Any] = {
        "guardduty_severity": gd_severity,
        "finding_arn": arn,
        "partition": where.partition,
        "resource_type": text(get(resource, "resourceType")),
        "resource_role": text(get(service, "resourceRole")),
        "detector_id": text(get(service, "detectorId")),
        **_action(service),
        **mapped.context,
    }
    archived = get(service, "archived")
    fields = {
        "source": name,
        "source_id": f"{where.account}:{where.region}:{finding_id}",
        "type": finding_type,
        "title": (text(get(item, "title")) or finding_type)[:MAX_TITLE],
        "description": text(get(item, "description"))[:MAX_TEXT] or None,
        "severity": round(gd_severity * 10, 3),
        "resource": {
            "type": mapped.type,
            "id": mapped.id,
            "account_id": where.account or None,
            "region": where.region or None,
            "tags": mapped.tags,
            "public": mapped.public,
        },
        "first_observed_at": timestamp(get(service, "eventFirstSeen")) or timestamp(get(item, "createdAt")),
        "observed_at": timestamp(get(service, "eventLastSeen")) or timestamp(get(item, "updatedAt")),
        "occurrences": count(get(service, "count")),
        "status": SourceStatus.resolved if archived is True or archived == "true" else SourceStatus.open,
        "references": _references(finding_type, finding_id, where),
        "aliases": [arn] if arn else [],
        "context": {key: value for key, value in context.items() if value not in (None, "", [], {})},
        "raw": item,
    }
    try:
        return NormalizedFinding.model_validate(fields)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        where_in = ".".join(str(part) for part in error["loc"]) or "finding"
        raise ValueError(f"{_FORMAT}: {path}: {where_in}: {error['msg']}") from None


def _severity(item: dict[str, Any], path: str) -> float:
    raw = get(item, "severity")
    if raw is None:
        raise ValueError(f"{_FORMAT}: {path}: missing {_spell(item, 'severity')!r}")
    value = number(raw)
    if value is None or not 0.0 <= value <= 10.0:
        shown = repr(raw)[:40]
        raise ValueError(
            f"{_FORMAT}: {path}.{_spell(item, 'severity')}: expected a number from 0 to 10, got {shown}"
        )
    return value


def _action(service: dict[str, Any]) -> dict[str, Any]:
    """What happened, kept small: action type, the remote party, the API or DNS name, the ports."""
    action = dict_at(service, "action")
    details: dict[str, Any] = next(
        (
            value
            for key, value in action.items()
            if isinstance(value, dict) and isinstance(key, str) and key.lower().endswith("action")
        ),
        {},
    )
    probes = [probe for probe in list_at(details, "portProbeDetails") if isinstance(probe, dict)]
    first_probe = probes[0] if probes else {}
    remote = dict_at(details, "remoteIpDetails") or dict_at(first_probe, "remoteIpDetails")
    found: dict[str, Any] = {
        "action_type": text(get(action, "actionType")),
        "remote_ip": text(get(remote, "ipAddressV4")) or text(get(remote, "ipAddressV6")),
        "remote_country": text(dig(remote, "country", "countryName")),
        "remote_org": text(dig(remote, "organization", "asnOrg")) or text(dig(remote, "organization", "org")),
        "remote_port": number(dig(details, "remotePortDetails", "port")),
        "local_port": number(dig(details, "localPortDetails", "port"))
        or number(dig(first_probe, "localPortDetails", "port")),
    }
    for key, context_key in _ACTION_FIELDS:
        found[context_key] = text(get(details, key))
    blocked = get(details, "blocked")
    if isinstance(blocked, bool):
        found["blocked"] = blocked
    for port in ("remote_port", "local_port"):
        if isinstance(found[port], float):
            found[port] = int(found[port])
    lists = [
        listed
        for intel in list_at(service, "evidence", "threatIntelligenceDetails")
        if (listed := text(get(intel, "threatListName")))
    ]
    found["threat_lists"] = lists[:10]
    if get(dict_at(service, "additionalInfo"), "sample") is True:
        found["sample"] = True
    return found


def _references(finding_type: str, finding_id: str, where: Where) -> list[str]:
    """The finding type's page in the GuardDuty guide and, in the aws partition, the console view."""
    threat, _, rest = finding_type.partition(":")
    affected = rest.partition("/")[0].lower()
    if threat == "AttackSequence":
        doc = _DOCS + "guardduty-attack-sequence-finding-types.html"
    elif threat == "Object" and affected == "s3":
        doc = _DOCS + "gdu-malware-protection-s3-finding-types.html"
    elif rest.endswith(("MaliciousFile", "SuspiciousFile")):
        doc = _DOCS + "findings-malware-protection.html"
    elif affected in _PAGES:
        anchor = _ANCHOR_DROP.sub("", finding_type.lower().replace(":", "-").replace("/", "-"))
        doc = f"{_DOCS}{_PAGES[affected]}#{anchor}"
    else:
        doc = _DOCS + "guardduty_finding-types-active.html"
    refs = [doc]
    if where.partition == "aws" and re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", where.region):
        region = where.region
        refs.append(
            f"https://{region}.console.aws.amazon.com/guardduty/home?region={region}"
            f"#/findings?macros=current&fId={finding_id}"
        )
    return refs
