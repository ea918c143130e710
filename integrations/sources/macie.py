"""Amazon Macie (macie2) findings -> native findings (pure: no DB, no HTTP).

Documents read: one finding, a list, ``{"findings": [...]}`` (``aws macie2 get-findings``) and an EventBridge
event whose ``detail`` is the finding (``detail-type`` "Macie Finding"). Keys are lowerCamelCase, as Macie
writes them everywhere.

Identity: ``source="macie"``, ``source_id="<accountId>:<region>:<id>"``. Macie gives every finding its own
id (every sensitive data finding is about one object and is unique; a policy finding's repeats raise its
``count``), so the object key is not part of the key: it would add nothing and would diverge from the key
Security Hub's copy maps to. The finding ARN ``arn:<partition>:macie2:<region>:<account>:finding/<id>`` is an
alias: Security Hub (ASFF) uses it as the ``Id`` of a Macie finding, so an ASFF parser that aliases its
``Id`` meets this finding. Account and region fall back to the event envelope.

Resource: the bucket (``resourcesAffected.s3Bucket``): its ARN is ``resource.id`` for both finding families,
so ownership rules written for a bucket route its object findings too; bucket tags; ``public`` when Macie
says the bucket's effective permission is PUBLIC or the object is public. The object (key, path, extension,
size) is in ``context`` and in the description.

Severity: the label (``severity.description``: Low/Medium/High) when present, else the score (1/2/3); the
label is read first because real documents carry scores outside Macie's documented 1-3 (``7.4`` in the AWS
CLI examples). A score from 0 to 10 without a label is read as tenths of the 0-100 scale.

Sensitive data: ``classificationDetails.result`` is summarised as category, type and count (``FINANCIAL_
INFORMATION: CREDIT_CARD_NUMBER`` times 30) in the description and ``context``. Macie never reports the
values, but its ``occurrences`` say where they are (cells, lines, JSON paths, pages): they are left out of
``context`` and also dropped from ``raw``, which is the finding with only those lists removed.
``data_sensitivity``: ``high`` when the data is credentials, financial or personal information (PII and
PHI), which covers every managed Macie category; ``medium`` for custom data identifiers only, whose meaning
Tocsin cannot know; not set for policy findings, which are about a bucket's configuration, not its data.

Lifecycle: ``count`` -> ``occurrences``; ``createdAt``/``updatedAt`` -> ``first_observed_at``/
``observed_at``; ``archived`` -> ``resolved``, else ``open``.

``parse`` raises ``ValueError`` naming the format and the JSON path of the first missing or malformed field
(``not a Macie finding: $.findings[0]: missing 'id'``): a finding without an id cannot be recognised when
it is reported again, so it is refused rather than keyed on its text. One bad finding rejects the document.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from app.contracts import (
    MAX_ID,
    MAX_TEXT,
    MAX_TITLE,
    SEVERITY_LABEL_SCORE,
    DataSensitivity,
    NormalizedFinding,
    Severity,
    SourceStatus,
)

name = "macie"

_EVENT = "Macie Finding"
_FORMAT = "not a Macie finding"
_DOC = "https://docs.aws.amazon.com/macie/latest/user/findings-types.html"
_LABELS = {"low": Severity.low, "medium": Severity.medium, "high": Severity.high}
_SCORES = {1: Severity.low, 2: Severity.medium, 3: Severity.high}
_FAMILIES = ("SensitiveData:", "Policy:")
_HIGH_TYPES = ("Credentials", "Financial", "Personal", "Multiple")
_MAX_LISTED = 50
_TIMES = "\u00d7"  # the multiplication sign (U+00D7)


def detect(document: Any) -> bool:
    """A Macie finding, list, ``{"findings": [...]}`` or event (looks at the first finding only)."""
    if isinstance(document, list):
        return bool(document) and _looks_like_finding(document[0])
    if not isinstance(document, dict):
        return False
    if "detail-type" in document:
        return document.get("detail-type") == _EVENT
    if isinstance(document.get("detail"), dict):
        return _looks_like_finding(document["detail"])
    items = document.get("findings")
    if isinstance(items, list):
        return bool(items) and _looks_like_finding(items[0])
    return _looks_like_finding(document)


def iter_findings(document: Any, *, secret_salt: str | None = None) -> Iterator[NormalizedFinding]:
    """Every finding of the document, in order. Raises ValueError (safe to show) naming the bad field."""
    yield from (_finding(item, path, account, region) for item, path, account, region in _items(document))


def parse(document: Any, *, secret_salt: str | None = None) -> list[NormalizedFinding]:
    """``iter_findings`` as a list, for small documents."""
    return list(iter_findings(document, secret_salt=secret_salt))


def _looks_like_finding(item: Any) -> bool:
    if not isinstance(item, dict):
        return False
    finding_type = item.get("type")
    return (
        isinstance(finding_type, str)
        and finding_type.startswith(_FAMILIES)
        and isinstance(item.get("severity"), dict)
        and ("resourcesAffected" in item or "category" in item)
    )


def _items(document: Any) -> Iterator[tuple[Any, str, str, str]]:
    if isinstance(document, list):
        for index, item in enumerate(document):
            yield item, f"$[{index}]", "", ""
        return
    if not isinstance(document, dict):
        raise ValueError(
            f'{_FORMAT}: expected a finding object, a list of findings, {{"findings": [...]}} or a '
            f'"Macie Finding" EventBridge event, got {type(document).__name__}'
        )
    if "detail-type" in document or isinstance(document.get("detail"), dict):
        detail_type = document.get("detail-type")
        if detail_type is not None and detail_type != _EVENT:
            raise ValueError(f"{_FORMAT}: $.detail-type is {str(detail_type)[:80]!r}, expected {_EVENT!r}")
        account, region = _text(document.get("account")), _text(document.get("region"))
        yield document.get("detail"), "$.detail", account, region
        return
    items = document.get("findings")
    if isinstance(items, list):
        for index, item in enumerate(items):
            yield item, f"$.findings[{index}]", "", ""
        return
    yield document, "$", "", ""


def _finding(item: Any, path: str, envelope_account: str, envelope_region: str) -> NormalizedFinding:
    if not isinstance(item, dict):
        raise ValueError(f"{_FORMAT}: {path}: expected an object, got {type(item).__name__}")
    finding_id = _required(item, "id", path)
    finding_type = _required(item, "type", path)
    score, macie_severity = _severity(item, path)
    partition = _text(item.get("partition")) or "aws"
    region = _text(item.get("region")) or envelope_region
    account = _text(item.get("accountId")) or envelope_account
    affected = _dict(item.get("resourcesAffected"))
    bucket, obj = _dict(affected.get("s3Bucket")), _dict(affected.get("s3Object"))
    detected = _detections(item)
    arn = f"arn:{partition}:macie2:{region}:{account}:finding/{finding_id}" if region and account else ""
    context: dict[str, Any] = {
        "macie_severity": macie_severity,
        "category": _text(item.get("category")),
        "finding_arn": arn,
        "partition": partition,
        **_bucket_context(bucket),
        **_object_context(obj),
        **_classification_context(item, detected),
        **_policy_context(item),
    }
    if item.get("sample") is True:
        context["sample"] = True
    fields = {
        "source": name,
        "source_id": f"{account}:{region}:{finding_id}",
        "type": finding_type,
        "title": (_text(item.get("title")) or finding_type)[:MAX_TITLE],
        "description": _description(item, obj, detected),
        "severity": score,
        "resource": {
            "type": "AwsS3Bucket" if bucket or obj else None,
            "id": _bucket_arn(bucket, obj, partition),
            "account_id": account or None,
            "region": region or None,
            "tags": _tags(bucket.get("tags")),
            "public": _text(_dict(bucket.get("publicAccess")).get("effectivePermission")).upper() == "PUBLIC"
            or obj.get("publicAccess") is True,
        },
        "first_observed_at": _timestamp(item.get("createdAt")),
        "observed_at": _timestamp(item.get("updatedAt")),
        "occurrences": _count(item.get("count")),
        "status": SourceStatus.resolved if item.get("archived") is True else SourceStatus.open,
        "data_sensitivity": _sensitivity(finding_type, detected),
        "references": [_DOC],
        "aliases": [arn] if arn else [],
        "context": {key: value for key, value in context.items() if value not in (None, "", [], {})},
        "raw": _without_occurrences(item),
    }
    try:
        return NormalizedFinding.model_validate(fields)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        field = ".".join(str(part) for part in error["loc"]) or "finding"
        raise ValueError(f"{_FORMAT}: {path}: {field}: {error['msg']}") from None


def _required(item: dict[str, Any], key: str, path: str) -> str:
    value = _text(item.get(key))
    if not value:
        raise ValueError(f"{_FORMAT}: {path}: missing {key!r}")
    return value


def _severity(item: dict[str, Any], path: str) -> tuple[float, dict[str, Any]]:
    """(score 0-100, Macie's own severity for context); the label wins over the score."""
    severity = item.get("severity")
    if severity is None:
        raise ValueError(f"{_FORMAT}: {path}: missing 'severity'")
    if isinstance(severity, str):  # tolerate a bare label
        severity = {"description": severity}
    if not isinstance(severity, dict):
        raise ValueError(f"{_FORMAT}: {path}.severity: expected an object with score and description")
    label = _LABELS.get(_text(severity.get("description")).lower())
    raw_score = severity.get("score")
    score = None if isinstance(raw_score, bool) else raw_score
    kept = {"description": _text(severity.get("description")) or None, "score": score}
    if label is not None:
        return SEVERITY_LABEL_SCORE[label], kept
    if isinstance(score, int | float) and math.isfinite(score):
        if score in _SCORES:
            return SEVERITY_LABEL_SCORE[_SCORES[int(score)]], kept
        if 0 <= score <= 10:
            return round(float(score) * 10, 3), kept
    shown = repr(severity)[:80]
    raise ValueError(
        f"{_FORMAT}: {path}.severity: expected a description Low, Medium or High or a score 1-3, got {shown}"
    )


def _detections(item: dict[str, Any]) -> list[tuple[str, str, int]]:
    """(category, type or custom identifier name, count) for every detection; never the occurrences."""
    result = _dict(_dict(item.get("classificationDetails")).get("result"))
    found: list[tuple[str, str, int]] = []
    for group in _list(result.get("sensitiveData")):
        category = _text(_dict(group).get("category")) or "UNKNOWN"
        for detection in _list(_dict(group).get("detections")):
            detection = _dict(detection)
            kind = _text(detection.get("type")) or "UNKNOWN"
            found.append((category, kind, _count(detection.get("count")) or 0))
    for detection in _list(_dict(result.get("customDataIdentifiers")).get("detections")):
        detection = _dict(detection)
        kind = _text(detection.get("name")) or _text(detection.get("arn")) or "UNKNOWN"
        found.append(("CUSTOM_IDENTIFIER", kind, _count(detection.get("count")) or 0))
    return found


def _description(
    item: dict[str, Any], obj: dict[str, Any], detected: list[tuple[str, str, int]]
) -> str | None:
    parts = [_text(item.get("description"))]
    path = _text(obj.get("path"))
    if path:
        parts.append(f"Object: s3://{path}")
    if detected:
        groups: dict[str, list[str]] = {}
        for category, kind, number in detected[:_MAX_LISTED]:
            groups.setdefault(category, []).append(f"{kind} {_TIMES}{number}")
        summary = "; ".join(f"{category}: {', '.join(kinds)}" for category, kinds in groups.items())
        parts.append(f"Sensitive data (counts only): {summary}")
    text = "\n\n".join(part for part in parts if part)
    return text[:MAX_TEXT] or None


def _sensitivity(finding_type: str, detected: list[tuple[str, str, int]]) -> DataSensitivity | None:
    if not finding_type.startswith("SensitiveData:"):
        return None
    categories = {category for category, _, _ in detected}
    if categories - {"CUSTOM_IDENTIFIER"}:
        return DataSensitivity.high
    if categories or finding_type.endswith("/CustomIdentifier"):
        return DataSensitivity.medium
    if finding_type.endswith(_HIGH_TYPES):
        return DataSensitivity.high
    return DataSensitivity.medium


def _bucket_arn(bucket: dict[str, Any], obj: dict[str, Any], partition: str) -> str | None:
    arn = _text(bucket.get("arn")) or _text(obj.get("bucketArn"))
    if not arn and (bucket_name := _text(bucket.get("name"))):
        arn = f"arn:{partition}:s3:::{bucket_name}"
    return arn[:MAX_ID] or None


def _bucket_context(bucket: dict[str, Any]) -> dict[str, Any]:
    return {
        "bucket_name": _text(bucket.get("name")),
        "bucket_effective_permission": _text(_dict(bucket.get("publicAccess")).get("effectivePermission")),
    }


def _object_context(obj: dict[str, Any]) -> dict[str, Any]:
    size = obj.get("size")
    return {
        "object_key": _text(obj.get("key")),
        "object_path": _text(obj.get("path")),
        "object_extension": _text(obj.get("extension")),
        "object_size": size if isinstance(size, int) and not isinstance(size, bool) else None,
        "object_version_id": _text(obj.get("versionId")),
    }


def _classification_context(item: dict[str, Any], detected: list[tuple[str, str, int]]) -> dict[str, Any]:
    details = _dict(item.get("classificationDetails"))
    result = _dict(details.get("result"))
    return {
        "sensitive_data": [
            {"category": category, "type": kind, "count": number}
            for category, kind, number in detected[:_MAX_LISTED]
        ],
        "sensitive_data_total": sum(number for _, _, number in detected) or None,
        "mime_type": _text(result.get("mimeType")),
        "classification_status": _text(_dict(result.get("status")).get("code")),
        "job_id": _text(details.get("jobId")),
        "job_arn": _text(details.get("jobArn")),
        "origin_type": _text(details.get("originType")),
    }


def _policy_context(item: dict[str, Any]) -> dict[str, Any]:
    action = _dict(_dict(item.get("policyDetails")).get("action"))
    return {
        "policy_action_type": _text(action.get("actionType")),
        "policy_api": _text(_dict(action.get("apiCallDetails")).get("api")),
    }


def _without_occurrences(item: dict[str, Any]) -> dict[str, Any]:
    """The finding minus every detection's ``occurrences``, copying only the objects on the way to them."""
    details = item.get("classificationDetails")
    if not isinstance(details, dict) or not isinstance(details.get("result"), dict):
        return item
    result: dict[str, Any] = details["result"]
    pruned = dict(result)
    groups = result.get("sensitiveData")
    if isinstance(groups, list):
        pruned["sensitiveData"] = [
            {**group, "detections": _strip(group.get("detections"))} if isinstance(group, dict) else group
            for group in groups
        ]
    custom = result.get("customDataIdentifiers")
    if isinstance(custom, dict):
        pruned["customDataIdentifiers"] = {**custom, "detections": _strip(custom.get("detections"))}
    return {**item, "classificationDetails": {**details, "result": pruned}}


def _strip(detections: Any) -> Any:
    if not isinstance(detections, list):
        return detections
    return [
        {key: value for key, value in detection.items() if key != "occurrences"}
        if isinstance(detection, dict)
        else detection
        for detection in detections
    ]


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    if value < 1 or value != int(value):
        return None
    return min(int(value), 2**31 - 1)


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _tags(value: Any) -> dict[str, str]:
    """Macie's ``[{"key", "value"}]`` -> a dict; tags the contract would reject are dropped, at most 100."""
    result: dict[str, str] = {}
    for tag in _list(value):
        key, tag_value = _text(_dict(tag).get("key")), _dict(tag).get("value")
        if key and len(key) <= 256:
            result[key] = (tag_value if isinstance(tag_value, str) else "").strip()[:1024]
        if len(result) == 100:
            break
    return result
