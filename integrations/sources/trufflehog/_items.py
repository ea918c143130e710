"""Readers for the three TruffleHog layouts; each turns one entry into a ``Hit`` (see the package doc)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from app.contracts import SEVERITY_LABEL_SCORE, Severity, parse_severity
from integrations.sources.secrets import Redactor, collapse_whitespace, mask, secret_digest, secret_severity

SOURCE = "trufflehog"
SOURCE_V3_TOOL = "trufflehog3"
_PRINTABLE = re.compile(r"^[\x20-\x7e\t\r\n]+$")
_BASE64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")
_DIFF_MARK = re.compile(r"^[+-]")
_LOCATION_KEYS = ("bucket", "image", "file", "filename", "path")
_LEGACY_RAW_KEYS = ("branch", "commit", "commitHash", "date", "path", "reason")
# trufflehog3 derives "id" from the finding's content (secret included): an unsalted hash, so never kept.
_TRUFFLEHOG3_DROPPED = ("id",)
ENTROPY_SEVERITY = SEVERITY_LABEL_SCORE[Severity.medium]
VERIFIED_SEVERITY = SEVERITY_LABEL_SCORE[Severity.critical]
UNVERIFIED_SEVERITY = SEVERITY_LABEL_SCORE[Severity.high]


@dataclass(slots=True)
class Hit:
    """One entry of a report, normalised: what the finding builder needs, secret values still inside."""

    source: str
    key: str
    detector: str
    description: str
    secret_values: list[str]
    shown: str
    verified: bool | None
    severity: float
    repository: str
    path: str
    line: int | None
    commit: str
    link: str
    resource_type: str | None
    resource_id: str
    raw: dict[str, Any]
    context: dict[str, Any] = field(default_factory=dict)


def text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def line_number(value: Any) -> int | None:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 10_000_000:
        return value
    return None


def normalize_repository(uri: str) -> str:
    """``https://github.com/o/r.git`` and ``https://github.com/o/r/`` are the repository ``…/o/r``."""
    uri = uri.strip().rstrip("/")
    return uri[:-4] if uri.endswith(".git") else uri


def stable_key(kind: str, label: str, parts: list[Any]) -> str:
    return f"{kind}:{label[:200]}:{hashlib.sha256(orjson.dumps(parts)).hexdigest()[:32]}"


def decoded(value: str) -> str:
    """The text a base64 ``Raw`` stands for (TruffleHog before 3.x.y serialised the bytes as base64), or ''.

    Only strict base64 of printable text counts, so a secret that merely looks like base64 is taken as is.
    """
    if len(value) < 4 or len(value) % 4 or not _BASE64.match(value):
        return ""
    try:
        text_value = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return ""
    return text_value if _PRINTABLE.match(text_value) else ""


def read_v3(item: dict[str, Any], path: str, salt: str | None = None) -> Hit:
    """TruffleHog 3 (``trufflehog git|github|filesystem|s3|docker ... --json``), one JSON line."""
    detector = text(item.get("DetectorName"))
    if not detector:
        raise ValueError(f"not a TruffleHog report: {path}.DetectorName is missing")
    data = item.get("SourceMetadata")
    data = data.get("Data") if isinstance(data, dict) else None
    if not isinstance(data, dict):
        raise ValueError(f"not a TruffleHog report: {path}.SourceMetadata.Data is missing")
    source_kind, meta = next(((k, v) for k, v in data.items() if isinstance(v, dict)), ("", {}))
    raw_value, raw_v2 = _string(item.get("Raw")), _string(item.get("RawV2"))
    plain, plain_v2 = decoded(raw_value), decoded(raw_v2)
    secret = plain or raw_value or plain_v2 or raw_v2
    values = [raw_value, raw_v2, plain, plain_v2, _string(item.get("Redacted"))]
    repository = normalize_repository(text(meta.get("repository")))
    where = [repository, *(text(meta.get(k)) for k in _LOCATION_KEYS)]
    if not any(where):
        where.append(text(meta.get("link")))
    identity = secret_digest(secret, salt) if secret else f"line:{line_number(meta.get('line'))}"
    verified = item.get("Verified") is True
    bucket, image = text(meta.get("bucket")), text(meta.get("image"))
    resource_type, resource_id = (
        ("repository", repository)
        if repository
        else ("s3_bucket", bucket)
        if bucket
        else ("container_image", image)
        if image
        else (None, "")
    )
    context = {
        "source_kind": source_kind or None,
        "source_name": text(item.get("SourceName")) or None,
        "detector_type": item.get("DetectorType"),
        "decoder": text(item.get("DecoderName")) or None,
        "verification_error": text(item.get("VerificationError")) or None,
        "commit_timestamp": text(meta.get("timestamp")) or None,
        "extra_data": item.get("ExtraData") if isinstance(item.get("ExtraData"), dict) else None,
    }
    return Hit(
        source=SOURCE,
        key=stable_key("secret", detector, ["v3", detector, *where, identity]),
        detector=detector,
        description=text(item.get("DetectorDescription")),
        secret_values=values,
        shown=mask(secret) if secret else "",
        verified=verified,
        severity=VERIFIED_SEVERITY if verified else UNVERIFIED_SEVERITY,
        repository=repository,
        path=text(meta.get("file")) or text(meta.get("filename")) or text(meta.get("path")),
        line=line_number(meta.get("line")),
        commit=text(meta.get("commit")),
        link=text(meta.get("link")),
        resource_type=resource_type,
        resource_id=resource_id,
        raw=item,
        context=context,
    )


