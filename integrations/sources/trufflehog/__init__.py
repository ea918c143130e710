"""TruffleHog reports (JSON lines) -> native findings, secrets masked.

Pure: no DB, no HTTP. TruffleHog writes one JSON object per line; the ingest endpoint decodes such a body
into a **list** of the line objects (one per non-empty line), which is what ``parse`` takes (a single object
is accepted too, and so is a JSON array of them). Layouts, recognised per entry:

* TruffleHog 3 (``source = "trufflehog"``): ``{SourceMetadata: {Data: {Git|Github|Filesystem|S3|Docker|...:
  {repository, file, line, commit, link, timestamp, ...}}}, SourceName, DetectorName, DecoderName, Verified,
  Raw, RawV2, Redacted, ExtraData, StructuredData}``. Older 3.x releases wrote ``Raw``/``RawV2`` as base64 (Go
  ``[]byte``); strict base64 of printable text is decoded and both forms are masked.
* TruffleHog 2 (``source = "trufflehog"``): ``{branch, commit, commitHash, date, diff, path, printDiff,
  reason, stringsFound}``, one finding per string found; trufflehog3 before 3.0 wrote the same layout.
* trufflehog3 3.x, a different tool (``source = "trufflehog3"``): ``{rule: {id, message, severity}, path,
  line, secret, context, ...}``.

Identity (``source_id`` = ``secret:<detector>:<digest>``), never the commit or the line, so a secret seen in
many commits is one finding (its commits and lines are listed in ``context``) and a re-scan finds it again:

* v3: ``DetectorName``, the location (repository with ``.git`` and trailing ``/`` dropped, so the Git and
  GitHub sources agree; S3 bucket; Docker image; file), else the source's ``link`` (Slack, Jira...), and
  ``secret_digest`` of ``Raw`` (decoded), else of ``RawV2``.
* v2: ``reason``, ``path`` and ``secret_digest`` of the string found with its diff marker (``+``/``-``) and
  extra whitespace removed.
* trufflehog3: ``rule.id``, ``path`` and ``secret_digest`` of ``secret``.

Severity: v3 ``Verified`` -> critical (a live credential), unverified -> high (TruffleHog could not confirm
it, but a leaked secret is never below high; see ``secrets.secret_severity``). v2 regex hits follow
``secret_severity`` (critical for private keys and cloud keys, else high); v2 entropy hits are medium (they
are mostly hashes and ids). trufflehog3 has its own ``rule.severity``. Status is always open.

Masking: ``Raw``, ``RawV2``, their decoded forms and ``Redacted`` (for some detectors, e.g. AWS, it is the
key id in clear), v2's strings found and trufflehog3's ``secret`` are replaced by their masked form in every
stored field, ``raw`` included (``secrets.Redactor``). v2's ``diff`` and ``printDiff`` are dropped (they hold
the code around the hit, other secrets included) and so is trufflehog3's ``id`` (a hash of the content, the
secret included, without salt).

``parse`` raises ``ValueError`` naming the JSON path (safe to show) when an entry is in none of the layouts.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from app.contracts import MAX_ID, MAX_TEXT, MAX_TITLE, NormalizedFinding, SourceStatus
from integrations.sources.secrets import Redactor
from integrations.sources.trufflehog._items import (
    SOURCE,
    Hit,
    read_legacy,
    read_trufflehog3,
    read_v3,
    redactor_for,
)

name = SOURCE

REMEDIATION = "Revoke and rotate the secret, then remove it from the source and from its history."
_MAX_LISTED = 20


def detect(document: Any) -> bool:
    """A v3 or v2 line object (a one-line report), or a list (decoded JSON lines or an array) whose first
    entry is in a layout."""
    if isinstance(document, dict):
        return _layout(document) in ("v3", "legacy")
    return isinstance(document, list) and bool(document) and _layout(document[0]) is not None


def iter_findings(document: Any, *, secret_salt: str | None = None) -> Iterator[NormalizedFinding]:
    """One finding per distinct secret, in report order. Raises ValueError (safe to show) if not TruffleHog."""
    items, single = ([document], True) if isinstance(document, dict) else (document, False)
    if not isinstance(items, list):
        raise ValueError(
            f"not a TruffleHog report: expected JSON lines (an array of objects), got {type(document).__name__}"
        )
    groups: dict[tuple[str, str], list[Hit]] = {}
    for index, item in enumerate(items):
        path = "$" if single else f"$[{index}]"
        if not isinstance(item, dict):
            raise ValueError(f"not a TruffleHog report: {path} must be an object, got {type(item).__name__}")
        for hit in _read(item, path, secret_salt):
            groups.setdefault((hit.source, hit.key), []).append(hit)
    # Every secret of the report is masked in every finding (a commit message may quote another one).
    redactor = redactor_for([hit for hits in groups.values() for hit in hits])
    yield from (_finding(hits, redactor) for hits in groups.values())


def parse(document: Any, *, secret_salt: str | None = None) -> list[NormalizedFinding]:
    """``iter_findings`` as a list, for small documents."""
    return list(iter_findings(document, secret_salt=secret_salt))


def _layout(item: Any) -> str | None:
    if not isinstance(item, dict):
        return None
    if "SourceMetadata" in item and "DetectorName" in item:
        return "v3"
    if "stringsFound" in item and "reason" in item:
        return "legacy"
    if isinstance(item.get("rule"), dict) and "secret" in item and "path" in item:
        return "trufflehog3"
    return None


def _read(item: dict[str, Any], path: str, salt: str | None) -> list[Hit]:
    layout = _layout(item)
    if layout == "legacy":
        return read_legacy(item, path, salt)
    if layout == "trufflehog3":
        return [read_trufflehog3(item, path, salt)]
    return [read_v3(item, path, salt)]  # names the first missing v3 field when it is in no layout


def _finding(hits: list[Hit], redactor: Redactor) -> NormalizedFinding:
    hit = hits[0]
    verified = None if hit.verified is None else any(h.verified for h in hits)
    state = "" if verified is None else (" (verified)" if verified else " (unverified)")
    where = hit.path or hit.repository or hit.resource_id or hit.link or "the scanned source"
    at = f" at line {hit.line}" if hit.line is not None else ""
    shown = hit.shown or "value not reported"
    tool = "trufflehog3" if hit.source != SOURCE else "TruffleHog"
    label = hit.description or hit.detector
    commits = list(dict.fromkeys(h.commit for h in hits if h.commit))
    lines = sorted({h.line for h in hits if h.line is not None})
    context: dict[str, Any] = {
        "kind": "secret",
        "detector": hit.detector,
        "verified": verified,
        "secret": hit.shown or None,
        "commits": commits[:_MAX_LISTED] or None,
        "lines": lines[:_MAX_LISTED] or None,
        "occurrences_in_report": len(hits),
        **{k: v for k, v in hit.context.items() if v is not None},
    }
    severity = max(h.severity for h in hits)  # verified in any commit: critical
    link = (
        hit.link
        if hit.link[:8].lower().startswith(("https://", "http://")) and len(hit.link) <= MAX_ID
        else ""
    )
    fields: dict[str, Any] = {
        "source": hit.source,
        "source_id": hit.key,
        "type": hit.detector[:512],
        "title": f"Secret: {label}{state} in {where}",
        "description": (
            f"{tool} found a secret ({shown}) in {where}{at}; detector: {label}. The value is not stored here."
        ),
        "severity": severity,
        "resource": {"type": hit.resource_type, "id": hit.resource_id[:MAX_ID]} if hit.resource_id else {},
        "location": {
            "repository": hit.repository[:MAX_ID] or None,
            "path": hit.path[:MAX_ID] or None,
            "line": hit.line,
        }
        if hit.repository or hit.path
        else None,
        "references": [link] if link else [],
        "remediation": REMEDIATION,
        "status": SourceStatus.open,
        "context": {k: v for k, v in context.items() if v is not None},
        "raw": hit.raw,
    }
    fields = redactor.value(fields)  # then cut, so no cut leaves part of a secret
    fields["title"] = fields["title"][:MAX_TITLE].rstrip()
    fields["description"] = fields["description"][:MAX_TEXT]
    return NormalizedFinding.model_validate(fields)
