"""Nuclei results -> native findings (pure: no DB, no HTTP).

Layouts read: JSON lines (``nuclei -jsonl``/``-json``; the HTTP endpoint hands them over as a list of the
decoded objects), the JSON array export (``-je``/``-json-export``) and a single result object. Field names
of every Nuclei release: ``template-id`` (``templateID`` before 2.6), ``matched-at`` (``matched``),
``matcher-name`` (``matcher_name``), ``extracted-results`` (``extracted_results``); ``info`` holds the
template's name, severity, description, references, classification (CVE, CWE, CVSS), tags and remediation.

Identity. ``source_id`` is ``<template-id>:<digest>``, the digest 128 bits of SHA-256 over the template id,
the place it matched (``matched-at``, else ``url``, ``host``, ``ip``, ``port``) and the matcher name, which
tells apart the checks of one template at one place (each missing header of
``http-missing-security-headers``, each technology of ``tech-detect``). Extracted results (versions,
banners), descriptions and severities are never part of it: a banner that changes with an upgrade is the
same finding. Results repeating a key within one document (``tls-version`` once per protocol, which Nuclei
reports through extracted results only) are one finding, their extracted results merged.

DefectDojo keys on the template, matcher and *hostname*, so it merges the same check on two ports of one
host (two web apps on 127.0.0.1:8080 and :9090); we keep them apart, since they are two applications.

Fields. Severity ``info.severity`` (info -> informational; unknown or absent -> the CVSS score x10 when the
classification gives one, else low, as the Trivy parser treats unscored findings). Title the template name,
with the matcher name when there is one, and the place; description ``info.description`` and
``info.impact``; remediation ``info.remediation``; references the http(s) URLs of ``info.reference`` (a list
or Nuclei 2's ``- url`` lines) then ``template-url``. Resource: ``host`` (else the scheme and host of
``matched-at``/``url``, else the IP), type ``web_application`` for a URL, ``host`` otherwise.
``observed_at`` ``timestamp``. Context: template and protocol, matcher name, extracted results (at most 20,
200 characters each), CVE/CWE ids, CVSS, tags, IP, port, the matched line.

Secrets: ``request``, ``response`` and ``curl-command`` (the headers Nuclei sent, cookies the target set)
are never stored; ``raw`` is the result without them. Values in ``meta`` under a name that says password,
secret, token or key (default-login templates report the working credentials) are replaced by
``[redacted by tocsin]``, and so are the extracted results of templates tagged ``token``, ``secret`` or
``keys`` (exposed API keys): only their count is kept.

``parse`` raises ``ValueError`` naming the JSON path (``$[4].template-id``) when an item is not a Nuclei
result; one bad result rejects the document.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import orjson

from app.contracts import MAX_ID, MAX_TEXT, MAX_TITLE, NormalizedFinding, SourceStatus, parse_severity
from integrations.sources.asff.fields import add_url, compact, mapping, number, text, timestamp
from integrations.sources.values import trim_url

name = "nuclei"

REDACTED = "[redacted by tocsin]"
MAX_EXTRACTED = 20
MAX_EXTRACTED_CHARS = 200
_DROPPED = ("request", "response", "curl-command", "curl_command")
_SECRET_NAME = re.compile(r"pass|secret|token|key|cred|auth", re.IGNORECASE)
_SECRET_TAGS = frozenset({"token", "tokens", "secret", "secrets", "keys", "key", "credentials", "api-key"})
_SEVERITIES = {"info": "informational", "informational": "informational"}
_KNOWN = frozenset({"informational", "low", "medium", "high", "critical"})
_URL = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)
_TEMPLATE_KEYS = ("template-id", "templateID")
_PLACE_KEYS = ("matched-at", "matched", "url", "host", "ip")


def detect(document: Any) -> bool:
    """Nuclei results: a result object or a list whose first item is one (template id, info, protocol or
    target)."""
    first = document[0] if isinstance(document, list) and document else document
    return (
        isinstance(first, dict)
        and any(key in first for key in _TEMPLATE_KEYS)
        and isinstance(first.get("info"), dict)
        and ("type" in first or any(key in first for key in _PLACE_KEYS))
    )


def iter_findings(document: Any, *, secret_salt: str | None = None) -> Iterator[NormalizedFinding]:
    """Every result, repeats of a key folded. Raises ValueError naming the JSON path."""
    if isinstance(document, dict):
        items, prefix = [document], None
    elif isinstance(document, list):
        items, prefix = document, "$"
    else:
        raise ValueError(
            "not Nuclei results: expected JSON lines (a list of result objects), a JSON export or one "
            f"result, got {type(document).__name__}"
        )
    findings: dict[str, NormalizedFinding] = {}
    for index, item in enumerate(items):
        path = f"{prefix}[{index}]" if prefix else "$"
        if not isinstance(item, dict):
            raise ValueError(f"not a Nuclei result: {path} is a {type(item).__name__}, not an object")
        finding = _finding(item, path)
        key = finding.source_id or ""
        existing = findings.get(key)
        findings[key] = finding if existing is None else _fold(existing, finding)
    yield from findings.values()


def parse(document: Any, *, secret_salt: str | None = None) -> list[NormalizedFinding]:
    """``iter_findings`` as a list, for small documents."""
    return list(iter_findings(document, secret_salt=secret_salt))


def _finding(item: dict[str, Any], path: str) -> NormalizedFinding:
    template = text(item.get("template-id")) or text(item.get("templateID"))
    if not template:
        raise ValueError(f"not a Nuclei result: {path}.template-id is missing")
    info = item.get("info")
    if not isinstance(info, dict):
        raise ValueError(f"not a Nuclei result: {path}.info is missing")
    place = _place(item)
    matcher = text(item.get("matcher-name")) or text(item.get("matcher_name"))
    digest = hashlib.sha256(orjson.dumps(["nuclei", template, place, matcher])).hexdigest()[:32]
    classification = mapping(info.get("classification"))
    tags = _words(info.get("tags"))
    secret = bool(_SECRET_TAGS.intersection(tag.lower() for tag in tags))
    extracted = _extracted(item)
    template_name = text(info.get("name")) or template
    heading = f"{template_name} ({matcher})" if matcher else template_name
    context = {
        "template_id": template,
        "template": text(item.get("template")) or None,
        "protocol": text(item.get("type")) or None,
        "matcher_name": matcher or None,
        "matched_at": place or None,
        "extracted_results": [REDACTED] if secret and extracted else extracted,
        "extracted_count": len(extracted) if secret and extracted else None,
        "cve_ids": _words(classification.get("cve-id")),
        "cwe_ids": [cwe.upper() for cwe in _words(classification.get("cwe-id"))],
        "cvss_score": number(classification.get("cvss-score")),
        "cvss_vector": text(classification.get("cvss-metrics")) or None,
        "epss_score": number(classification.get("epss-score")),
        "tags": tags,
        "authors": _words(info.get("author")),
        "ip": text(item.get("ip")) or None,
        "port": text(_str(item.get("port"))) or None,
        "scheme": text(item.get("scheme")) or None,
        "matched_line": None if secret else text(_str(item.get("matched-line"))) or None,
        "verified": mapping(info.get("metadata")).get("verified") is True or None,
    }
    return NormalizedFinding.model_validate(
        {
            "source": name,
            "source_id": f"{template[:200]}:{digest}",
            "type": template[:512],
            "title": (f"{heading} at {place}" if place else heading)[:MAX_TITLE].rstrip(),
            "description": _description(info),
            "severity": _severity(info, classification),
            "resource": _resource(item, place),
            "observed_at": timestamp(item.get("timestamp")),
            "references": _references(info, item),
            "remediation": text(info.get("remediation"))[:MAX_TEXT] or None,
            "status": SourceStatus.open,
            "context": compact(context),
            "raw": _raw(item, secret),
        }
    )


def _place(item: dict[str, Any]) -> str:
    """Where the template matched; Nuclei 3 writes some ``url`` values as ``/http://host/``."""
    for key in (*_PLACE_KEYS, "port"):
        value = text(_str(item.get(key)))
        if value:
            return value.lstrip("/") if value.lower().startswith(("/http://", "/https://")) else value
    return ""