def read_legacy(item: dict[str, Any], path: str, salt: str | None = None) -> list[Hit]:
    """TruffleHog 2 (``trufflehog --json``, one JSON line per commit diff) and trufflehog3 before 3.0, which
    kept that layout: one hit per string found, the diff itself never kept."""
    reason = text(item.get("reason"))
    if not reason:
        raise ValueError(f"not a TruffleHog report: {path}.reason is missing")
    found = item.get("stringsFound")
    if not isinstance(found, list):
        raise ValueError(f"not a TruffleHog report: {path}.stringsFound must be an array")
    strings = [s for s in found if isinstance(s, str) and s.strip()]
    file_path = text(item.get("path"))
    entropy = "entropy" in reason.lower()
    raw = {k: item[k] for k in _LEGACY_RAW_KEYS if k in item}
    raw["stringsFound"] = strings
    # The raw copy lists every string of the entry, so every hit of it masks them all.
    masked = [form for string in strings for form in (string, string.strip(), _normalized(string))]
    hits: list[Hit] = []
    for string in strings:
        normalized = _normalized(string)
        hits.append(
            Hit(
                source=SOURCE,
                key=stable_key(
                    "secret", reason, ["legacy", reason, file_path, secret_digest(normalized, salt)]
                ),
                detector=reason,
                description="",
                secret_values=masked,
                shown=mask(normalized),
                verified=None,
                severity=ENTROPY_SEVERITY if entropy else secret_severity(reason),
                repository="",
                path=file_path,
                line=None,
                commit=text(item.get("commitHash")),
                link="",
                resource_type=None,
                resource_id="",
                raw=raw,
                context={
                    "branch": text(item.get("branch")) or None,
                    "commit_date": text(item.get("date")) or None,
                },
            )
        )
    return hits


def read_trufflehog3(item: dict[str, Any], path: str, salt: str | None = None) -> Hit:
    """trufflehog3 3.x (``trufflehog3 --format json``): ``{rule: {id, message, severity}, path, line,
    secret, context, branch, message, author, commit, date}``."""
    rule = item.get("rule")
    rule_id = text(rule.get("id")) if isinstance(rule, dict) else ""
    if not isinstance(rule, dict) or not rule_id:
        raise ValueError(f"not a trufflehog3 report: {path}.rule.id is missing")
    secret = _string(item.get("secret"))
    file_path = text(item.get("path"))
    label = text(rule.get("severity"))
    try:
        severity = parse_severity(label) if label else UNVERIFIED_SEVERITY
    except ValueError:
        severity = UNVERIFIED_SEVERITY
    identity = secret_digest(secret, salt) if secret else f"line:{line_number(item.get('line'))}"
    return Hit(
        source=SOURCE_V3_TOOL,
        key=stable_key("secret", rule_id, ["trufflehog3", rule_id, file_path, identity]),
        detector=rule_id,
        description=text(rule.get("message")),
        secret_values=[secret],
        shown=mask(secret) if secret else "",
        verified=None,
        severity=severity,
        repository="",
        path=file_path,
        line=line_number(item.get("line")),
        commit=text(item.get("commit")),
        link="",
        resource_type=None,
        resource_id="",
        raw={k: v for k, v in item.items() if k not in _TRUFFLEHOG3_DROPPED},
        context={
            "branch": text(item.get("branch")) or None,
            "commit_date": text(item.get("date")) or None,
            "trufflehog3_severity": label or None,
        },
    )


def _normalized(found: str) -> str:
    """A string found, without its diff marker (``+``/``-``) and extra whitespace: added or removed, the
    same line is the same secret."""
    return collapse_whitespace(_DIFF_MARK.sub("", found.strip()))


def redactor_for(hits: list[Hit]) -> Redactor:
    return Redactor(value for hit in hits for value in hit.secret_values)


def _string(value: Any) -> str:
    return value if isinstance(value, str) else ""
