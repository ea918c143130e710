"""Checkov JSON reports (``checkov -o json``) -> native findings, passed checks included.

Pure: no DB, no HTTP. A report is one object per framework (``{check_type, results: {failed_checks,
passed_checks, skipped_checks, parsing_errors}, summary}``), or an array of them when several frameworks ran
(terraform and dockerfile, say). The bare summary Checkov prints when it scanned nothing
(``{passed, failed, skipped, parsingerrors, resourcecount, checkov_version}``) is an empty report.

Status: ``failed_checks`` -> open, ``passed_checks`` -> resolved (so a re-scan where a check now passes
closes the finding; DefectDojo drops passed checks, which is why its counts are the failed ones only),
``skipped_checks`` (``#checkov:skip=`` or ``--skip-check``) -> suppressed with the suppress comment in
``context``.

Identity: ``source_id`` = ``<check_id>:<digest of [check_id, path, resource]>``, where the path is
``repo_file_path`` when present (relative to the repository root, so it does not change with the directory
given to ``-d``), else ``file_path``, without a leading ``/``. Never the line range (it moves when a line is
added above) nor the check name, severity or guideline. Checks that still collide in one report (the same
check on the same resource reached through two module calls) are numbered in line order (``#2``...).

Severity: the check's ``severity`` when Checkov sets it (only with a Prisma Cloud / Bridgecrew API key:
CRITICAL, HIGH, MEDIUM, LOW, INFO); else **medium**: a failed policy deserves a look, not a page, and
medium is the band between. Title ``<check_id>: <check_name> (<resource>)``; ``guideline`` is the
reference; ``location`` is the path and the first line of ``file_line_range``; the resource is
``{type: check_type, id: resource}`` with ``entity_tags`` as its tags.

``raw`` is the check without ``code_block`` and ``fixed_definition``: quoted code can hold a secret in clear
(the Trivy parser drops quoted code for the same reason). For the ``secrets`` framework, whose ``resource``
is an unsalted hash of the secret, that hash is masked everywhere and the key uses its salted digest
(``integrations.sources.secrets``).

``parse`` raises ``ValueError`` naming the JSON path of the first missing field (safe to show) when the
document is not a Checkov report.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from app.contracts import (
    MAX_ID,
    MAX_TAGS,
    MAX_TEXT,
    MAX_TITLE,
    SEVERITY_LABEL_SCORE,
    NormalizedFinding,
    Severity,
    SourceStatus,
    parse_severity,
)
from integrations.sources.secrets import Redactor, secret_digest

name = "checkov"

DEFAULT_SEVERITY = SEVERITY_LABEL_SCORE[Severity.medium]
_LISTS = (
    ("failed_checks", SourceStatus.open),
    ("passed_checks", SourceStatus.resolved),
    ("skipped_checks", SourceStatus.suppressed),
)
_QUOTED_CODE = ("code_block", "fixed_definition")
_SUMMARY_ONLY = ("checkov_version", "failed")
_SECRETS_FRAMEWORK = "secrets"


@dataclass(slots=True)
class _Check:
    key: str
    line: int | None
    order: int
    secrets: list[str]
    fields: dict[str, Any]


def detect(document: Any) -> bool:
    """A Checkov report object (check_type and results), the bare summary, or an array of reports."""
    if isinstance(document, list):
        return bool(document) and _is_report(document[0])
    return _is_report(document) or _is_bare_summary(document)


def iter_findings(document: Any, *, secret_salt: str | None = None) -> Iterator[NormalizedFinding]:
    """Failed, passed and skipped checks of every framework, in report order. Raises ValueError (safe to
    show) when the document is not a Checkov report."""
    if _is_bare_summary(document):
        return
    reports, paths = (
        (document, [f"$[{i}]" for i in range(len(document))])
        if isinstance(document, list)
        else ([document], ["$"])
    )
    checks: list[_Check] = []
    for report, path in zip(reports, paths, strict=True):
        if not isinstance(report, dict):
            raise ValueError(
                f"not a Checkov JSON report: {path} must be an object, got {type(report).__name__}"
            )
        if _is_bare_summary(report):
            continue
        check_type = _required(report, "check_type", path)
        results = report.get("results")
        if not isinstance(results, dict):
            raise ValueError(f"not a Checkov JSON report: {path}.results is missing")
        for key, status in _LISTS:
            items = results.get(key)
            if items is None:
                continue
            if not isinstance(items, list):
                raise ValueError(f"not a Checkov JSON report: {path}.results.{key} must be an array")
            for index, item in enumerate(items):
                item_path = f"{path}.results.{key}[{index}]"
                if not isinstance(item, dict):
                    raise ValueError(f"not a Checkov JSON report: {item_path} must be an object")
                checks.append(_read(check_type, item, status, item_path, len(checks), secret_salt))
    yield from _build(checks)


def parse(document: Any, *, secret_salt: str | None = None) -> list[NormalizedFinding]:
    """``iter_findings`` as a list, for small documents."""
    return list(iter_findings(document, secret_salt=secret_salt))


def _is_report(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("check_type"), str)
        and isinstance(value.get("results"), dict)
    )


def _is_bare_summary(value: Any) -> bool:
    return isinstance(value, dict) and all(k in value for k in _SUMMARY_ONLY) and "results" not in value


def _required(item: dict[str, Any], key: str, path: str) -> str:
    value = _text(item.get(key))
    if not value:
        raise ValueError(f"not a Checkov JSON report: {path}.{key} is missing")
    return value


def _read(
    check_type: str, item: dict[str, Any], status: SourceStatus, path: str, order: int, salt: str | None
) -> _Check:
    check_id = _required(item, "check_id", path)
    check_name = _text(item.get("check_name"))
    resource = _text(item.get("resource"))
    file_path = (_text(item.get("repo_file_path")) or _text(item.get("file_path"))).lstrip("/")
    secrets = [resource] if check_type == _SECRETS_FRAMEWORK and resource else []
    resource_key = secret_digest(resource, salt) if secrets else resource
    digest = hashlib.sha256(orjson.dumps([check_id, file_path, resource_key])).hexdigest()[:32]
    line_range = item.get("file_line_range")
    line = _line(line_range[0]) if isinstance(line_range, list) and line_range else None
    result = item.get("check_result")
    result = result if isinstance(result, dict) else {}
    label = _text(item.get("severity"))
    guideline = _text(item.get("guideline"))
    details = [d.strip() for d in item.get("details") or [] if isinstance(d, str) and d.strip()]
    description = "\n\n".join(
        part
        for part in (
            _text(item.get("description")) or _text(item.get("short_description")) or check_name,
            "\n".join(details),
        )
        if part
    )
    context = {
        "check_type": check_type,
        "check_id": check_id,
        "bc_check_id": _text(item.get("bc_check_id")) or None,
        "check_class": _text(item.get("check_class")) or None,
        "check_result": _text(result.get("result")) or None,
        "suppress_comment": _text(result.get("suppress_comment")) or None,
        "evaluated_keys": result.get("evaluated_keys") or None,
        "end_line": _line(line_range[1]) if isinstance(line_range, list) and len(line_range) > 1 else None,
        "resource_address": _text(item.get("resource_address")) or None,
        "caller_file_path": _text(item.get("caller_file_path")) or None,
        "category": _text(item.get("bc_category")) or None,
        "benchmarks": sorted(item["benchmarks"]) if isinstance(item.get("benchmarks"), dict) else None,
        "checkov_severity": label or None,
    }
    where = f" ({resource})" if resource else ""
    fields: dict[str, Any] = {
        "type": check_id[:512],
        "title": f"{check_id}: {check_name or check_id}{where}",
        "description": description or None,
        "severity": _severity(label),
        "resource": {
            "type": check_type[:256],
            "id": resource[:MAX_ID] or None,
            "tags": _tags(item.get("entity_tags")),
        },
        "location": {"path": file_path[:MAX_ID], "line": line} if file_path else None,
        "references": [guideline] if guideline[:8].lower().startswith(("https://", "http://")) else [],
        "status": status,
        "context": {k: v for k, v in context.items() if v is not None},
        "raw": {k: v for k, v in item.items() if k not in _QUOTED_CODE},
    }
    return _Check(f"{check_id[:200]}:{digest}", line, order, secrets, fields)


def _build(checks: list[_Check]) -> list[NormalizedFinding]:
    groups: dict[str, list[_Check]] = {}
    for check in checks:
        groups.setdefault(check.key, []).append(check)
    keyed: list[tuple[_Check, str]] = []
    for key, members in groups.items():
        ranked = sorted(members, key=lambda c: (c.line if c.line is not None else -1, c.order))
        keyed.append((ranked[0], key))
        keyed.extend((member, f"{key}#{rank}") for rank, member in enumerate(ranked[1:], start=2))
    keyed.sort(key=lambda pair: pair[0].order)
    redactor = Redactor(secret for check in checks for secret in check.secrets)
    return [_finding(redactor.value(check.fields), key) for check, key in keyed]


def _finding(fields: dict[str, Any], key: str) -> NormalizedFinding:
    """Cut after redaction, so no cut leaves part of a secret."""
    description = fields["description"]
    return NormalizedFinding.model_validate(
        {
            **fields,
            "title": fields["title"][:MAX_TITLE].rstrip(),
            "description": description[:MAX_TEXT] if description else None,
            "source": name,
            "source_id": key,
        }
    )


def _severity(label: str) -> float:
    if not label:
        return DEFAULT_SEVERITY
    try:
        return parse_severity(label)
    except ValueError:
        return DEFAULT_SEVERITY


def _tags(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    tags = {
        str(k)[:256]: str(v)[:1024]
        for k, v in value.items()
        if isinstance(k, str) and k and isinstance(v, str | int | float | bool)
    }
    return dict(list(tags.items())[:MAX_TAGS])


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _line(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 10_000_000:
        return value
    return None