def _fold(existing: NormalizedFinding, repeat: NormalizedFinding) -> NormalizedFinding:
    """Two results with one key: one finding, the extracted results of both."""
    merged = [*existing.context.get("extracted_results", []), *repeat.context.get("extracted_results", [])]
    context = dict(existing.context)
    extracted = list(dict.fromkeys(merged))[:MAX_EXTRACTED]
    if extracted:
        context["extracted_results"] = extracted
    if "extracted_count" in existing.context or "extracted_count" in repeat.context:
        context["extracted_count"] = existing.context.get("extracted_count", 0) + repeat.context.get(
            "extracted_count", 0
        )
    raws = existing.raw if isinstance(existing.raw, list) else [existing.raw]
    return existing.model_copy(update={"context": context, "raw": [*raws, repeat.raw]})


def _severity(info: dict[str, Any], classification: dict[str, Any]) -> float:
    label = text(info.get("severity")).lower()
    label = _SEVERITIES.get(label, label)
    if label in _KNOWN:
        return parse_severity(label)
    score = number(classification.get("cvss-score"))
    if score is not None and 0 < score <= 10:
        return score * 10
    return parse_severity("low")


def _description(info: dict[str, Any]) -> str | None:
    parts = [
        part for part in dict.fromkeys((text(info.get("description")), text(info.get("impact")))) if part
    ]
    return "\n\n".join(parts)[:MAX_TEXT] or None


def _resource(item: dict[str, Any], place: str) -> dict[str, Any]:
    host = text(item.get("host"))
    if not host:
        for candidate in (text(item.get("matched-at")), text(item.get("matched")), text(item.get("url"))):
            origin = _origin(candidate.lstrip("/"))  # Nuclei 3 wrote some urls as /http://host/
            if origin:
                host = origin
                break
    host = host or text(item.get("ip")) or place
    kind = "web_application" if host.lower().startswith(("http://", "https://")) else "host"
    return {"type": kind if host else None, "id": host[:MAX_ID] or None}


def _origin(url: str) -> str:
    if not url.lower().startswith(("http://", "https://")):
        return ""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else ""


def _references(info: dict[str, Any], item: dict[str, Any]) -> list[str]:
    references: list[str] = []
    value = info.get("reference")
    for entry in value if isinstance(value, list) else [value]:
        for url in _URL.findall(entry) if isinstance(entry, str) else []:
            add_url(references, trim_url(url))
    add_url(references, item.get("template-url"))
    return references


def _extracted(item: dict[str, Any]) -> list[str]:
    value = item.get("extracted-results", item.get("extracted_results"))
    entries = value if isinstance(value, list) else [value]
    texts = [text(_str(entry))[:MAX_EXTRACTED_CHARS] for entry in entries]
    return list(dict.fromkeys(entry for entry in texts if entry))[:MAX_EXTRACTED]


def _raw(item: dict[str, Any], secret: bool) -> dict[str, Any]:
    raw = {key: value for key, value in item.items() if key not in _DROPPED}
    meta = raw.get("meta")
    if isinstance(meta, dict):
        raw["meta"] = {k: REDACTED if _SECRET_NAME.search(str(k)) else v for k, v in meta.items()}
    if secret:
        for key in ("extracted-results", "extracted_results", "matched-line"):
            if key in raw:
                raw[key] = REDACTED
    return raw


def _words(value: Any) -> list[str]:
    """A list of strings or Nuclei's comma-separated text, as a list."""
    entries = value if isinstance(value, list) else text(value).split(",") if isinstance(value, str) else []
    return list(dict.fromkeys(text(entry) for entry in entries if text(entry)))


def _str(value: Any) -> str:
    if isinstance(value, bool):
        return ""
    if isinstance(value, int | float):
        return str(value)
    return value if isinstance(value, str) else ""
